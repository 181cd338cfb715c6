#!/usr/bin/env bash
# Benchmark: what the push bounds cost a normal push (git.max_files and
# git.max_unpacked_size from a streamed `ls-tree -r -l`, git.max_branch_size from
# `rev-list --disk-usage`), before and after in the same run, inside a real-systemd
# container. HHLCTL_BEFORE is an hhlctl without them (e.g. a build of the commit
# before), HHLCTL_AFTER one with them (default: this tree's release build). dev1 has
# a FILES-file Lua tree on its branch; each round changes main.lua and, with each
# binary in turn (the order alternating), times:
#   - the pre-receive hook alone (`hhlctl hook pre-receive` as the entry account, on
#     the update just pushed: the checks, the diff and the Lua compile of main.lua);
#   - a whole `git push` over ssh (checks, deploy, reload).
# Prints the median and p95 of each, per binary, and the ratio after/before.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-21}
files=${FILES:-1000}
before=${HHLCTL_BEFORE:?set HHLCTL_BEFORE to an hhlctl without the push bounds}
after=${HHLCTL_AFTER:-}
if [ -z "$after" ]; then
  cargo build --release -q
  after=$PWD/target/release/hhlctl
fi
before=$(realpath "$before")
after=$(realpath "$after")
. scripts/container.sh
container_boot
ct sh -c "cp $PWD/units/* /usr/lib/systemd/system/ && cp $after /usr/bin/hhlctl && systemctl daemon-reload"
ct sh -c 'mkdir -p /etc/hhl && cat > /etc/hhl/hhl.yaml' < examples/hhl.yaml
ct hhlctl apply > /dev/null
ct hhlctl repo init > /dev/null
container_dev_key dev1
ct sh -c "cp $before /usr/local/bin/hhlctl-before && cp $after /usr/local/bin/hhlctl-after"
ct sh -c "
  cd /root && git clone -q hhl:socketserver s 2>/dev/null && cd s && mkdir -p lib &&
  for i in \$(seq $files); do printf 'local M = {}\nfunction M.f(x) return x + %d end\nreturn M\n' \$i > lib/m\$i.lua; done &&
  echo 'ngx.say(\"run 0\")' > main.lua && git add -A && git commit -qm tree && git push -q origin HEAD:dev1 2>/dev/null"

results=$(ct sh -c "
  cd /root/s
  for n in \$(seq $runs); do
    if [ \$((n % 2)) = 0 ]; then order='before after'; else order='after before'; fi
    for which in \$order; do
      cp /usr/local/bin/hhlctl-\$which /usr/bin/hhlctl
      old=\$(git rev-parse HEAD)
      echo \"ngx.say(\\\"run \$n \$which\\\")\" > main.lua && git commit -qam \"run \$n \$which\"
      t0=\$(date +%s%N); git push -q origin HEAD:dev1 2>/tmp/push.out || { cat /tmp/push.out >&2; exit 1; }; t1=\$(date +%s%N)
      new=\$(git rev-parse HEAD)
      h0=\$(date +%s%N)
      echo \"\$old \$new refs/heads/dev1\" | (cd /srv/git/socketserver.git && runuser -u hhl -- env HHL_IDENTITY=dev1 /usr/bin/hhlctl hook pre-receive) >/dev/null 2>&1 || { echo \"pre-receive failed with \$which\" >&2; exit 1; }
      h1=\$(date +%s%N)
      echo \$which \$(( (h1 - h0) / 1000 )) \$(( (t1 - t0) / 1000 ))
    done
  done
  cp /usr/local/bin/hhlctl-after /usr/bin/hhlctl")
pct() { # column percentile of the rows of one binary
  awk -v w="$1" -v c="$2" '$1 == w { print $c }' | sort -n | awk -v p="$3" '{ a[NR] = $1 } END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.1f", a[i] / 1000 }'
}
echo "runs: $runs per binary, tree: $files files + main.lua"
for which in before after; do
  echo "$which: pre-receive alone p50 $(pct $which 2 50 <<< "$results") ms  p95 $(pct $which 2 95 <<< "$results") ms;" \
    "git push p50 $(pct $which 3 50 <<< "$results") ms  p95 $(pct $which 3 95 <<< "$results") ms"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "after/before, medians: pre-receive $(ratio "$(pct after 2 50 <<< "$results")" "$(pct before 2 50 <<< "$results")")," \
  "git push $(ratio "$(pct after 3 50 <<< "$results")" "$(pct before 3 50 <<< "$results")")"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
