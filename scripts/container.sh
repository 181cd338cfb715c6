# Source me: boot a real systemd in an ephemeral container of this machine's root
# (shared/design/REAL-SYSTEMD.md). Needs root and systemd-nspawn. The current
# directory is bound read-only at its own path (nspawn puts a tmpfs on /tmp).
#   container_boot        sets CT_PID (the container's systemd) and installs units/
#   ct CMD...             runs CMD inside
#   container_stop        clean shutdown (also run on EXIT by container_boot)
#   container_dev_key ID  an ssh key for identity ID in /root/.ssh (ID's machine),
#                         its line in CONFIG's `keys:`, `Host hhl` in ssh's config,
#                         apply, and sshd running: then `ct ssh hhl …`, `git clone
#                         hhl:socketserver` work as ID

container_boot() {
  CT_MNT=$(mktemp -d /var/tmp/hhlroot.XXXXXX)
  CT_NAME=$$
  unshare -m --propagation private "$PWD/scripts/nspawn-boot.sh" "$CT_NAME" "$CT_MNT" --bind-ro="$PWD:$PWD" \
      </dev/null >/dev/null 2>&1 &
  CT_NSPAWN=$!
  trap container_stop EXIT
  trap "container_stop; exit 130" INT TERM
  CT_PID=
  for _ in $(seq 500); do
    if [ "$(cat /proc/$CT_NSPAWN/comm 2>/dev/null)" = systemd-nspawn ]; then
      for c in $(cat /proc/$CT_NSPAWN/task/$CT_NSPAWN/children 2>/dev/null); do
        [ "$(cat /proc/$c/comm 2>/dev/null)" = systemd ] && CT_PID=$c
      done
    fi
    [ -n "$CT_PID" ] && break
    sleep 0.02
  done
  [ -n "$CT_PID" ] || { echo "error: the container did not start" >&2; return 1; }
  ct sh -c 'for i in $(seq 300); do [ -S /run/systemd/private ] && break; sleep 0.02; done; timeout 60 systemctl is-system-running --wait' >/dev/null || true
  ct "$PWD/scripts/container-cgroups.sh"
}

ct() { nsenter -t "$CT_PID" -a -- "$@"; }

container_stop() {
  [ -n "${CT_NSPAWN:-}" ] || return 0
  kill -TERM "$CT_NSPAWN" 2>/dev/null || true
  for _ in $(seq 200); do kill -0 "$CT_NSPAWN" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$CT_NSPAWN" 2>/dev/null || true
  rmdir "$CT_MNT" 2>/dev/null || true
  "$PWD/scripts/nspawn-boot.sh" --cleanup "$CT_NAME" || true
  CT_NSPAWN=
}

container_dev_key() {
  local id=$1 config=${2:-/etc/hhl/hhl.yaml}
  ct sh -c "mkdir -p -m 700 /root/.ssh && rm -f /root/.ssh/id_ed25519* &&
    ssh-keygen -q -t ed25519 -N '' -C $id@laptop -f /root/.ssh/id_ed25519 &&
    printf 'keys:\n  $id: [\"%s\"]\n' \"\$(cat /root/.ssh/id_ed25519.pub)\" >> $config &&
    printf 'Host hhl\n    HostName 127.0.0.1\n    User hhl\n    StrictHostKeyChecking accept-new\n    UserKnownHostsFile /dev/null\n    LogLevel ERROR\n    BatchMode yes\n' > /root/.ssh/config &&
    git config --global user.email $id@hhl && git config --global user.name $id && git config --global --add safe.directory '*'"
  ct hhlctl -c "$config" apply > /dev/null
  ct sh -c 'ssh-keygen -A >/dev/null && systemctl start ssh.service'
}
