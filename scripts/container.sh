# Source me: boot a real systemd in an ephemeral container of this machine's root
# (shared/design/REAL-SYSTEMD.md). Needs root and systemd-nspawn. The current
# directory is bound read-only at its own path (nspawn puts a tmpfs on /tmp).
#   container_boot        sets CT_PID (the container's systemd) and installs units/
#   ct CMD...             runs CMD inside
#   container_stop        clean shutdown (also run on EXIT by container_boot)

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
