#!/usr/bin/env bash
# Benchmark: status across three hosts (real systemd hosts in network namespaces, the
# multi-host test's harness) against one host's own status and against systemd's own
# listing, medians of RUNS in the same run. Needs root, like the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-21} cargo test --locked --test hosts -- --ignored --nocapture bench_status_across_hosts 2>&1 |
  sed -n '/^medians/,/^  hhlctl hosts/p'
