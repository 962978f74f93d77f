#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check-install.sh [static|shared ...]: for each library kind (default: both), install gipc into a
# fresh prefix, then compile and run a small program against it using only
# `pkg-config --cflags --libs gipc`. Prints "install check (KIND): ok" for each.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
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
    std::printf("install check (%s): ok\n", GIPC_KIND);
}
CPP
kinds=("$@")
[ ${#kinds[@]} -gt 0 ] || kinds=(static shared)
for kind in "${kinds[@]}"; do
    rm -rf "$work/build" "$work/prefix"
    meson setup "$work/build" --prefix "$work/prefix" -Ddefault_library="$kind" \
        -Dtests=false -Dexamples=false -Dbenchmarks=false >/dev/null
    meson install -C "$work/build" >/dev/null
    test -f "$work/prefix/include/gipc/gipc.hpp"
    pc_dir=$(dirname "$(find "$work/prefix" -name gipc.pc | head -n 1)")
    libdir=$(PKG_CONFIG_PATH=$pc_dir pkg-config --variable=libdir gipc)
    c++ -std=c++20 -DGIPC_KIND="\"$kind\"" "$work/main.cpp" -o "$work/main" \
        $(PKG_CONFIG_PATH=$pc_dir pkg-config --cflags --libs gipc)
    LD_LIBRARY_PATH=$libdir "$work/main"
done
