#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# setup.sh: install what building gipc needs on Debian 12, skipping what is installed.
# Runs as root (or through sudo when it is available). Safe to run again.
set -euo pipefail

packages=(g++ python3 meson ninja-build cmake pkg-config
          libboost-fiber-dev libboost-context-dev libmsgpack-cxx-dev doctest-dev)
# Extra packages a caller asks for, e.g. `setup.sh clang valgrind`.
packages+=("$@")

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "setup.sh: missing packages (${missing[*]}) and not root; install them and retry" >&2
    exit 1
fi
echo "setup.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
