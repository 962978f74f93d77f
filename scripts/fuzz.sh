#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# fuzz.sh [SECONDS]: install what is missing, build the libFuzzer targets with clang, ASan and
# UBSan in build-fuzz/ (gipc itself included), and run fuzz_reader for SECONDS (default 60)
# on a scratch copy of the seed corpus fuzz/corpus, which stays unchanged. Exits non-zero on
# any finding (crash, sanitizer report, framing mismatch, hang, leak, out-of-memory); the input
# is then kept in build-fuzz/fuzz-artifacts/ and can be replayed with
#   build-fuzz/fuzz/fuzz_reader build-fuzz/fuzz-artifacts/<file>
# The whole libFuzzer output goes to build-fuzz/fuzz.log; the script ends with libFuzzer's
# final stats line ("#N DONE cov: ... ft: ... corp: ... exec/s: ...").
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
builddir=build-fuzz

# libFuzzer's runtime (libclang_rt.fuzzer) is in libclang-rt-N-dev, which clang only
# recommends: name it, for the clang version installed.
bash scripts/setup.sh clang
clang_major=$(clang++ -dumpversion | cut -d. -f1)
bash scripts/setup.sh "libclang-rt-${clang_major}-dev"

if [ ! -f "$builddir/build.ninja" ]; then
    CXX=clang++ meson setup "$builddir" -Dfuzzing=true -Dtests=false -Dexamples=false \
        -Dbenchmarks=false -Db_sanitize=address,undefined -Db_lundef=false
fi
meson compile -C "$builddir" -j 2

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
artifacts="$builddir/fuzz-artifacts"
log="$builddir/fuzz.log"
mkdir -p "$artifacts"

# New inputs go to the first directory (the scratch one); fuzz/corpus is only read.
# -max_len covers a whole frame at the 64 KiB max_message_size of the "large" option.
echo "fuzz.sh: fuzzing fuzz_reader for ${seconds}s; log in $log" >&2
rc=0
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$builddir/fuzz/fuzz_reader" "$scratch" fuzz/corpus \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=70000 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1 || rc=$?

if [ "$rc" -ne 0 ]; then
    tail -n 60 "$log" >&2
    echo "fuzz.sh: fuzz_reader found a problem (exit $rc); input kept in $artifacts/" >&2
    exit "$rc"
fi
grep -E '^stat::' "$log" || true
grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1
