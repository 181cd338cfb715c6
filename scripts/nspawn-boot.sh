#!/bin/sh
# Boot a real systemd in an ephemeral container of this machine's root, in its own
# cgroups. Run inside `unshare -m --propagation private`.
#   nspawn-boot.sh NAME MOUNTPOINT [nspawn options...]
# With HHL_NETNS=NS in the environment the container joins the network namespace
# /run/netns/NS (made by the caller: several hosts on one LAN) instead of a private
# network of its own.
# With HHL_UPPER=DIR the container is persistent instead of ephemeral: an overlayfs
# of this machine's root (lowerdir=/) with its writes in DIR/upper (DIR/work its
# work directory), on a real disk, mounted here and booted without --volatile. What
# it wrote survives it: booting again on the same DIR (after a reboot inside, or a
# kill) finds it. DIR is the caller's to remove.
# Each container gets cgroup `hhl-NAME` under this process's own in every hierarchy:
# without that, containers started side by side share the root's payload/ and
# supervisor/ groups and their systemds trip over each other (status=219/CGROUP).
# `nspawn-boot.sh --cleanup NAME` removes those cgroups after the container is gone.
set -eu
name=$1
if [ "$name" = --cleanup ]; then
	name=$2
	# The container's last processes leave their cgroups a moment after nspawn exits.
	for _ in $(seq 50); do
		left=0
		for d in /sys/fs/cgroup/*/; do
			for g in $(find "$d" -depth -type d -name "hhl-$name" 2>/dev/null); do
				find "$g" -depth -type d -exec rmdir {} \; 2>/dev/null || true
				[ -d "$g" ] && left=1
			done
		done
		[ "$left" = 0 ] && exit 0
		sleep 0.1
	done
	echo "nspawn-boot.sh: cgroups hhl-$name still in use" >&2
	exit 1
fi
mnt=$2
shift 2
network=--private-network
[ -z "${HHL_NETNS:-}" ] || network=--network-namespace-path=/run/netns/$HHL_NETNS
while IFS=: read -r _ ctrl path; do
	case "$ctrl" in
		"") dir=/sys/fs/cgroup/unified ;;
		name=systemd) dir=/sys/fs/cgroup/systemd ;;
		*cpuset*) continue ;;  # a new cpuset group has no CPUs until configured
		*) dir=/sys/fs/cgroup/$ctrl ;;
	esac
	[ -d "$dir" ] || { [ "$ctrl" = "" ] && dir=/sys/fs/cgroup; }
	[ -w "$dir$path" ] || continue
	mkdir -p "$dir$path/hhl-$name"
	echo $$ > "$dir$path/hhl-$name/cgroup.procs"
done < /proc/self/cgroup
volatile=--volatile=overlay
if [ -n "${HHL_UPPER:-}" ]; then
	mkdir -p "$HHL_UPPER/upper" "$HHL_UPPER/work"
	mount -t overlay overlay -o "lowerdir=/,upperdir=$HHL_UPPER/upper,workdir=$HHL_UPPER/work" "$mnt"
	volatile=--volatile=no
else
	mount --bind / "$mnt"
fi
exec systemd-nspawn -q -D "$mnt" "$volatile" --register=no --keep-unit "$network" -b \
	--machine="hhl$name" --console=pipe "$@" \
	-- systemd.mask=nginx.service systemd.mask=redis-server.service systemd.mask=postgresql.service
