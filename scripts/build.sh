#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# build.sh [builddir] [meson options...]: install what is missing, configure once, compile.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
builddir=${1:-build}
shift || true
if [ ! -f "$builddir/build.ninja" ]; then
    meson setup "$builddir" "$@"
elif [ $# -gt 0 ]; then
    meson configure "$builddir" "$@"
fi
meson compile -C "$builddir"
