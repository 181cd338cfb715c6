#!/usr/bin/env bash
# Build target/debian/hhlctl_<version>_amd64.deb with cargo-deb.
#
# Needs only what building needs: Rust 1.85 or newer (Cargo.toml's rust-version;
# Debian 12's rustc package is 1.63, too old: install Rust with rustup), cargo-deb,
# and Debian's libsystemd-dev (the console reads the journal through sd-journal) and
# pkg-config. As root it installs the two Debian packages and cargo-deb when they are
# missing; it installs nothing else. The tests' packages (nginx, Redis, chromium,
# debootstrap, lintian, ...) are scripts/deps.sh's, which `bash scripts/test.sh` runs;
# test.sh also runs lintian on the .deb built here.
set -euo pipefail
cd "$(dirname "$0")/.."

need=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
if ! command -v cargo >/dev/null || ! command -v rustc >/dev/null; then
  echo "error: no Rust toolchain (cargo, rustc): install Rust $need or newer with rustup, then run this again" >&2
  exit 1
fi
have=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n 1)" != "$need" ]; then
  echo "error: rustc $have is older than $need, which hhlctl needs (Cargo.toml rust-version): \`rustup update stable\`, or install Rust with rustup (Debian 12's rustc package is 1.63)" >&2
  exit 1
fi

missing=()
for p in libsystemd-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages: ${missing[*]}: \`apt-get install ${missing[*]}\` as root, then run this again" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --version '^3' -q
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
for page in target/assets/*.1 docs/man/*.5 docs/man/*.7; do
  gzip -9n < "$page" > "target/assets/man/$(basename "$page").gz"
done
deb=$(cargo deb --no-build --locked 2>/dev/null | tail -n 1)
echo "built $deb"
