#!/usr/bin/env bash
# Every test layer: Debian packages, formatting, clippy, the .deb (cargo-deb + lintian),
# unit, golden-tree, CLI, real nginx/Redis, real-systemd container and package tests.
# Run as root on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
bash scripts/build-deb.sh
HHL_DEB=$(ls target/debian/hhlctl_*.deb | tail -n 1)
export HHL_DEB
# The package's own check (a test tool: deps.sh installs lintian, the build does not).
lintian --fail-on error,warning --info "$HHL_DEB"
echo "lintian: no errors, no warnings"
# The previous release's package, for tests/upgrade.rs (built once, cached under target/).
HHL_PREVIOUS_DEB=$(bash scripts/build-previous-deb.sh)
export HHL_PREVIOUS_DEB
cargo test --locked --all-targets -- --test-threads=2
