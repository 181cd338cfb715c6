#!/usr/bin/env bash
# Benchmark: what the deadlines cost on a normal path.
#  1. The wrapper alone (benches/child_deadline.rs): `git rev-parse HEAD` through std's
#     Command::output and through host::child::output, alternating, `true` as anchor.
#  2. A git push deploy (dev1 pushes a change of main.lua over ssh: pre-receive checks
#     with git and the Lua syntax check, then the deploy's git archive | tar, the HUP
#     and the push-time check's journalctl), in a real-systemd container with the
#     shipped example: OLD and NEW hhlctl installed in turn, push by push, so machine
#     noise hits both alike (each goes first every other run); `ssh hhl help` (the
#     floor of any push over ssh) as anchor.
# Usage: OLD=path/to/hhlctl-before [RUNS=21] benches/deadlines.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-21}
old=${OLD:?OLD=path of the hhlctl binary without the deadlines}

cargo bench --bench child_deadline --no-run -q 2>/dev/null
micro=$(ls -t target/release/deps/child_deadline-* | grep -v '\.d$' | head -1)
RUNS=$(( runs * 20 + 1 )) "$micro"

# The container sees this tree (bound read-only), not the rest of the host's changes.
cp "$old" target/release/hhlctl-old
. benches/lib.sh
bench_example_container
ct hhlctl repo init > /dev/null
container_dev_key dev1
ct sh -c "cd /root && git clone -q hhl:socketserver s 2>/dev/null && cd s &&
  echo 'ngx.say(\"run 0\")' > main.lua && git add -A && git commit -qm start && git push -q origin HEAD:dev1 2>/dev/null"

median() { sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR+1)/2)] / 1000 }'; }
results=$(ct sh -c "
  cd /root/s
  for n in \$(seq $runs); do
    # Each side goes first every other run: neither always follows the other's reload.
    order='old new'; [ \$((n % 2)) = 0 ] && order='new old'
    : > /tmp/run.times
    for side in \$order; do
      if [ \$side = old ]; then install -m 755 $PWD/target/release/hhlctl-old /usr/bin/hhlctl
      else install -m 755 $PWD/target/release/hhlctl /usr/bin/hhlctl; fi
      echo \"ngx.say(\\\"\$side \$n\\\")\" > main.lua && git commit -qam \"\$side \$n\"
      t0=\$(date +%s%N); git push -q origin HEAD:dev1 2>/tmp/push.out || { cat /tmp/push.out >&2; exit 1; }; t1=\$(date +%s%N)
      [ \"\$(curl -s http://127.0.0.1:1081/hhl)\" = \"\$side \$n\" ] || { echo \"error: \$side \$n not served\" >&2; exit 1; }
      echo \"\$side \$(( (t1 - t0) / 1000 ))\" >> /tmp/run.times
    done
    echo -n \"\$(sed -n 's/^old //p' /tmp/run.times) \$(sed -n 's/^new //p' /tmp/run.times) \"
    t0=\$(date +%s%N); ssh hhl help > /dev/null 2>&1; t1=\$(date +%s%N)
    echo \$(( (t1 - t0) / 1000 ))
  done")
o=$(awk '{ print $1 }' <<< "$results" | median)
n=$(awk '{ print $2 }' <<< "$results" | median)
a=$(awk '{ print $3 }' <<< "$results" | median)
printf 'git push deploy: old %.1f ms  new %.1f ms  new/old %.3f  anchor `ssh hhl help` %.1f ms (old/anchor %.2f, new/anchor %.2f)  (medians of %d)\n' \
  "$o" "$n" "$(awk -v o="$o" -v n="$n" 'BEGIN { print n / o }')" "$a" \
  "$(awk -v o="$o" -v a="$a" 'BEGIN { print o / a }')" "$(awk -v n="$n" -v a="$a" 'BEGIN { print n / a }')" "$runs"
rm -f target/release/hhlctl-old
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
