#!/usr/bin/env bash
# The whole main job, anywhere we are root: build the .deb, boot an ephemeral systemd
# container of this machine's root, install the package, apply the shipped example,
# deploy the example Lua, print `hhlctl status` and one answer from every instance,
# then shut the container down (nothing it did reaches this machine).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build-deb.sh | grep -E '^(built|lintian)'
deb=$(ls "$PWD"/target/debian/hhlctl_*.deb | tail -n 1)
. scripts/container.sh
container_boot
echo "== container up (systemd $(ct systemctl --version | head -1 | cut -d' ' -f2))"
ct rm -f /usr/sbin/policy-rc.d   # the image's Docker policy would block maintainer scripts
ct env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" | grep -E '^(Setting up|Unpacking) hhlctl'
echo "== hhlctl apply (the shipped /etc/hhl/hhl.yaml)"
ct hhlctl apply
ct sh -c "for d in /opt/hhl/*/*/src; do cp /usr/share/doc/hhlctl/examples/src/main.lua \$d/; done"
echo "== hhlctl status"
ct hhlctl status
echo "== one answer from each instance"
for port in 1080 1081 1082 1083 1084 1090 1091 1092 1093 1094 1100; do
  printf 'GET :%s/hhl -> %s\n' "$port" "$(ct curl -s -m 5 "http://127.0.0.1:$port/hhl")"
done
for port in 6379 6381 6382 6383 6384; do
  printf 'redis :%s PING -> %s\n' "$port" "$(ct redis-cli -p "$port" ping)"
done
echo "== shutting the container down"
