#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# windows.sh [builddir]: cross-build gipc for Windows with MinGW-w64 and run its tests under
# Wine (default builddir: build-windows). Exits non-zero on any failure.
#
#   1. installs g++-mingw-w64-x86-64-posix and wine64 (and meson, ninja, pkg-config, Debian's
#      Boost 1.74 headers and doctest) when they are missing;
#   2. builds Boost.Context (Windows fibers: -DBOOST_USE_WINFIB) and Boost.Fiber 1.74 from
#      ../shared/vendor/boost-1.74-fiber-context-src (relative to the project root) into
#      <builddir>/deps, as static libraries beside a copy of Debian's Boost headers, with
#      pkg-config files; reused as long as its stamp (compiler, flags, sources) is unchanged;
#   3. writes <builddir>/deps/cross.ini, a Meson cross file whose exe_wrapper runs wine64 in a
#      private prefix (<builddir>/wineprefix, made with `wineboot --init` when new and set to
#      Windows 10), headless;
#   4. configures <builddir> as a cross build and runs `meson test` under Wine;
#   5. installs the library into <builddir>/install with a gipc.pc (and the Boost it built beside
#      it), and checks that a program cross-built with `pkg-config --static --cflags --libs gipc`
#      alone, linked -static, runs under Wine.
#
# Boost under Wine needs winfib: with Boost.Context's default fcontext, every exception thrown on
# a fiber stack ends in std::terminate under Wine 8 (README.md, "Windows"). Every program linked
# with this Boost must be compiled with -DBOOST_USE_WINFIB too; boost-context.pc says so.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
builddir=${1:-build-windows}
mkdir -p "$builddir"
builddir=$(cd "$builddir" && pwd)
vendor=$(cd "$root/../shared/vendor/boost-1.74-fiber-context-src" 2>/dev/null && pwd) || {
    echo "windows.sh: $root/../shared/vendor/boost-1.74-fiber-context-src is missing" >&2
    exit 1
}

host=x86_64-w64-mingw32
cxx=$host-g++-posix
wine=/usr/lib/wine/wine64
jobs=2

# 1. Packages.
installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}
# libboost1.74-dev, libmsgpack-cxx-dev and doctest-dev: the headers the cross build copies (Boost,
# msgpack) and uses (doctest).
packages=(g++-mingw-w64-x86-64-posix wine64 meson ninja-build pkg-config python3 libboost1.74-dev
    doctest-dev libmsgpack-cxx-dev)
missing=()
for p in "${packages[@]}"; do
    installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        sudo=()
    elif command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "windows.sh: missing packages (${missing[*]}) and not root; install them and retry" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    echo "windows.sh: installing ${missing[*]}" >&2
    if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
        "${sudo[@]}" apt-get update -qq
        "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi

# 2. Boost.Context and Boost.Fiber for MinGW-w64, cached in <builddir>/deps.
deps=$builddir/deps
# -DNDEBUG as Debian builds its Boost (the Linux build's): Boost.Fiber 1.74's debug checks
# include one that fails where nothing is wrong, `! ctx->remote_ready_is_linked()` in
# scheduler::sleep2ready_, when another thread wakes a fiber in a timed wait (its context then
# sits in the remote ready queue and still in the sleep queue, which sleep2ready_ skips by
# twstatus and schedule() leaves).
boost_flags=(-std=c++20 -O2 -DNDEBUG -D_WIN32_WINNT=0x0A00 -DBOOST_ALL_NO_LIB -DBOOST_USE_WINFIB)
context_srcs=(context/src/fiber.cpp context/src/continuation.cpp context/src/windows/stack_traits.cpp)
fiber_srcs=()
for f in "$vendor"/fiber/src/*.cpp "$vendor"/fiber/src/algo/*.cpp; do
    fiber_srcs+=("${f#"$vendor"/}")
done
stamp=$(
    $cxx --version | head -n 1
    echo "${boost_flags[*]}"
    dpkg-query -W -f='${Version}\n' libboost1.74-dev 2>/dev/null || true
    (cd "$vendor" && sha256sum "${context_srcs[@]}" "${fiber_srcs[@]}")
)
if [ ! -f "$deps/stamp" ] || [ "$(cat "$deps/stamp")" != "$stamp" ]; then
    echo "windows.sh: building Boost.Context (winfib) and Boost.Fiber 1.74 into $deps" >&2
    [ -d /usr/include/boost/fiber ] || {
        echo "windows.sh: Debian's Boost headers (/usr/include/boost, libboost1.74-dev) are missing;" \
            "run scripts/setup.sh" >&2
        exit 1
    }
    # The vendored sources are Boost 1.74's: the headers must be too.
    grep -q '^#define BOOST_LIB_VERSION "1_74"' /usr/include/boost/version.hpp || {
        echo "windows.sh: /usr/include/boost is not Boost 1.74, the version of $vendor" >&2
        exit 1
    }
    rm -rf "$deps"
    mkdir -p "$deps/include" "$deps/lib/pkgconfig" "$deps/obj"
    # A copy of the headers, so that -isystem brings Boost and nothing else of /usr/include.
    # Hard links where the file system allows (instant), a real copy elsewhere.
    cp -al /usr/include/boost "$deps/include/boost" 2>/dev/null || cp -a /usr/include/boost "$deps/include/boost"
    cp -a /usr/include/doctest "$deps/include/doctest"
    # A small ninja file compiles the sources, at most $jobs at once.
    {
        echo "rule cxx"
        echo "  command = $cxx ${boost_flags[*]} -D\$define -isystem $deps/include -c \$in -o \$out"
        echo "rule ar"
        echo "  command = rm -f \$out && $host-ar rcs \$out \$in"
        for lib in context fiber; do
            objs=()
            if [ $lib = context ]; then srcs=("${context_srcs[@]}"); define=BOOST_CONTEXT_SOURCE
            else srcs=("${fiber_srcs[@]}"); define=BOOST_FIBERS_SOURCE; fi
            for src in "${srcs[@]}"; do
                obj=obj/$(echo "$src" | tr / _).o
                objs+=("$obj")
                echo "build $obj: cxx $vendor/$src"
                echo "  define = $define"
            done
            echo "build lib/libboost_$lib.a: ar ${objs[*]}"
        done
    } >"$deps/build.ninja"
    ninja -C "$deps" -j "$jobs" --quiet
    rm -rf "$deps/obj" "$deps/build.ninja" "$deps/.ninja_log" "$deps/.ninja_deps"
    cat >"$deps/lib/pkgconfig/boost-context.pc" <<EOF
prefix=$deps
includedir=\${prefix}/include
libdir=\${prefix}/lib

Name: boost-context
Description: Boost.Context 1.74 for MinGW-w64 with Windows fibers (winfib)
Version: 1.74.0
Cflags: -isystem \${includedir} -DBOOST_USE_WINFIB -DBOOST_ALL_NO_LIB
Libs: -L\${libdir} -lboost_context
EOF
    cat >"$deps/lib/pkgconfig/boost-fiber.pc" <<EOF
prefix=$deps
libdir=\${prefix}/lib

Name: boost-fiber
Description: Boost.Fiber 1.74 for MinGW-w64
Version: 1.74.0
Requires: boost-context
Libs: -L\${libdir} -lboost_fiber
EOF
    cat >"$deps/lib/pkgconfig/doctest.pc" <<EOF
prefix=$deps
includedir=\${prefix}/include

Name: doctest
Description: Debian's doctest header, for the cross build
Version: $(dpkg-query -W -f='${Version}' doctest-dev 2>/dev/null | sed 's/-.*//')
Cflags: -isystem \${includedir}
EOF
    printf '%s\n' "$stamp" >"$deps/stamp"
fi

# msgpack-cxx's headers (Debian's, header-only), beside Boost's: gipc's public headers include
# them. Outside the stamp: copying them needs no rebuild of Boost.
if [ ! -f "$deps/include/msgpack.hpp" ]; then
    cp -al /usr/include/msgpack /usr/include/msgpack.hpp "$deps/include/" 2>/dev/null ||
        cp -a /usr/include/msgpack /usr/include/msgpack.hpp "$deps/include/"
fi

# 3. Wine prefix and cross file.
prefix=$builddir/wineprefix
wine_env=(env -u DISPLAY "WINEPREFIX=$prefix" WINEDEBUG=-all "WINEDLLOVERRIDES=mscoree,mshtml=")
if [ ! -f "$prefix/system.reg" ]; then
    echo "windows.sh: creating the Wine prefix $prefix" >&2
    "${wine_env[@]}" "$wine" wineboot --init >/dev/null 2>&1
    "${wine_env[@]}" /usr/lib/wine/wineserver -w
fi
# A new prefix of Debian's Wine 8 says it is Windows 7 (6.1.7601); gipc is for Windows 10 and
# later, so the prefix says Windows 10.
if [ ! -f "$prefix/gipc-win10" ]; then
    "${wine_env[@]}" "$wine" winecfg -v win10 >/dev/null 2>&1
    "${wine_env[@]}" /usr/lib/wine/wineserver -w
    touch "$prefix/gipc-win10"
fi
# Wine's server outlives the programs by a few seconds; end it when this script ends, so that
# nothing of this run stays behind.
trap '"${wine_env[@]}" /usr/lib/wine/wineserver -k 2>/dev/null || true' EXIT
# One persistent server for the whole run, started before any test: otherwise each Wine program
# starts one when none runs, and a server that has been idle for its few seconds of persistence
# exits while the next program connects to it, which that program reports as "wine client
# error:0: recvmsg: Connection reset by peer" and dies of. (-p returns once the server listens.)
# Then the prefix's system processes, among them the winedevice.exe that serves sockets
# (nsiproxy), are started here by ipconfig with /dev/null as their output: started by the first
# test that opens a socket they would hold its output pipe open for as long as the server runs,
# and Meson would wait for that pipe's end until the test's timeout.
if ! "${wine_env[@]}" /usr/lib/wine/wineserver -p; then
    echo "windows.sh: a Wine server of $prefix runs already; the tests use it" >&2
fi
"${wine_env[@]}" "$wine" ipconfig >/dev/null 2>&1 </dev/null || true

quote_list() { # quote_list words...: a Meson array of strings
    local out= w
    for w in "$@"; do out+="${out:+, }'$w'"; done
    printf '[%s]' "$out"
}
cat >"$deps/cross.ini" <<EOF
# Written by scripts/windows.sh.
[binaries]
c = '$host-gcc-posix'
cpp = '$cxx'
ar = '$host-ar'
strip = '$host-strip'
windres = '$host-windres'
pkgconfig = 'pkg-config'
exe_wrapper = $(quote_list "${wine_env[@]}" "$wine")

[properties]
pkg_config_libdir = ['$deps/lib/pkgconfig']
# How examples/meson.build's check scripts run an example under Wine.
example_runner = $(quote_list "${wine_env[@]}" "$wine")

[built-in options]
# The MinGW runtime (libstdc++, libgcc, winpthread) linked in: the programs run under Wine
# without DLLs to find.
c_link_args = ['-static']
cpp_link_args = ['-static']

[host_machine]
system = 'windows'
cpu_family = 'x86_64'
cpu = 'x86_64'
endian = 'little'
EOF

# 4. Configure, build, test. The test log of an earlier run goes first: a run that fails before
# its tests leaves none, which .ci/run counts as a failure.
rm -f "$builddir/meson-logs/testlog.json"
if [ ! -f "$builddir/build.ninja" ]; then
    meson setup "$builddir" --cross-file "$deps/cross.ini" -Dwerror=true
fi
meson compile -C "$builddir" -j "$jobs"
meson test -C "$builddir" --print-errorlogs --num-processes "$jobs"

# 5. Install the cross-built library into <builddir>/install, with the Boost it was built
# against beside it (static libraries, Boost's and msgpack's headers) and a gipc.pc whose Cflags
# carry every define that Boost build needs; then check that `pkg-config --static --cflags
# --libs gipc` alone cross-builds a program (linked -static) that runs under Wine.
inst=$builddir/install
rm -rf "$inst" "$inst.stage"
meson install -C "$builddir" --quiet --no-rebuild --destdir "$inst.stage"
# Meson installs under its configured prefix inside the staging directory: take that prefix.
staged=$(find "$inst.stage" -name libgipc.a -print -quit)
mv "$(dirname "$(dirname "$staged")")" "$inst"
rm -rf "$inst.stage"
cp -a "$deps/lib/libboost_context.a" "$deps/lib/libboost_fiber.a" "$inst/lib/"
cp -al "$deps/include/boost" "$deps/include/msgpack" "$deps/include/msgpack.hpp" "$inst/include/" 2>/dev/null ||
    cp -a "$deps/include/boost" "$deps/include/msgpack" "$deps/include/msgpack.hpp" "$inst/include/"
version=$(meson introspect "$builddir" --projectinfo | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
mkdir -p "$inst/lib/pkgconfig"
cat >"$inst/lib/pkgconfig/gipc.pc" <<EOF
prefix=$inst
includedir=\${prefix}/include
libdir=\${prefix}/lib

Name: gipc
Description: Child processes and inter-process communication for Boost.Fiber programs (Windows, MinGW-w64)
Version: $version
# Boost.Context is built with Windows fibers (winfib): every program that uses it must be too.
Cflags: -I\${includedir} -DBOOST_USE_WINFIB -DBOOST_ALL_NO_LIB
Libs: -L\${libdir} -lgipc -lgipc_win -lboost_fiber -lboost_context
Libs.private: -lws2_32 -lntdll -lsynchronization
EOF
check=$builddir/install-check
rm -rf "$check"
mkdir -p "$check"
cat >"$check/check.cpp" <<'EOF'
// A program cross-built against the installed gipc with pkg-config alone (scripts/windows.sh).
#include <gipc/runtime.hpp>
#include <gipc/version.hpp>

#include <boost/fiber/all.hpp>

#include <chrono>
#include <cstdio>
#include <stdexcept>

int main()
{
    gipc::use_reactor();
    int done = 0;
    boost::fibers::fiber sleeper([&] {
        boost::this_fiber::sleep_for(std::chrono::milliseconds(20));
        ++done;
    });
    boost::fibers::fiber thrower([&] {
        try {
            throw std::runtime_error("caught on a fiber stack");
        } catch (const std::runtime_error&) {
            ++done;
        }
    });
    sleeper.join();
    thrower.join();
    std::printf("gipc %s: %d fibers done\n", GIPC_VERSION_STRING, done);
    return done == 2 ? 0 : 1;
}
EOF
flags=$(PKG_CONFIG_LIBDIR="$inst/lib/pkgconfig" pkg-config --static --cflags --libs gipc)
# shellcheck disable=SC2086 # pkg-config's output is a list of words
$cxx -std=c++20 -O2 -o "$check/check.exe" "$check/check.cpp" $flags -static
out=$("${wine_env[@]}" "$wine" "$check/check.exe" | tr -d '\r')
if [ "$out" != "gipc $version: 2 fibers done" ]; then
    echo "windows.sh: the program built against $inst with pkg-config alone printed: $out" >&2
    exit 1
fi
echo "windows.sh: installed into $inst; a program built with pkg-config alone ($flags -static) runs: $out"
