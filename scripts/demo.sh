#!/usr/bin/env bash
# The whole main job, anywhere we are root: build the .deb, boot an ephemeral systemd
# container of this machine's root, install the package, apply the shipped example,
# deploy the example Lua, print `hhlctl status` and one answer from every instance,
# then a developer's day: deploy by git push, restart without sudo, read their logs;
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
echo "== hhlctl repo init, then dev1 deploys with git push (as unix user dev1)"
ct hhlctl repo init | tail -3
ct runuser -u dev1 -- sh -c 'cd ~ && git config --global user.email dev1@hhl && git config --global user.name dev1 &&
  git clone -q /srv/git/socketserver.git s 2>/dev/null && cd s &&
  printf "local log = require \"hhl.log\"\nlog.info(\"hello\", { from = \"dev1\" })\nngx.say(\"deployed by git push\")\n" > main.lua &&
  git add -A && git commit -qm first && git push origin HEAD:dev1 2>&1 | grep remote:'
printf 'GET :1081/hhl -> %s\n' "$(ct curl -s -m 5 http://127.0.0.1:1081/hhl)"
echo "== dev1 pushing dev2's branch"
ct runuser -u dev1 -- sh -c 'cd ~/s && git push origin HEAD:dev2 2>&1 | grep -E "remote: refused|rejected"' || true
echo "== dev1 restarts their own instance without sudo, and not dev2's"
ct runuser -u dev1 -- hhlctl restart socketserver-dev1
ct runuser -u dev1 -- hhlctl restart socketserver-dev2 || true
echo "== dev1's log file, and the log page"
ct sh -c 'sleep 1; grep -m1 "msg=hello" /var/log/hhl/dev1/socketserver-dev1.log'
ct sh -c "printf 'dev1-password\n' | hhlctl web passwd dev1 && systemctl start hhl-web.service && sleep 1"
printf 'POST :8080/login as dev1 -> HTTP %s\n' "$(ct curl -s -o /dev/null -w '%{http_code}' -d 'user=dev1&password=dev1-password' http://127.0.0.1:8080/login)"
echo "== shutting the container down"
