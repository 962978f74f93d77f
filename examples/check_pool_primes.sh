#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs pool_primes below 200000 in chunks of 20000 and checks the count (17984) and that the
# crashed chunk was lost once and counted again (killed by SIGABRT; on Windows, exit code 3).
set -euo pipefail
# GIPC_EXAMPLE_RUN: what runs the program (Wine, for the Windows build); Windows ends lines with
# CR LF.
run=(${GIPC_EXAMPLE_RUN:-})
out=$("${run[@]}" "$@" 200000 20000 | tr -d '\r')
echo "$out"
case "$out" in
    *"lost a chunk: gipc: worker Pool-"*"killed by signal 6"*"17984 primes below 200000 (10 chunks on "*" workers, 1 worker lost and replaced)"*) ;;
    *"lost a chunk: gipc: worker Pool-"*"exited with code 3"*"17984 primes below 200000 (10 chunks on "*" workers, 1 worker lost and replaced)"*) ;;
    *) echo "unexpected output" >&2; exit 1 ;;
esac
