#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs serverclient with 100 and then the default 1000 clients and checks what it prints.
set -euo pipefail
# GIPC_EXAMPLE_RUN: what runs the program (Wine, for the Windows build); Windows ends lines with
# CR LF.
run=(${GIPC_EXAMPLE_RUN:-})
for n in 100 ""; do
    out=$("${run[@]}" "$@" $n | tr -d '\r')
    if [[ ! "$out" =~ ^${n:-1000}\ clients\ served\ within\ [0-9]+\.[0-9]{2}\ s\.$ ]]; then
        printf 'unexpected output: %s\n' "$out" >&2
        exit 1
    fi
    echo "$out"
done
