#!/usr/bin/env bash
# Build (once) a minimal Debian root filesystem for the clean-host tests and print its
# path: /var/cache/hhl-tests/<suite>/root. debootstrap's minbase plus what a booted
# Debian server has (systemd, dbus, ca-certificates), from the Debian mirror named in
# this machine's apt sources. Built in a temporary directory and renamed into place,
# so a killed build never leaves a half tree behind; a lock serialises builders.
# Usage: cleanhost-rootfs.sh SUITE   (bookworm | trixie)
set -euo pipefail
suite=${1:?usage: cleanhost-rootfs.sh SUITE}
cache=${HHL_TEST_CACHE:-/var/cache/hhl-tests}
for tool in debootstrap systemd-nspawn; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing: bash scripts/deps.sh installs it" >&2; exit 1; }
done
# The first http(s) URI of a deb822 stanza whose Suites name a plain or -updates suite
# (not -security), from /etc/apt/sources.list.d/*.sources, else /etc/apt/sources.list.
mirror=$(awk '/^URIs:/{u=$2} /^Suites:/{ if ($0 !~ /-security/ && u != "") {print u; exit} }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $0 !~ /-security/ {for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || { echo "error: no Debian mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list" >&2; exit 1; }
security=$(awk '/^URIs:/{u=$2} /^Suites:/{ if ($0 ~ /-security/ && u != "") {print u; exit} }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$security" ] || security="${mirror%/debian}/debian-security"

mkdir -p "$cache"
exec 9>"$cache/$suite.lock"
flock 9
dest="$cache/$suite/root"
if [ -d "$dest" ]; then echo "$dest"; exit 0; fi
tmp=$(mktemp -d "$cache/.$suite.build.XXXXXX")
trap 'rm -rf --one-file-system "$tmp"' EXIT
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,ca-certificates \
  "$suite" "$tmp/root" "$mirror" >"$tmp/debootstrap.log" 2>&1 \
  || { tail -n 30 "$tmp/debootstrap.log" >&2; echo "error: debootstrap $suite from $mirror failed" >&2; exit 1; }
rm -f "$tmp/root/etc/apt/sources.list"
cat > "$tmp/root/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
# An ops host has a hostname and a machine id of its own; nspawn fills in the rest.
echo "hhl-$suite" > "$tmp/root/etc/hostname"
: > "$tmp/root/etc/machine-id"
# Package lists now, with the network, so tests start from an up-to-date tree.
cp -L /etc/resolv.conf "$tmp/root/etc/resolv.conf"
systemd-nspawn -q -D "$tmp/root" --register=no --keep-unit --pipe \
  apt-get -qq update >"$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log" >&2; echo "error: apt-get update in the $suite tree failed" >&2; exit 1; }
mkdir -p "$cache/$suite"
mv "$tmp/root" "$dest"
echo "$dest"
