#!/bin/sh
# Run inside a freshly booted container (nspawn-boot.sh): hand its systemd the
# resource controllers. On a cgroup v1 host, nspawn mounts the cpu, memory and pids
# hierarchies read-only (only name=systemd is delegated), so CPUQuota=, MemoryMax=
# and TasksMax= would be accepted and silently not enforced. The container's cgroup
# namespace is rooted at its own hhl-NAME group, so making its view writable lets it
# manage only that subtree, as systemd manages the whole tree on a real host.
set -eu
# (A cgroup v2 host needs nothing: nspawn delegates the unified tree.)
awk '$3 == "cgroup" && $4 ~ /(^|,)ro(,|$)/ && $4 ~ /(^|,)(cpu|cpuacct|memory|pids)(,|$)/ { print $2 }' /proc/self/mounts |
	while read -r dir; do
		mount -o remount,rw,bind "$dir"
	done
# systemd looks for usable controllers when it starts: make it look again.
systemctl daemon-reexec
timeout 60 systemctl is-system-running --wait >/dev/null || true
