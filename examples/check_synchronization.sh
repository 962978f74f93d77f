#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
set -euo pipefail
out=$("$@")
if [[ ! "$out" =~ ^Time\ delta:\ [0-9]+\.[0-9]{8}\ s\.$ ]]; then
    printf 'unexpected output: %s\n' "$out" >&2
    exit 1
fi
echo "$out"
