#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# refuse_start_process.sh COMPILER ARGS...: on Windows, a program that includes <gipc/process.hpp>
# compiles, and one that calls gipc::start_process does not, with a message naming
# gipc::spawn_process (include/gipc/detail/process.hpp). ARGS are the compiler's flags (the
# include directories of gipc, its generated headers, Boost and msgpack).
set -euo pipefail
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
printf '#include <gipc/process.hpp>\nint main() { return 0; }\n' >"$dir/includes.cpp"
printf '#include <gipc/process.hpp>\nint main() { gipc::start_process([] { return 0; }); }\n' >"$dir/calls.cpp"
printf '#include <gipc/process.hpp>\nint main() { gipc::start_process(gipc::process_options{}, [](int) {}, 1); }\n' \
    >"$dir/calls_options.cpp"
if ! "$@" -fsyntax-only "$dir/includes.cpp" 2>"$dir/err"; then
    echo "a program that only includes <gipc/process.hpp> does not compile:" >&2
    cat "$dir/err" >&2
    exit 1
fi
for f in calls calls_options; do
    if "$@" -fsyntax-only "$dir/$f.cpp" 2>"$dir/err"; then
        echo "a call of start_process compiled ($f.cpp)" >&2
        exit 1
    fi
    if ! grep -q "static assertion failed: gipc::start_process is not available on Windows.*gipc::spawn_process" "$dir/err"; then
        echo "a call of start_process failed to compile, but not with the message naming spawn_process ($f.cpp):" >&2
        cat "$dir/err" >&2
        exit 1
    fi
    echo "$f.cpp: refused, the message names gipc::spawn_process"
done
