#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs pipeline with 700 words and checks the counts uniq -c printed.
set -euo pipefail
exe=$1
out=$(timeout 60 "$exe" 700)
expected=$(printf "    300 apple\n    200 fig\n    100 pear\n    100 plum\nsort exited with 0, uniq with 0")
if [ "$(printf '%s' "$out" | sed 's/^ *//')" != "$(printf '%s' "$expected" | sed 's/^ *//')" ]; then
    printf 'unexpected output:\n%s\n' "$out" >&2
    exit 1
fi
echo ok
