#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test.sh [builddir] [meson setup options...]: install what is missing, build with warnings as
# errors, and run the whole test suite. Exits non-zero when a test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
builddir=${1:-build}
shift || true
bash scripts/build.sh "$builddir" -Dwerror=true "$@"
meson test -C "$builddir" --print-errorlogs --num-processes 2
