#!/usr/bin/env bash
# Benchmark: push-to-live latency of a 1,000-file Lua tree, inside a real-systemd
# container. dev1 pushes RUNS commits (each changes main.lua) over ssh with their key
# (the entry account's forced command, as developers do);
# for each: how long `git push` takes (pre-receive checks, deploy, graceful reload),
# and the lag from `git push` returning until GET /hhl serves the new content.
# Prints p50 and p95 of each and of their sum (with the hook's own deploy and reload
# figures), and anchors from the same run:
# the floor (the same tree checked out with git archive | tar, plus one symlink swap),
# a bare `systemctl reload` of the same unit, and `ssh hhl help` (the ssh handshake,
# sshd and `hhlctl ssh` starting: the floor of any push over ssh).
# Then the check after the reload (one request and the new workers' journal lines):
# pushes alternate between socketserver (checked, the default) and dtserver (the same
# tree, `smoke_path: ""`: not checked), so before and after come from the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-21}
files=${FILES:-1000}
. benches/lib.sh
bench_example_container
# dtserver is not checked after its deploys: the anchor of the check's cost.
ct sed -i 's/^        port: 1090$/        port: 1090\n        smoke_path: ""/' /etc/hhl/hhl.yaml
ct hhlctl apply > /dev/null
ct hhlctl repo init > /dev/null
container_dev_key dev1
# repo init put the example game on master; the tree stays 1,000 files + main.lua.
ct sh -c "
  cd /root && git clone -q hhl:socketserver s 2>/dev/null && cd s && git rm -rq --ignore-unmatch game && mkdir -p lib &&
  for i in \$(seq $files); do printf 'local M = {}\nfunction M.f(x) return x + %d end\nreturn M\n' \$i > lib/m\$i.lua; done &&
  echo 'ngx.say(\"run 0\")' > main.lua && git add -A && git commit -qm tree && git push -q origin HEAD:dev1 2>/dev/null"
ct sh -c 'find /opt/hhl/socketserver/dev1/src/ -name "*.lua" | wc -l' | sed 's/^/files live: /'

results=$(ct sh -c "
  cd /root/s
  for n in \$(seq $runs); do
    echo \"ngx.say(\\\"run \$n\\\")\" > main.lua && git commit -qam \"run \$n\"
    t0=\$(date +%s%N); git push -q origin HEAD:dev1 2>/tmp/push.out; t1=\$(date +%s%N)
    until [ \"\$(curl -s http://127.0.0.1:1081/hhl)\" = \"run \$n\" ]; do :; done; t2=\$(date +%s%N)
    # The hook's own figures: the deploy (checkout + swap), then the reload.
    d=\$(sed -n 's/.*remote: deployed .* in \\([0-9]*\\) ms.*/\\1/p' /tmp/push.out)
    r=\$(sed -n 's/.*remote: reloaded .* in \\([0-9]*\\) ms.*/\\1/p' /tmp/push.out)
    echo \$(( (t1 - t0) / 1000 )) \$(( (t2 - t1) / 1000 )) \$(( \${d:-0} * 1000 )) \$(( \${r:-0} * 1000 ))
  done")
pct() { # column percentile
  awk -v c="$1" '{ print $c }' | sort -n | awk -v p="$2" '{ a[NR] = $1 } END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.1f", a[i] / 1000 }'
}
sums=$(awk '{ print $1, $2, $1 + $2, $3, $4 }' <<< "$results")
echo "runs: $runs, tree: $files files + main.lua"
echo "git push (check + deploy + reload):  p50 $(pct 1 50 <<< "$sums") ms  p95 $(pct 1 95 <<< "$sums") ms"
echo "push returned -> new content served: p50 $(pct 2 50 <<< "$sums") ms  p95 $(pct 2 95 <<< "$sums") ms"
echo "git push start -> new content:       p50 $(pct 3 50 <<< "$sums") ms  p95 $(pct 3 95 <<< "$sums") ms"
echo "  of which the hook's deploy:         p50 $(pct 4 50 <<< "$sums") ms  p95 $(pct 4 95 <<< "$sums") ms"
echo "  of which the hook's reload:         p50 $(pct 5 50 <<< "$sums") ms  p95 $(pct 5 95 <<< "$sums") ms"

# Anchors, same container, same tree: the floor and the reload job alone.
anchors=$(ct sh -c "
  for n in \$(seq $runs); do
    t0=\$(date +%s%N)
    rm -rf /tmp/floor.\$n && mkdir /tmp/floor.\$n &&
      git --git-dir=/srv/git/socketserver.git archive dev1 | tar -x -C /tmp/floor.\$n &&
      ln -sfn /tmp/floor.\$n /tmp/floor.next && mv -T /tmp/floor.next /tmp/floor.current
    t1=\$(date +%s%N)
    systemctl reload openresty@socketserver-dev1.service
    t2=\$(date +%s%N)
    ssh hhl help > /dev/null 2>&1
    t3=\$(date +%s%N)
    echo \$(( (t1 - t0) / 1000 )) \$(( (t2 - t1) / 1000 )) \$(( (t3 - t2) / 1000 ))
  done; rm -rf /tmp/floor.*")
echo "anchor: checkout + symlink swap:     p50 $(pct 1 50 <<< "$anchors") ms  p95 $(pct 1 95 <<< "$anchors") ms"
echo "anchor: systemctl reload (the unit): p50 $(pct 2 50 <<< "$anchors") ms  p95 $(pct 2 95 <<< "$anchors") ms"
echo "anchor: ssh hhl help (ssh floor):   p50 $(pct 3 50 <<< "$anchors") ms  p95 $(pct 3 95 <<< "$anchors") ms"

# The check's cost: the same tree and change pushed to a checked and an unchecked
# instance, alternating.
ct sh -c "
  cd /root && git clone -q hhl:dtserver d 2>/dev/null && cd d && cp -r /root/s/lib /root/s/main.lua . &&
  git add -A && git commit -qm tree && git push -q origin HEAD:dev1 2>/dev/null"
ab=$(ct sh -c "
  for n in \$(seq $runs); do
    for r in s d; do
      cd /root/\$r && echo \"ngx.say(\\\"ab \$n\\\")\" > main.lua && git commit -qam \"ab \$n\"
      t0=\$(date +%s%N); git push -q origin HEAD:dev1 2>/tmp/push.\$r; t1=\$(date +%s%N)
      echo -n \"\$(( (t1 - t0) / 1000 )) \"
    done
    c=\$(sed -n 's/.*remote: checked .* in \\([0-9]*\\) ms.*/\\1/p' /tmp/push.s)
    grep -q 'remote: checked' /tmp/push.s || { echo 'error: socketserver was not checked' >&2; exit 1; }
    grep -q 'remote: checked' /tmp/push.d && { echo 'error: dtserver was checked' >&2; exit 1; }
    echo \$(( \${c:-0} * 1000 ))
  done")
echo "git push, checked (socketserver):    p50 $(pct 1 50 <<< "$ab") ms  p95 $(pct 1 95 <<< "$ab") ms"
echo "git push, unchecked (dtserver):      p50 $(pct 2 50 <<< "$ab") ms  p95 $(pct 2 95 <<< "$ab") ms"
echo "  the hook's check alone:             p50 $(pct 3 50 <<< "$ab") ms  p95 $(pct 3 95 <<< "$ab") ms"
echo "  checked / unchecked (p50s):         $(awk -v a="$(pct 1 50 <<< "$ab")" -v b="$(pct 2 50 <<< "$ab")" 'BEGIN { printf "%.2f", a / b }')"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
