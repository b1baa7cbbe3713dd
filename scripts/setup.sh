#!/usr/bin/env bash
# setup.sh: make this machine able to run podswarm's Podman tests and demo.
#
# Run as root (CI, developer VMs). Idempotent: a second run only checks and
# takes a second or two. What it does, each step skipped when already done:
#   1. apt-get install podman runc uidmap slirp4netns fuse-overlayfs
#      busybox-static, plus catatonit (the init of --init), curl (to ask the
#      socket) and iptables (swarmtest's network partitions on loopback);
#      apt-get update only when the install needs it;
#   2. /etc/containers/containers.conf.d/50-podswarm.conf: runc (crun fails on
#      this cgroup v1 hybrid host), explicit ulimits (raising RLIMIT_NOFILE or
#      NPROC above 1024/4096 fails here), k8s-file logs and file events (no
#      journald), cgroupfs (no systemd);
#   3. /dev/net/tun usable by unprivileged users (slirp4netns);
#   4. the user "podswarm" with subordinate uid/gid ranges;
#   5. /run/user/<uid> owned by that user, mode 0700;
#   6. that user's `podman system service` on
#      unix:///run/user/<uid>/podman/podman.sock, started detached unless the
#      socket already answers; waits until it answers;
#   7. the image localhost/podswarm/busybox:latest in that user's store,
#      imported from a busybox-static rootfs.
# The last line printed on stdout is the socket URI (progress goes to stderr).
#
# Usage: setup.sh [--print-uri]
#   --print-uri  print the URI only, changing nothing.
#
# Environment: PODSWARM_USER (default podswarm) names the user.
set -euo pipefail

USER_NAME=${PODSWARM_USER:-podswarm}
IMAGE=localhost/podswarm/busybox:latest
PACKAGES=(podman runc uidmap slirp4netns fuse-overlayfs busybox-static catatonit curl iptables)
CONF_DROPIN=/etc/containers/containers.conf.d/50-podswarm.conf

log() { echo "setup.sh: $*" >&2; }
die() {
	echo "setup.sh: ERROR: $*" >&2
	exit 1
}
trap 'rc=$?; [ $rc -eq 0 ] || echo "setup.sh: FAILED (exit $rc)" >&2' EXIT

uri_for_uid() { echo "unix:///run/user/$1/podman/podman.sock"; }

if [ "${1:-}" = "--print-uri" ]; then
	uid=$(id -u "$USER_NAME" 2>/dev/null) || die "user $USER_NAME does not exist yet: run scripts/setup.sh first"
	uri_for_uid "$uid"
	exit 0
elif [ $# -gt 0 ]; then
	die "usage: $0 [--print-uri]"
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and creates the user $USER_NAME)"
export DEBIAN_FRONTEND=noninteractive

# 1. Packages.
missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	if ! apt-get install -y -q "${missing[@]}" >/tmp/podswarm-apt.log 2>&1; then
		log "apt-get install failed; running apt-get update and retrying"
		apt-get update -q >>/tmp/podswarm-apt.log 2>&1 || die "apt-get update failed (see /tmp/podswarm-apt.log)"
		apt-get install -y -q "${missing[@]}" >>/tmp/podswarm-apt.log 2>&1 ||
			die "apt-get install ${missing[*]} failed (see /tmp/podswarm-apt.log)"
	fi
fi
for b in podman runc newuidmap newgidmap slirp4netns curl iptables; do
	command -v "$b" >/dev/null || die "$b not found after installing packages"
done
[ -x /bin/busybox ] || die "/bin/busybox missing (package busybox-static)"

# 2. containers.conf drop-in (read by root and rootless podman alike).
conf='# Written by podswarm scripts/setup.sh.
[containers]
default_ulimits = ["nofile=1024:1024","nproc=4096:4096"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
'
if [ ! -f "$CONF_DROPIN" ] || [ "$(cat "$CONF_DROPIN")" != "${conf%$'\n'}" ]; then
	log "writing $CONF_DROPIN"
	mkdir -p "$(dirname "$CONF_DROPIN")"
	printf '%s' "$conf" >"$CONF_DROPIN"
fi

# 3. /dev/net/tun for slirp4netns.
if [ ! -c /dev/net/tun ]; then
	log "creating /dev/net/tun"
	mkdir -p /dev/net
	mknod /dev/net/tun c 10 200
fi
if [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
	chmod 0666 /dev/net/tun
fi

# Rootless containers need unprivileged user namespaces.
if [ "$(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null || echo 1)" = 0 ]; then
	log "enabling kernel.unprivileged_userns_clone"
	echo 1 >/proc/sys/kernel/unprivileged_userns_clone
fi
if [ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 1)" = 0 ]; then
	log "raising user.max_user_namespaces"
	echo 15000 >/proc/sys/user/max_user_namespaces
fi

# 4. The user and its subordinate ids.
if ! id -u "$USER_NAME" >/dev/null 2>&1; then
	log "creating user $USER_NAME"
	useradd -m -s /bin/bash "$USER_NAME"
fi
uid=$(id -u "$USER_NAME")
home=$(getent passwd "$USER_NAME" | cut -d: -f6)
# next_subid FILE prints the first id after every range in FILE (>= 100000).
next_subid() {
	awk -F: 'BEGIN { m = 100000 } NF >= 3 { e = $2 + $3; if (e > m) m = e } END { print m }' "$1" 2>/dev/null || echo 100000
}
touch /etc/subuid /etc/subgid
if ! grep -q "^$USER_NAME:" /etc/subuid && ! grep -q "^$uid:" /etc/subuid; then
	start=$(next_subid /etc/subuid)
	log "adding subuids $start-$((start + 65535)) for $USER_NAME"
	echo "$USER_NAME:$start:65536" >>/etc/subuid
fi
if ! grep -q "^$USER_NAME:" /etc/subgid && ! grep -q "^$uid:" /etc/subgid; then
	start=$(next_subid /etc/subgid)
	log "adding subgids $start-$((start + 65535)) for $USER_NAME"
	echo "$USER_NAME:$start:65536" >>/etc/subgid
fi

# 5. The runtime directory.
rundir=/run/user/$uid
if [ ! -d "$rundir" ]; then
	mkdir -p "$rundir"
fi
if [ "$(stat -c '%u %a' "$rundir")" != "$uid 700" ]; then
	chown "$USER_NAME:" "$rundir"
	chmod 0700 "$rundir"
fi

# as_user runs a command as the user, in its environment, from /.
as_user() {
	(cd / && runuser -u "$USER_NAME" -- env -i \
		HOME="$home" USER="$USER_NAME" LOGNAME="$USER_NAME" \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		XDG_RUNTIME_DIR="$rundir" "$@")
}

# 6. The API service.
sock=$rundir/podman/podman.sock
uri=$(uri_for_uid "$uid")
svclog=$home/podman-service.log
# api_status PATH: prints the HTTP status code of a GET of PATH on the socket.
api_status() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 --unix-socket "$sock" "http://d$1" 2>/dev/null || true
}
if [ "$(api_status /_ping)" != 200 ]; then
	pidfile=$rundir/podman/service.pid
	oldpid=$(cat "$pidfile" 2>/dev/null || true)
	if [ -n "$oldpid" ] && [ "$(cat "/proc/$oldpid/comm" 2>/dev/null)" = podman ] &&
		[ "$(stat -c %u "/proc/$oldpid" 2>/dev/null)" = "$uid" ]; then
		# Our earlier service, alive but not answering: replace it.
		log "podman service $oldpid does not answer; stopping it"
		kill "$oldpid" 2>/dev/null || true
		sleep 1
		kill -9 "$oldpid" 2>/dev/null || true
	fi
	log "starting podman system service as $USER_NAME on $uri (log: $svclog)"
	rm -f "$sock"
	as_user mkdir -p "$rundir/podman"
	rm -f "$pidfile"
	# setsid: its own session, so it outlives this script, make and CI's step.
	as_user setsid -f sh -c "echo \$\$ >'$pidfile'; exec podman system service --time=0 '$uri' >>'$svclog' 2>&1 </dev/null"
	ok=
	for _ in $(seq 1 150); do
		if [ "$(api_status /_ping)" = 200 ]; then
			ok=1
			break
		fi
		if [ -s "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
			break # it died
		fi
		sleep 0.2
	done
	if [ -z "$ok" ]; then
		tail -n 20 "$svclog" >&2 || true
		die "podman system service did not answer on $uri (log: $svclog)"
	fi
fi

# 7. The test image.
image_exists() { [ "$(api_status "/v4.0.0/libpod/images/$IMAGE/exists")" = 204 ]; }
if ! image_exists; then
	log "building $IMAGE from /bin/busybox"
	work=$(mktemp -d /tmp/podswarm-image.XXXXXX)
	root=$work/rootfs
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,proc,sys,dev,run,var/www,tmp}
	chmod 1777 "$root/tmp"
	chmod 0700 "$root/root"
	cp /bin/busybox "$root/bin/busybox"
	# Every applet at its usual place, as a symlink to /bin/busybox.
	while read -r applet; do
		[ -n "$applet" ] && [ "$applet" != bin/busybox ] || continue
		mkdir -p "$root/$(dirname "$applet")"
		ln -sf /bin/busybox "$root/$applet"
	done < <(/bin/busybox --list-full)
	[ -L "$root/bin/sh" ] || die "busybox has no sh applet"
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\nnobody:x:65534:\n' >"$root/etc/group"
	tar -C "$root" --numeric-owner --owner=0 --group=0 -cf "$work/rootfs.tar" .
	chmod 0755 "$work"
	chmod 0644 "$work/rootfs.tar"
	if ! as_user podman import \
		--change 'CMD ["sh"]' \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'LABEL io.podswarm.image=busybox' \
		"$work/rootfs.tar" "$IMAGE" >"$work/import.log" 2>&1; then
		cat "$work/import.log" >&2
		rm -rf "$work"
		die "podman import of $IMAGE failed"
	fi
	rm -rf "$work"
	image_exists || die "$IMAGE still missing after import"
fi

echo "$uri"
