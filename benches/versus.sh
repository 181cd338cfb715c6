#!/usr/bin/env bash
# Benchmark: two builds of hhlctl side by side, in one run, so machine noise hits both
# alike: `hhlctl plan` on 100 developers (404 instances, everything applied) and
# `hhlctl status` on the same 404 running units in a real-systemd container, each
# alternating OLD and NEW run by run, with `systemctl list-units` as the anchor.
# Used to show that a refactor (the layers, one async runtime) costs nothing.
# Usage: OLD=path/to/old/hhlctl [NEW=target/release/hhlctl] [RUNS=21] benches/versus.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-21}
old=${OLD:?OLD=path of the other hhlctl binary}
[ -n "${NEW:-}" ] || cargo build --release -q
new=${NEW:-$PWD/target/release/hhlctl}
work=$(mktemp -d /var/tmp/hhl-versus.XXXXXX)
bash benches/gen-config.sh 100 > "$work/hhl.yaml"
"$new" -c "$work/hhl.yaml" render --out "$work/applied" > /dev/null

median() { sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR+1)/2)] / 1000 }'; }
# Each run: OLD then NEW (then the anchor), so neither sees a quieter machine.
alternate() { # label command-with-BIN...
  local label=$1; shift
  : > "$work/o"; : > "$work/n"; : > "$work/a"
  for _ in $(seq "$runs"); do
    for side in o n; do
      local bin=$old; [ "$side" = n ] && bin=$new
      local t0; t0=$(date +%s%N)
      "$@" "$bin" > /dev/null 2>&1 || true
      echo $(( ($(date +%s%N) - t0) / 1000 )) >> "$work/$side"
    done
    if [ -n "${ANCHOR:-}" ]; then
      local t0; t0=$(date +%s%N); eval "$ANCHOR" > /dev/null 2>&1 || true
      echo $(( ($(date +%s%N) - t0) / 1000 )) >> "$work/a"
    fi
  done
  local o n; o=$(median < "$work/o"); n=$(median < "$work/n")
  printf '%-34s old %7.1f ms  new %7.1f ms  new/old %.2f' "$label" "$o" "$n" "$(awk -v o="$o" -v n="$n" 'BEGIN { print n / o }')"
  if [ -s "$work/a" ]; then
    local a; a=$(median < "$work/a")
    printf '  anchor %.1f ms (old/anchor %.2f, new/anchor %.2f)' "$a" "$(awk -v o="$o" -v a="$a" 'BEGIN { print o / a }')" "$(awk -v n="$n" -v a="$a" 'BEGIN { print n / a }')"
  fi
  echo "  (medians of $runs)"
}
plan() { "$1" -c "$work/hhl.yaml" plan --root "$work/applied"; }
alternate "plan, 404 instances applied" plan

. scripts/container.sh
container_boot
trap 'container_stop; rm -rf "$work"' EXIT
ct sh -c "cp $PWD/units/* /usr/lib/systemd/system/ && systemctl daemon-reload"
ct sh -c 'mkdir -p /etc/hhl && cat > /etc/hhl/hhl.yaml' < "$work/hhl.yaml"
ct "$new" apply > /dev/null
status() { ct "$1" status; }
ANCHOR="ct systemctl list-units --no-pager 'openresty@*' 'redis@*'" alternate "status, 404 running units" status
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
