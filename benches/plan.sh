#!/usr/bin/env bash
# Benchmark: `hhlctl plan` on 100 developers x 3 servers + Redis (404 instances).
# Reports the median, min and max of RUNS wall-clock runs, against an empty root and
# against a root where everything is already applied (the common case).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-21}
cargo build --release -q
bin=target/release/hhlctl
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
bash benches/gen-config.sh 100 > "$work/hhl.yaml"
mkdir -p "$work/empty"
"$bin" -c "$work/hhl.yaml" render --out "$work/applied" > /dev/null

measure() { # label root
  local times=()
  for _ in $(seq "$runs"); do
    local t0 t1; t0=$(date +%s%N)
    "$bin" -c "$work/hhl.yaml" plan --root "$2" > /dev/null
    t1=$(date +%s%N); times+=($(( (t1 - t0) / 1000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v label="$1" -v n="$runs" '
    { a[NR] = $1 } END { printf "%-28s median %6.1f ms  min %6.1f ms  max %6.1f ms  (%d runs)\n", label, a[int((n+1)/2)]/1000, a[1]/1000, a[n]/1000, n }'
}
echo "plan, $(grep -c 'port:' "$work/hhl.yaml") port entries, $("$bin" -c "$work/hhl.yaml" plan --json --root "$work/empty" | grep -c '"unit"') instances"
measure "plan (nothing on disk)" "$work/empty"
measure "plan (everything applied)" "$work/applied"
