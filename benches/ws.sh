#!/usr/bin/env bash
# Benchmark: the example game server over WebSocket, in a real-systemd container with
# the shipped example applied (hardened units, hhl.websocket, JSON, code cache on).
#   - round-trip latency (median, p99) of an echo on every socketserver/dtserver instance;
#   - anchors in the same run: a plain nginx (no unit, no sandbox) answering `return 200`
#     over HTTP keep-alive, and a bare lua-resty-websocket echo in that nginx;
#   - how many concurrent sessions one instance holds (HOLD, default 10000);
#   - SESSIONS (default 200) sessions echoing while dev1 pushes DEPLOYS (default 10)
#     times: answered, closed with 1001 and reconnected, dropped, unanswered;
#   - `hhlctl restart` of an instance without sessions, and with SESSIONS echoing.
# The client (benches/ws_client.rs) runs in the container's network namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-5000}
hold=${HOLD:-10000}
sessions=${SESSIONS:-200}
deploys=${DEPLOYS:-10}
cargo bench --bench ws_client --no-run -q 2>/dev/null
client=$(ls -t target/release/deps/ws_client-* | grep -v '\.d$' | head -1)
. benches/lib.sh
bench_example_container
ct sh -c "for d in /opt/hhl/*/*/src; do cp -r $PWD/examples/src/. \$d/; done"
ct sh -c "mkdir -p /usr/share/hhl && cp -r $PWD/lua /usr/share/hhl/"
net() { nsenter -t "$CT_PID" -n -- "$@"; }

# The anchors: plain nginx as root, outside any unit, on 2000 (HTTP) and 2001 (echo).
ct sh -c 'mkdir -p /tmp/plain/logs /tmp/plain/conf && cat > /tmp/plain/conf/nginx.conf' <<'CONF'
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
error_log stderr error;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 1000000;
    lua_package_path "/usr/share/hhl/lua/?.lua;;";
    server { listen 2000; location / { return 200 "ok\n"; } }
    server { listen 2001; location / { content_by_lua_block {
        local wb = require("resty.websocket.server"):new({ timeout = 30000 })
        while true do
            local data, typ = wb:recv_frame()
            if not data or typ == "close" then return end
            if typ == "text" then wb:send_text(data) end
        end
    } } }
}
CONF
ct sh -c 'nginx -p /tmp/plain/ -c conf/nginx.conf -g "pid /tmp/plain/nginx.pid;"'
ct sh -c 'for i in $(seq 100); do curl -s http://127.0.0.1:2000/ >/dev/null && exit 0; sleep 0.05; done; exit 1'
ct sh -c 'for p in 1080 1081 1082 1083 1084 1090 1091 1092 1093 1094; do for i in $(seq 100); do curl -sf http://127.0.0.1:$p/hhl >/dev/null && break; sleep 0.05; done; done'

echo "== round trips ($n each, after 100 warm-up)"
net "$client" http 2000 "$n" | sed 's/^/anchor: plain nginx /'
net "$client" bare 2001 "$n" | sed 's/^/anchor: bare lua-resty-websocket /'
for p in 1080 1081 1082 1083 1084 1090 1091 1092 1093 1094; do
  net "$client" latency "$p" "$n"
done

echo "== concurrent sessions on one instance (socketserver-dev2)"
net "$client" hold 1082 "$hold"

echo "== sessions through deploys (socketserver-dev1, git push over ssh as dev1)"
ct hhlctl repo init > /dev/null
container_dev_key dev1
ct sh -c "cd /root && git clone -q hhl:socketserver s 2>/dev/null && cd s && cp -r $PWD/examples/src/. . && git add -A && git commit -q --allow-empty -m game && git push -q origin HEAD:dev1 2>/dev/null"
net "$client" deploy 1081 "$sessions" "$deploys pushes" nsenter -t "$CT_PID" -a -- sh -c "
  cd /root/s && for n in \$(seq $deploys); do printf 'return \"b%s\"\n' \$n > game/version.lua && git commit -qam b\$n && git push -q origin HEAD:dev1 2>/dev/null; done"

echo "== restart (socketserver-dev1)"
for i in 1 2 3; do
  ct sh -c 't0=$(date +%s%N); hhlctl restart socketserver-dev1 >/dev/null; t1=$(date +%s%N); echo "restart without sessions: $(( (t1 - t0) / 1000000 )) ms"'
done
net "$client" deploy 1081 "$sessions" "hhlctl restart" nsenter -t "$CT_PID" -a -- hhlctl restart socketserver-dev1
