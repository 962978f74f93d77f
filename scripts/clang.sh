#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# clang.sh [builddir]: build gipc, its tests, examples and benchmarks with clang++ (Debian 12:
# clang 14) and warnings as errors (default builddir: build-clang), libgipc with clang's
# thread-safety analysis (-Wthread-safety, added by meson.build for clang: the annotations of
# src/thread_safety.hpp are checked, and a violation is an error), and run the test suite but
# for the install check, which builds a program of its own with c++ (the g++ build of
# scripts/test.sh covers it). Exits non-zero when the build or a test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
builddir=${1:-build-clang}
bash scripts/setup.sh clang
# Meson keeps the compiler a build dir was configured with: refuse one configured with another.
if [ -f "$builddir/build.ninja" ] && ! grep -q 'clang++' "$builddir/build.ninja"; then
    echo "clang.sh: $builddir was configured with another compiler; remove it or name another" >&2
    exit 1
fi
CXX=clang++ bash scripts/build.sh "$builddir" -Dwerror=true
meson test -C "$builddir" --print-errorlogs --num-processes 2 --no-suite install
