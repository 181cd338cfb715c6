#!/usr/bin/env bash
# Every test layer: Debian packages, formatting, clippy, unit, golden-tree, CLI,
# real nginx/Redis, and real-systemd container tests. Run as root on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --all-targets -- --test-threads=2
