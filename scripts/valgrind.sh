#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# valgrind.sh [builddir]: run the pipe suite under valgrind's memcheck (default builddir: build,
# built by scripts/build.sh). Any memcheck error or definite leak fails the run.
#
# --max-stackframe: fiber stacks are heap blocks a few hundred KiB apart, and memcheck takes a
# stack pointer move of less than --max-stackframe for a function call, not a stack switch: with
# its default (2 MiB) it marks the memory between two fiber stacks as freed stack and reports
# every later access to it. No frame of gipc or its tests comes near 32 KiB.
#
# Only the pipe suite runs: the others start child processes, and Debian 12's valgrind 3.19 does
# not implement pidfd_open, which gipc watches children with (see README.md, "Reliability").
set -euo pipefail
cd "$(dirname "$0")/.."
builddir=${1:-build}
bash scripts/setup.sh valgrind
bash scripts/build.sh "$builddir"
meson test -C "$builddir" --suite pipe --print-errorlogs --timeout-multiplier 10 \
    --wrapper "valgrind --error-exitcode=1 --max-stackframe=32768 --leak-check=full --errors-for-leak-kinds=definite -q"
