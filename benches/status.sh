#!/usr/bin/env bash
# Benchmark: `hhlctl status` on 100 developers x 4 instances (404 units, all running)
# inside a real-systemd container, side by side with
# `systemctl list-units 'openresty@*' 'redis@*'` in the same run. Medians of RUNS.
# hhlctl reads more per unit: MainPID, NRestarts, ActiveEnterTimestamp (memory from the
# cgroup file), and whether every instance's port answers.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-21}
[ -n "${HHLCTL_BIN:-}" ] || cargo build --release -q
bin=${HHLCTL_BIN:-$PWD/target/release/hhlctl}
. scripts/container.sh
container_boot
ct sh -c "cp $PWD/units/* /usr/lib/systemd/system/ && systemctl daemon-reload"
bash benches/gen-config.sh 100 | ct sh -c 'mkdir -p /etc/hhl && cat > /etc/hhl/hhl.yaml'
# apply's own phases: each output line stamped with the ms since the start (users,
# config tests, files, daemon-reload, then the jobs: the last line is the report).
t0=$(date +%s%N)
ct "$bin" apply | while IFS= read -r l; do echo "$(( ($(date +%s%N) - t0) / 1000000 )) $l"; done |
  awk '/^[0-9]+ (created unix user|started) / { w = $2; if (w != k) { if (k) print "  " l " (" n "x)"; n = 0 }; k = w; l = $0; n++; next }
       { if (k) print "  " l " (" n "x)"; k = ""; print "  " $0 } END { if (k) print "  " l " (" n "x)" }'
echo "apply of 404 new instances: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
ct sh -c 'systemctl list-units --no-legend --plain --state=active "openresty@*" "redis@*" | wc -l' | sed 's/^/active units: /'
# Hardening kept: systemd's own exposure score of one instance of each template.
for u in openresty@socketserver-dev1.service redis@40001.service; do
  ct systemd-analyze security --no-pager "$u" | tail -1 | sed 's/^→ //'
done
# Anchor: systemd alone starting the same 404 units (what is left is hhlctl's).
if [ "${APPLY_ANCHOR:-1}" = 1 ]; then
  ct sh -c 'systemctl stop "openresty@*" "redis@*"'
  t0=$(date +%s%N)
  ct sh -c 'systemctl start $(systemctl list-units --all --no-legend --plain "openresty@*" "redis@*" | cut -d" " -f1)'
  echo "systemctl start of the same 404 units: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
fi

median() { sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR+1)/2)] / 1000 }'; }
time_runs() { # command...
  for _ in $(seq "$runs"); do
    t0=$(date +%s%N); ct "$@" > /dev/null || true; t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 ))
  done | median
}
# Interleave the two in one run so machine noise hits both alike.
ours=(); theirs=()
for _ in 1 2 3; do
  ours+=("$(time_runs "$bin" status)")
  theirs+=("$(time_runs systemctl list-units --no-pager 'openresty@*' 'redis@*')")
done
med3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
o=$(med3 "${ours[@]}"); t=$(med3 "${theirs[@]}")
# Where status's time goes (ms since its start: config loaded, systemd's answers and
# memory read, ports checked), three runs.
for _ in 1 2 3; do ct env HHL_TIMES=1 "$bin" status 2>&1 >/dev/null | tail -1; done
show=$(time_runs systemctl show -p ActiveState,MainPID,MemoryCurrent,NRestarts,ActiveEnterTimestamp 'openresty@*' 'redis@*')
echo "hhlctl status (404 units)                      median ${o} ms"
echo "systemctl list-units 'openresty@*' 'redis@*'   median ${t} ms"
echo "systemctl show -p <5 properties> (same units)  median ${show} ms"
awk -v o="$o" -v t="$t" 'BEGIN { printf "ratio hhlctl status / systemctl list-units: %.2f\n", o / t }'
echo "(each median is the middle of 3 medians of $runs runs; times include nsenter)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
