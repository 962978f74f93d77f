#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# example.sh [COUNT [INTERVAL_MS]]: install what is missing, build, and run the main example,
# pipe_to_child (default: 5 messages, one every 500 ms; COUNT 0 runs until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh build
exec build/examples/pipe_to_child "${1:-5}" "${2:-500}"
