#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check-install.sh [static|shared ...]: for each library kind (default: both), install gipc into a
# fresh prefix, then compile and run a small program against it twice: with only
# `pkg-config --cflags --libs gipc`, and as a CMake project using only find_package(gipc) and
# gipc::gipc. Checks that the installed <gipc/version.hpp> says the project's version, and that
# the CMake package refuses a version it is not compatible with. Prints
# "install check (KIND, pkg-config|cmake): ok" for each.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/main.cpp" <<'CPP'
#include <gipc/gipc.hpp>
#include <gipc/version.hpp>
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
    std::printf("version %d.%d.%d %s\n", GIPC_VERSION_MAJOR, GIPC_VERSION_MINOR,
                GIPC_VERSION_PATCH, GIPC_VERSION_STRING);
    std::printf("install check (%s): ok\n", GIPC_KIND);
}
CPP
mkdir -p "$work/cmake"
cat > "$work/cmake/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(gipc_consumer LANGUAGES CXX)
# A version this package is not compatible with must not be found...
find_package(gipc ${GIPC_INCOMPATIBLE} QUIET)
if(gipc_FOUND)
  message(FATAL_ERROR "find_package(gipc ${GIPC_INCOMPATIBLE}) found gipc ${gipc_VERSION}")
endif()
# ...and the one it is must be.
find_package(gipc ${GIPC_REQUEST} REQUIRED)
add_executable(app ../main.cpp)
target_compile_definitions(app PRIVATE "GIPC_KIND=\"${GIPC_KIND}\"")
target_link_libraries(app PRIVATE gipc::gipc)
CMAKE

kinds=("$@")
[ ${#kinds[@]} -gt 0 ] || kinds=(static shared)
for kind in "${kinds[@]}"; do
    rm -rf "$work/build" "$work/prefix" "$work/cmake/build"
    meson setup "$work/build" --prefix "$work/prefix" -Ddefault_library="$kind" \
        -Dtests=false -Dexamples=false -Dbenchmarks=false >/dev/null
    meson install -C "$work/build" >/dev/null
    test -f "$work/prefix/include/gipc/gipc.hpp"
    test -f "$work/prefix/include/gipc/version.hpp"
    version=$(meson introspect --projectinfo "$work/build" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
    release=${version%%-*}
    IFS=. read -r major minor patch <<<"$release"

    # pkg-config
    pc_dir=$(dirname "$(find "$work/prefix" -name gipc.pc | head -n 1)")
    libdir=$(PKG_CONFIG_PATH=$pc_dir pkg-config --variable=libdir gipc)
    pc_version=$(PKG_CONFIG_PATH=$pc_dir pkg-config --modversion gipc)
    if [ "$pc_version" != "$version" ]; then
        echo "install check ($kind): gipc.pc says $pc_version, the project $version" >&2
        exit 1
    fi
    c++ -std=c++20 -DGIPC_KIND="\"$kind, pkg-config\"" "$work/main.cpp" -o "$work/main" \
        $(PKG_CONFIG_PATH=$pc_dir pkg-config --cflags --libs gipc)
    out=$(LD_LIBRARY_PATH=$libdir "$work/main")
    printf '%s\n' "$out" | grep -v '^version '
    # The installed <gipc/version.hpp> against `meson introspect --projectinfo`.
    if [ "$(printf '%s\n' "$out" | sed -n 's/^version //p')" != "$major.$minor.$patch $version" ]; then
        echo "install check ($kind): <gipc/version.hpp> says" \
            "'$(printf '%s\n' "$out" | sed -n 's/^version //p')', the project $version" >&2
        exit 1
    fi

    # CMake: the same program, found through gipcConfig.cmake alone.
    if [ "$major" -eq 0 ]; then
        request=$major.$minor
        incompatible=$major.$((minor + 1)) # before 1.0.0 each minor release may break the API
    else
        request=$major.0
        incompatible=$((major + 1)).0
    fi
    cmake -S "$work/cmake" -B "$work/cmake/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
        -DGIPC_KIND="$kind, cmake" -DGIPC_REQUEST="$request" -DGIPC_INCOMPATIBLE="$incompatible" \
        >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log" >&2; exit 1; }
    cmake --build "$work/cmake/build" >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log" >&2; exit 1; }
    "$work/cmake/build/app" | grep -v '^version '
done
