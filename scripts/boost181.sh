#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# boost181.sh [builddir]: build and test gipc against Boost 1.81 on a fresh Debian 12.
#
# Makes a minimal Debian 12 root (debootstrap --variant=minbase: no compiler, no cmake, no git),
# installs libboost-fiber1.81-dev and libboost-context1.81-dev in it, copies this source tree in
# and runs the README's test command there (scripts/test.sh), which has to install everything else
# itself. Meson's test log is copied to BUILDDIR/meson-logs/testlog.json (default build-boost181).
# Needs root (debootstrap, chroot, mount).
#
# Cached between runs under $GIPC_CI_CACHE (default /var/cache/gipc-ci): the debootstrap root,
# kept pristine (each run works in a copy of it, removed afterwards), and the .debs the copies
# download. Without the cache everything is made from nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
builddir=${1:-build-boost181}
cache=${GIPC_CI_CACHE:-/var/cache/gipc-ci}
suite=bookworm
boost_packages=(libboost-fiber1.81-dev libboost-context1.81-dev)

if [ "$(id -u)" -ne 0 ]; then
    echo "boost181.sh: needs root (debootstrap, chroot, mount)" >&2
    exit 1
fi
bash scripts/setup.sh debootstrap debian-archive-keyring

# The mirror the host's apt uses (deb822 or one-line sources), and whatever proxy apt is told to
# use: debootstrap and the root's apt reach the archive the same way.
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v -- '-security' | head -n 1 || true)
fi
if [ -z "$mirror" ]; then
    mirror=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; exit } }' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
eval "$(apt-config shell apt_http_proxy Acquire::http::Proxy apt_valid Acquire::Check-Valid-Until)"
if [ -n "${apt_http_proxy:-}" ] && [ "${apt_http_proxy}" != DIRECT ]; then
    export http_proxy=$apt_http_proxy
fi

mkdir -p "$cache/archives/partial"
base=$cache/$suite-minbase

# The pristine root, made once (under a lock: CI runs on one machine may share the cache).
exec 9>"$cache/.lock"
flock 9
if [ ! -f "$base/.gipc-complete" ]; then
    echo "boost181.sh: debootstrap $suite from $mirror into $base" >&2
    rm -rf --one-file-system "$base.tmp"
    start=$SECONDS
    debootstrap --variant=minbase --cache-dir="$cache/archives" "$suite" "$base.tmp" "$mirror" \
        >"$cache/debootstrap.log" 2>&1 || {
        tail -n 30 "$cache/debootstrap.log" >&2
        exit 1
    }
    rm -rf --one-file-system "$base"
    mv "$base.tmp" "$base"
    touch "$base/.gipc-complete"
    echo "boost181.sh: debootstrap took $((SECONDS - start)) s" >&2
fi
flock -u 9

root=$(mktemp -d "$cache/root.XXXXXX")
mounted=()
cleanup() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" || true
    done
    # Never remove a tree that still has something mounted in it (/dev is bound there).
    if awk -v r="$root/" 'index($2 "/", r) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
        echo "boost181.sh: $root still has mounts; left in place" >&2
    elif [ -z "${GIPC_KEEP_ROOT:-}" ]; then
        rm -rf --one-file-system "$root"
    fi
}
trap cleanup EXIT
mount_in() { # mount_in DIR mount-arguments...: mounts at $root/DIR
    local at=$root/$1
    shift
    mkdir -p "$at"
    mount "$@" "$at"
    mounted+=("$at")
}

start=$SECONDS
cp -a "$base/." "$root/"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# debootstrap writes no /etc/hosts; a Debian machine or container has one, and the tests connect
# to "localhost".
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
{
    [ -n "${http_proxy:-}" ] && echo "Acquire::http::Proxy \"$http_proxy\";"
    [ "${apt_valid:-}" = false ] && echo 'Acquire::Check-Valid-Until "false";'
    true
} >"$root/etc/apt/apt.conf.d/90gipc-ci"
mount_in proc -t proc proc
mount_in sys -t sysfs sysfs
mount_in dev --bind /dev
mount_in dev/pts --bind /dev/pts
if mountpoint -q /dev/shm; then
    mount_in dev/shm --bind /dev/shm
fi
mount_in var/cache/apt/archives --bind "$cache/archives"

# The source tree as committed, with the work tree's changes to tracked files.
mkdir -p "$root/src/gipc"
if command -v git >/dev/null 2>&1 && git rev-parse --git-dir >/dev/null 2>&1; then
    rev=$(git stash create 2>/dev/null || true)
    git archive --format=tar "${rev:-HEAD}" | tar -x -C "$root/src/gipc"
else
    tar -c --exclude='./build*' --exclude='./subprojects/*/' . | tar -x -C "$root/src/gipc"
fi

in_root() {
    chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb CI="${CI:-}" \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}
rc=0
in_root bash -euc '
    export DEBIAN_FRONTEND=noninteractive
    chown _apt:root /var/cache/apt/archives/partial 2>/dev/null || true
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    dpkg-query -W "$@"' boost181 "${boost_packages[@]}" || rc=$?
echo "boost181.sh: root ready in $((SECONDS - start)) s" >&2

if [ $rc -eq 0 ]; then
    in_root bash -c 'cd /src/gipc && bash scripts/test.sh' || rc=$?
fi
mkdir -p "$builddir/meson-logs"
if [ -f "$root/src/gipc/build/meson-logs/testlog.json" ]; then
    cp "$root/src/gipc/build/meson-logs/testlog.json" "$builddir/meson-logs/testlog.json"
else
    rm -f "$builddir/meson-logs/testlog.json"
fi
echo "boost181.sh: done in $((SECONDS - start)) s (exit $rc)" >&2
exit $rc
