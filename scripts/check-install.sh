#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check-install.sh: install gipc into a fresh prefix, then compile and run a small program
# against it using only `pkg-config --cflags --libs gipc`. Prints "install check: ok".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
meson setup "$work/build" --prefix "$work/prefix" -Dtests=false -Dexamples=false -Dbenchmarks=false >/dev/null
meson install -C "$work/build" >/dev/null
test -f "$work/prefix/include/gipc/gipc.hpp"
pc_dir=$(dirname "$(find "$work/prefix" -name gipc.pc | head -n 1)")
cat > "$work/main.cpp" <<'CPP'
#include <gipc/gipc.hpp>
#include <boost/fiber/all.hpp>
#include <unistd.h>
#include <cstdio>
int main()
{
    int p[2];
    if (::pipe(p) != 0)
        return 1;
    boost::fibers::fiber f([&] { (void)!::write(p[1], "x", 1); });
    gipc::wait_readable(p[0]);
    f.join();
    std::puts("install check: ok");
}
CPP
PKG_CONFIG_PATH=$pc_dir c++ -std=c++20 "$work/main.cpp" -o "$work/main" \
    $(PKG_CONFIG_PATH=$pc_dir pkg-config --cflags --libs gipc)
"$work/main"
