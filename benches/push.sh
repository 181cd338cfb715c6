#!/usr/bin/env bash
# Benchmark: push-to-live latency of a 1,000-file Lua tree, inside a real-systemd
# container. dev1 pushes RUNS commits (each changes main.lua) over the file transport;
# for each: how long `git push` takes (pre-receive checks, deploy, graceful reload),
# and the lag from `git push` returning until GET /hhl serves the new content.
# Prints p50 and p95 of each and of their sum.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-21}
files=${FILES:-1000}
. benches/lib.sh
bench_example_container
ct hhlctl repo init > /dev/null
ct runuser -u dev1 -- sh -c "
  cd ~ && git config --global user.email dev1@hhl && git config --global user.name dev1 &&
  git clone -q /srv/git/socketserver.git s 2>/dev/null && cd s && mkdir -p lib &&
  for i in \$(seq $files); do printf 'local M = {}\nfunction M.f(x) return x + %d end\nreturn M\n' \$i > lib/m\$i.lua; done &&
  echo 'ngx.say(\"run 0\")' > main.lua && git add -A && git commit -qm tree && git push -q origin HEAD:dev1 2>/dev/null"
ct sh -c 'find /opt/hhl/socketserver/dev1/src/ -name "*.lua" | wc -l' | sed 's/^/files live: /'

results=$(ct runuser -u dev1 -- sh -c "
  cd ~/s
  for n in \$(seq $runs); do
    echo \"ngx.say(\\\"run \$n\\\")\" > main.lua && git commit -qam \"run \$n\"
    t0=\$(date +%s%N); git push -q origin HEAD:dev1 2>/dev/null; t1=\$(date +%s%N)
    until [ \"\$(curl -s http://127.0.0.1:1081/hhl)\" = \"run \$n\" ]; do :; done; t2=\$(date +%s%N)
    echo \$(( (t1 - t0) / 1000 )) \$(( (t2 - t1) / 1000 ))
  done")
pct() { # column percentile
  awk -v c="$1" '{ print $c }' | sort -n | awk -v p="$2" '{ a[NR] = $1 } END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.1f", a[i] / 1000 }'
}
sums=$(awk '{ print $1, $2, $1 + $2 }' <<< "$results")
echo "runs: $runs, tree: $files files + main.lua"
echo "git push (check + deploy + reload):  p50 $(pct 1 50 <<< "$sums") ms  p95 $(pct 1 95 <<< "$sums") ms"
echo "push returned -> new content served: p50 $(pct 2 50 <<< "$sums") ms  p95 $(pct 2 95 <<< "$sums") ms"
echo "git push start -> new content:       p50 $(pct 3 50 <<< "$sums") ms  p95 $(pct 3 95 <<< "$sums") ms"
