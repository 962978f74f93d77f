#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs pipe_to_child with 3 messages and checks what it prints; then checks that Ctrl-C
# (SIGINT to the process group) stops it cleanly.
set -euo pipefail
exe=$1
shift
flags=("$@") # e.g. --spawn
# GIPC_EXAMPLE_RUN: what runs the program (Wine, for the Windows build); Windows ends lines with
# CR LF.
run=(${GIPC_EXAMPLE_RUN:-})
out=$("${run[@]}" "$exe" "${flags[@]}" 3 50 | tr -d '\r')
expected=$(printf "Child process got message from pipe:\n\t'written to pipe from a fiber running in the main process'\n%.0s" 1 2 3; printf "Child exited with code 0.")
if [ "$out" != "$expected" ]; then
    printf 'unexpected output:\n%s\n' "$out" >&2
    exit 1
fi
# Until Ctrl-C: interrupt once the first message is through (at most 30 s: a loaded machine, or
# Wine starting, can take seconds); the parent must stop and report the child's exit.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
setsid bash -c "${run[*]} \"$exe\" ${flags[*]} 0 20 > \"$log\" & pid=\$!; \
    for i in \$(seq 300); do grep -q 'got message' \"$log\" && break; sleep 0.1; done; \
    kill -INT -\$pid 2>/dev/null || kill -INT \$pid; wait \$pid"
out=$(tr -d '\r' < "$log")
case "$out" in
    *"Child process got message from pipe:"*"Child exited with code "*) ;;
    *) printf 'unexpected output after SIGINT:\n%s\n' "$out" >&2; exit 1 ;;
esac
echo ok
