// SPDX-License-Identifier: MIT
// The main of the Windows tests: the warm-up, then doctest. In the static library of
// win_support.cpp, so that a test binary with a main of its own (spawn_support.cpp's) takes that
// one instead.
#include "win_support.hpp"

int main(int argc, char** argv)
{
    gipc_win_test::warm_up();
    doctest::Context context(argc, argv);
    return context.run();
}
