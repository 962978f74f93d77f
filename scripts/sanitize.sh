#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# sanitize.sh [builddir]: build gipc, its tests and examples with AddressSanitizer and
# UndefinedBehaviorSanitizer (default builddir: build-sanitize) and run the whole test suite.
# Any sanitizer report fails the run: UBSan does not recover, ASan aborts, and a report that a
# child process printed (children exit through _exit, which a test may not check) is caught by
# scanning the test log. README.md, "Reliability", says what is left out and why.
set -euo pipefail
cd "$(dirname "$0")/.."
builddir=${1:-build-sanitize}
bash scripts/build.sh "$builddir" -Dwerror=true -Dbenchmarks=false \
    -Db_sanitize=address,undefined -Db_lundef=false -Dcpp_args=-fno-sanitize-recover=all
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
rc=0
# The install check builds a program of its own, without sanitizers: the plain build covers it.
meson test -C "$builddir" --print-errorlogs --num-processes 2 --no-suite install || rc=1
if grep -nE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$builddir/meson-logs/testlog.txt"; then
    echo "sanitize.sh: sanitizer reports in $builddir/meson-logs/testlog.txt" >&2
    rc=1
fi
exit $rc
