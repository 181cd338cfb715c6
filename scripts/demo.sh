#!/usr/bin/env bash
# The main job on the shipped example: validate, plan and render every instance.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
bin=target/release/hhlctl
out=$(mktemp -d /tmp/hhl-demo.XXXX)
"$bin" -c examples/hhl.yaml plan --root "$out/root"
"$bin" -c examples/hhl.yaml render --out "$out/rendered"
echo
echo "== openresty@socketserver-dev1: $out/rendered/opt/hhl/socketserver/dev1/conf/nginx.conf"
cat "$out/rendered/opt/hhl/socketserver/dev1/conf/nginx.conf"
