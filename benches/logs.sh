#!/usr/bin/env bash
# Benchmark: the log page's live tail, inside a real-systemd container.
#  1. latency from `ngx.log` in dev1's instance to the line arriving on the page's
#     event stream (/api/tail, what the page's EventSource reads), RUNS times;
#  2. lines per second the live tail sustains: one request logs LINES lines, and the
#     stream's first-to-last arrival time is measured.
# Medians. The browser adds its own rendering on top (tests/logs.rs prints one).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-21}
lines=${LINES:-5000}
. benches/lib.sh
bench_example_container
printf '%s\n' 'local n = tonumber(ngx.var.arg_n) or 1' \
  'for i = 1, n do ngx.log(ngx.WARN, "bench-", ngx.var.arg_tag, "-", i) end' 'ngx.say("ok")' |
  ct sh -c 'cat > /opt/hhl/socketserver/dev1/src/main.lua'
ct sh -c "printf 'bench-password\n' | hhlctl web passwd dev1 >/dev/null && systemctl start hhl-web.service"
ct sh -c 'for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8080/login && break; sleep 0.05; done'
ct sh -c 'curl -s -i -d "user=dev1&password=bench-password" http://127.0.0.1:8080/login | sed -n "s/.*hhl_session=\([^;]*\);.*/\1/p" > /tmp/token'
# The stream as the page receives it; arrivals are timed by polling the file.
ct sh -c 'nohup sh -c "curl -s -N -b hhl_session=\$(cat /tmp/token) \"http://127.0.0.1:8080/api/tail?instance=socketserver-dev1&level=4\" > /tmp/stream" >/dev/null 2>&1 &'
# Anchor in the same run: `journalctl -f` on the same unit (what the page followed
# before it read the journal itself).
ct sh -c 'nohup sh -c "journalctl -f -n 0 -o cat -u openresty@socketserver-dev1 > /tmp/jf" >/dev/null 2>&1 &'
sleep 1

ct sh -c "
  for n in \$(seq $runs); do
    t0=\$(date +%s%N); curl -s -o /dev/null \"http://127.0.0.1:1081/hhl?tag=lat\$n\"
    s=; j=
    for i in \$(seq 5000); do
      [ -z \"\$s\" ] && grep -q \"bench-lat\$n-1,\" /tmp/stream && s=\$(date +%s%N)
      [ -z \"\$j\" ] && grep -q \"bench-lat\$n-1,\" /tmp/jf && j=\$(date +%s%N)
      [ -n \"\$s\" ] && [ -n \"\$j\" ] && break
      sleep 0.002
    done
    echo \$(( (s - t0) / 1000 )) \$(( (j - t0) / 1000 ))
  done" > /tmp/hhl-bench-lat
median() { sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR+1)/2)] / 1000 }'; }
cut -d' ' -f1 /tmp/hhl-bench-lat > /tmp/hhl-bench-lat-page
cut -d' ' -f2 /tmp/hhl-bench-lat > /tmp/hhl-bench-lat-jf
echo "ngx.log -> line on the live stream: median $(median < /tmp/hhl-bench-lat-page) ms over $runs (min $(sort -n /tmp/hhl-bench-lat-page | head -1 | awk '{printf "%.1f", $1/1000}') ms, max $(sort -n /tmp/hhl-bench-lat-page | tail -1 | awk '{printf "%.1f", $1/1000}') ms)"
echo "ngx.log -> line from journalctl -f (anchor, same runs): median $(median < /tmp/hhl-bench-lat-jf) ms (min $(sort -n /tmp/hhl-bench-lat-jf | head -1 | awk '{printf "%.1f", $1/1000}') ms)"

rates=()
for r in 1 2 3; do
  rate=$(ct sh -c "
    curl -s -o /dev/null 'http://127.0.0.1:1081/hhl?tag=rate$r&n=$lines' &
    until grep -q 'bench-rate$r-1,' /tmp/stream; do sleep 0.01; done; a=\$(date +%s%N)
    for i in \$(seq 3000); do [ \$(grep -c 'bench-rate$r-' /tmp/stream) -ge $lines ] && break; sleep 0.01; done; b=\$(date +%s%N)
    echo \$(grep -c 'bench-rate$r-' /tmp/stream) \$(( ($lines - 1) * 1000000000 / (b - a) ))")
  got=${rate% *}; rate=${rate#* }
  echo "run $r: $got of $lines lines arrived, $rate lines/s"
  rates+=("$rate")
  sleep 31  # journald allows 10,000 messages per 30 s per unit
done
printf '%s\n' "${rates[@]}" | sort -n | sed -n 2p | sed 's/^/live tail, median of 3: /; s/$/ lines\/s/'
