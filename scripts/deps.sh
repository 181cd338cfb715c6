#!/usr/bin/env bash
# Install the Debian packages hhlctl's build (libsystemd-dev: the log page reads the
# journal through sd-journal), tests and demo use (as root; idempotent).
# Runs `apt-get update` once, and only when something is missing.
set -euo pipefail
pkgs=(libsystemd-dev pkg-config nginx libnginx-mod-http-lua lua-resty-core lua-nginx-websocket lua-nginx-redis lua-cjson redis-server systemd-container dbus polkitd git curl rsyslog logrotate chromium chromium-driver lintian man-db debootstrap debian-archive-keyring openssh-server openssh-client)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages: ${missing[*]}; run this as root to install them" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  # Wait for another apt (unattended upgrades, a second job) rather than fail.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  # Installed packages must not start their own daemons on this host.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
