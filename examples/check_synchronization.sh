#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
set -euo pipefail
# GIPC_EXAMPLE_RUN: what runs the program (Wine, for the Windows build); Windows ends lines with
# CR LF.
run=(${GIPC_EXAMPLE_RUN:-})
out=$("${run[@]}" "$@" | tr -d '\r')
if [[ ! "$out" =~ ^Time\ delta:\ [0-9]+\.[0-9]{8}\ s\.$ ]]; then
    printf 'unexpected output: %s\n' "$out" >&2
    exit 1
fi
echo "$out"
