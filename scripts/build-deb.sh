#!/usr/bin/env bash
# Build target/debian/hhlctl_<version>_amd64.deb with cargo-deb, then lintian it:
# any error or warning fails the build.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --version '^3' -q
command -v lintian >/dev/null || { echo "error: lintian is missing: bash scripts/deps.sh installs it" >&2; exit 1; }
# The commit `hhlctl --version` names; without git it says the commit is unknown.
if commit=$(git rev-parse --short=12 HEAD 2>/dev/null); then
  git diff --quiet HEAD -- 2>/dev/null || commit="$commit-modified"
  export HHL_COMMIT=$commit
else
  unset HHL_COMMIT
  echo "note: not a git checkout: \`hhlctl --version\` will say the commit is unknown" >&2
fi
cargo build --release --locked -q
rm -rf target/assets && mkdir -p target/assets/man
target/release/hhlctl generate-assets target/assets > /dev/null
for page in target/assets/*.1; do gzip -9n < "$page" > "target/assets/man/$(basename "$page").gz"; done
deb=$(cargo deb --no-build --locked 2>/dev/null | tail -n 1)
echo "built $deb"
lintian --fail-on error,warning --info "$deb"
echo "lintian: no errors, no warnings"
