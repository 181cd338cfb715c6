#!/usr/bin/env bash
# The whole main job, anywhere we are root: build the .deb, boot an ephemeral systemd
# container of this machine's root, install the package, apply the shipped example,
# deploy the example Lua, print `hhlctl status` and one answer from every instance,
# then a developer's day over ssh with their key: deploy by git push, restart, read
# their logs, sign in to the log page by a one-time link;
# then shut the container down (nothing it did reaches this machine).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build-deb.sh | grep -E '^built'
deb=$(ls "$PWD"/target/debian/hhlctl_*.deb | tail -n 1)
. scripts/container.sh
container_boot
echo "== container up (systemd $(ct systemctl --version | head -1 | cut -d' ' -f2))"
ct rm -f /usr/sbin/policy-rc.d   # the image's Docker policy would block maintainer scripts
ct env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" | grep -E '^(Setting up|Unpacking) hhlctl'
echo "== hhlctl apply (the shipped /etc/hhl/hhl.yaml)"
ct hhlctl apply
ct sh -c "for d in /opt/hhl/*/*/src; do cp -r /usr/share/doc/hhlctl/examples/src/. \$d/; done"
echo "== hhlctl status"
ct hhlctl status
echo "== one answer from each instance"
for port in 1080 1081 1082 1083 1084 1090 1091 1092 1093 1094 1100; do
  printf 'GET :%s/hhl -> %s\n' "$port" "$(ct curl -s -m 5 "http://127.0.0.1:$port/hhl")"
done
for pair in master:6379 dev1:6381 dev2:6382 dev3:6383 dev4:6384; do
  owner=${pair%:*} port=${pair#*:}
  # Each Redis wants its owner's secret (made by apply; root can read them all).
  printf 'redis :%s PING -> %s\n' "$port" \
    "$(ct sh -c "REDISCLI_AUTH=\$(cat /var/lib/hhl/redis/$owner.secret) redis-cli -p $port ping")"
done
echo "== dev1's key in hhl.yaml (keys:), apply; dev1 deploys with git push over ssh"
ct hhlctl repo init | tail -3
container_dev_key dev1
ct sh -c 'cd /root && git clone -q hhl:socketserver s 2>/dev/null && cd s &&
  printf "local log = require \"hhl.log\"\nlog.info(\"hello\", { from = \"dev1\" })\nngx.say(\"deployed by git push\")\n" > main.lua &&
  git add -A && git commit -qm first && git push origin HEAD:dev1 2>&1 | grep remote:'
printf 'GET :1081/hhl -> %s\n' "$(ct curl -s -m 5 http://127.0.0.1:1081/hhl)"
echo "== dev1 pushing dev2's branch"
ct sh -c 'cd /root/s && git push origin HEAD:dev2 2>&1 | grep -E "rejected"' || true
echo "== dev1 restarts their own instance over ssh, and not dev2's"
ct ssh hhl restart socketserver-dev1
ct ssh hhl restart socketserver-dev2 || true
echo "== dev1's logs over ssh, and the log page by a one-time link"
ct sh -c 'for i in $(seq 50); do ssh hhl logs -n 50 socketserver-dev1 | grep -m1 "msg=hello" && exit 0; sleep 0.1; done; exit 1'
ct systemctl start hhl-web.service
link=$(ct ssh hhl web)
ct sh -c 'for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8080/login && exit 0; sleep 0.05; done; exit 1'
printf 'GET %s (from ssh hhl web) -> HTTP %s\n' "${link%%\?*}?t=…" "$(ct curl -s -o /dev/null -w '%{http_code}' "$link")"
echo "== shutting the container down"
