#!/usr/bin/env bash
# Build the previous release's .deb, the one the upgrade test (tests/upgrade.rs) starts
# from, and print its path. The release is the commit in packaging/previous-release;
# its tree is taken with `git archive` (no checkout, no worktree left behind) into
# target/previous-release/<commit>/ and built there by that tree's own
# scripts/build-deb.sh, then copied to target/previous-release/previous-<commit>.deb
# (named apart: both releases may carry one version). Built once: later runs print
# the cached .deb. A lock serialises the tests that ask for it at once.
# Usage: build-previous-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."
commit=$(grep -v '^#' packaging/previous-release | grep -m1 .) || true
if ! [[ $commit =~ ^[0-9a-f]{40}$ ]]; then
  echo "error: packaging/previous-release must hold one full commit id (40 hex digits) on a line of its own, found ${commit:-nothing}" >&2
  exit 1
fi
out=target/previous-release
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
deb="$out/previous-${commit:0:12}.deb"
if [ -f "$deb" ]; then
  echo "$PWD/$deb"
  exit 0
fi
if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
  if [ "$(git rev-parse --is-shallow-repository)" = true ]; then
    echo "error: this clone is shallow and lacks the previous release $commit (packaging/previous-release): run \`git fetch --unshallow\`, or clone without --depth" >&2
  else
    echo "error: the previous release $commit (packaging/previous-release) is not in this clone: run \`git fetch origin\`" >&2
  fi
  exit 1
fi
# Sources once (a build that failed midway keeps its target/ for the next try).
if [ ! -f "$out/$commit/.extracted" ]; then
  rm -rf --one-file-system "$out/$commit"
  mkdir -p "$out/$commit"
  git archive "$commit" | tar -x -C "$out/$commit"
  touch "$out/$commit/.extracted"
fi
# Its own build script, in its own tree: its own Cargo.lock, target/ and lintian check.
(cd "$out/$commit" && bash scripts/build-deb.sh >&2) || {
  echo "error: building the previous release $commit failed (its scripts/build-deb.sh, in $out/$commit)" >&2
  exit 1
}
debs=("$out/$commit"/target/debian/hhlctl_*.deb)
cp "${debs[-1]}" "$deb.tmp"
mv "$deb.tmp" "$deb"
echo "$PWD/$deb"
