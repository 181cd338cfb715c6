#!/bin/sh
# Boot a clean-host tree (scripts/cleanhost-rootfs.sh's, copied per test) with its own
# systemd, its own loopback and its own cgroups. Run inside `unshare -m --propagation
# private`. Unlike nspawn-boot.sh the tree is persistent (no --volatile): a reboot
# inside (`systemctl reboot`: nspawn exits 133) keeps what was installed and applied.
# With NETNS, the host joins that network namespace (made by the test, joined to a
# client's by a veth pair) instead of a private network of its own.
#   cleanhost-boot.sh NAME DIR [NETNS]
# `nspawn-boot.sh --cleanup NAME` removes the cgroups after the container is gone.
set -eu
name=$1
dir=$2
network=--private-network
[ -z "${3:-}" ] || network=--network-namespace-path=/run/netns/$3
while IFS=: read -r _ ctrl path; do
	case "$ctrl" in
		"") cg=/sys/fs/cgroup/unified ;;
		name=systemd) cg=/sys/fs/cgroup/systemd ;;
		*cpuset*) continue ;;  # a new cpuset group has no CPUs until configured
		*) cg=/sys/fs/cgroup/$ctrl ;;
	esac
	[ -d "$cg" ] || { [ "$ctrl" = "" ] && cg=/sys/fs/cgroup; }
	[ -w "$cg$path" ] || continue
	mkdir -p "$cg$path/hhl-$name"
	echo $$ > "$cg$path/hhl-$name/cgroup.procs"
done < /proc/self/cgroup
exec systemd-nspawn -q -D "$dir" --register=no --keep-unit "$network" -b \
	--machine="hhl$name" --console=pipe
