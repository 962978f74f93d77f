#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# setup.sh [extra packages...]: install what building gipc needs on Debian 12 (or a later Debian
# or Ubuntu), skipping what is installed. Runs as root (or through sudo when it is available).
# Safe to run again. Extra packages are installed too, e.g. `setup.sh clang valgrind`;
# `setup.sh doxygen` adds what `meson compile -C build docs` needs.
#
# Boost: whichever libboost-fiber1.NN-dev is installed is used (with the libboost-context1.NN-dev
# of the same NN); only when none is does this install the distribution's default
# (libboost-fiber-dev, libboost-context-dev).
#
# msgpack-cxx: libmsgpack-cxx-dev depends on libboost-dev, the distribution's default Boost, which
# conflicts with any other libboost1.NN-dev. Where it cannot be installed beside the Boost in use,
# its .deb is downloaded (apt-get download) and unpacked without its dependencies into /usr/local,
# a prefix that compilers, CMake and Meson search by default. This rather than the Meson wrap in
# subprojects/: the wrap fetches msgpack-c from its Git repository, which a machine that reaches
# only its distribution's package archive cannot do, and keeping a copy of msgpack-c in this
# repository would be a second msgpack-cxx to track. The .deb is the very version Debian's own
# packages are built with; its headers need only Boost's headers, which every libboost1.NN-dev has.
set -euo pipefail

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    sudo=(false)
fi
export DEBIAN_FRONTEND=noninteractive

# dpkg-query fails when it knows no package of the name or pattern (a fresh machine, where no
# Boost was ever installed): under pipefail that would end the script, silently, so its status is
# not the pipeline's.
installed() {
    local status
    status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
    [[ $status == *"install ok installed"* ]]
}

# The NN of every installed libboost-fiber1.NN-dev, newest last.
boost_versions=$({ dpkg-query -W -f='${Package} ${Status}\n' 'libboost-fiber1.*-dev' 2>/dev/null || true; } |
    awk '/install ok installed/ { sub(/^libboost-fiber/, "", $1); sub(/-dev$/, "", $1); print $1 }' |
    sort -V)
boost=$(printf '%s\n' "$boost_versions" | tail -n 1)

# dpkg-dev: Meson asks its dpkg-architecture for Debian's multiarch libdir (lib/x86_64-linux-gnu);
# without it Meson installs into lib64, where neither pkg-config nor CMake look on Debian.
packages=(g++ python3 meson ninja-build cmake pkg-config dpkg-dev doctest-dev)
if [ -n "$boost" ]; then
    packages+=("libboost-context$boost-dev")
else
    packages+=(libboost-fiber-dev libboost-context-dev)
fi
packages+=("$@")

# msgpack-cxx is present when its package is, or when an earlier run unpacked it into /usr/local.
msgpack_local=/usr/local/include/msgpack.hpp
need_msgpack=1
if installed libmsgpack-cxx-dev || [ -f "$msgpack_local" ]; then
    need_msgpack=0
fi

missing=()
for p in "${packages[@]}"; do
    installed "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && [ $need_msgpack -eq 0 ] && exit 0

if [ "${sudo[0]:-}" = false ]; then
    [ $need_msgpack -eq 1 ] && missing+=(msgpack-cxx)
    echo "setup.sh: missing packages (${missing[*]}) and not root; install them and retry" >&2
    exit 1
fi
"${sudo[@]}" apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup.sh: installing ${missing[*]}" >&2
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ $need_msgpack -eq 0 ] && exit 0

# Does libmsgpack-cxx-dev install beside the Boost in use, without removing anything?
if plan=$(apt-get install -s --no-install-recommends libmsgpack-cxx-dev 2>/dev/null) &&
    ! grep -q '^Remv' <<<"$plan"; then
    echo "setup.sh: installing libmsgpack-cxx-dev" >&2
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends libmsgpack-cxx-dev >/dev/null
    exit 0
fi

echo "setup.sh: libmsgpack-cxx-dev needs the default Boost (libboost-dev), not Boost 1.${boost#1.}" \
    "in use here: unpacking its .deb into /usr/local without its dependencies" >&2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # apt-get download runs as the _apt user where it can
(cd "$work" && apt-get download -qq libmsgpack-cxx-dev)
dpkg-deb -x "$work"/libmsgpack-cxx-dev_*.deb "$work/root"
# usr/include/msgpack*, usr/lib/<triplet>/cmake/msgpackc-cxx (its CMake files find their prefix
# from where they are) and the copyright under usr/share/doc go to the same places in /usr/local.
"${sudo[@]}" cp -r --no-preserve=ownership "$work/root/usr/." /usr/local/
test -f "$msgpack_local"
