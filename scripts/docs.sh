#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# docs.sh: install what is missing (Doxygen included), configure build-docs/ without tests,
# examples or benchmarks, and build the API reference from the public headers with
# `meson compile -C build-docs docs` (HTML in build-docs/docs/html). Fails on any Doxygen
# warning: every public name must be documented. The whole output goes to build-docs/docs.log;
# the warnings, if any, are printed, and the script ends with "docs.sh: N warnings".
set -euo pipefail
cd "$(dirname "$0")/.."
builddir=build-docs

bash scripts/setup.sh doxygen

# A build dir configured before Doxygen was installed has a docs target that only says so:
# configure it again, which is quick, so that it finds Doxygen.
if [ -f "$builddir/build.ninja" ]; then
    meson setup --reconfigure "$builddir" -Dtests=false -Dexamples=false -Dbenchmarks=false >/dev/null
else
    meson setup "$builddir" -Dtests=false -Dexamples=false -Dbenchmarks=false >/dev/null
fi

log="$builddir/docs.log"
rc=0
meson compile -C "$builddir" docs >"$log" 2>&1 || rc=$?

# Doxygen's Doxyfile has WARN_AS_ERROR = FAIL_ON_WARNINGS, so it fails on a warning by itself;
# counting them here too keeps the check whatever the Doxyfile says.
warnings=$(grep -cE '(warning|error): ' "$log" || true)
if [ "$warnings" -gt 0 ]; then
    grep -E '(warning|error): ' "$log" >&2
fi
echo "docs.sh: $warnings warnings; HTML in $builddir/docs/html, log in $log"
if [ "$rc" -ne 0 ] || [ "$warnings" -gt 0 ]; then
    [ "$warnings" -eq 0 ] && tail -n 30 "$log" >&2
    echo "docs.sh: the API reference build failed (exit $rc, $warnings warnings)" >&2
    exit 1
fi
