// SPDX-License-Identifier: MIT
// tests/support's fixture for the tests of tests/ that run on Windows too (test_pipe.cpp):
// gipc_test::leak_check fails a case that leaves a gipc handle open (the registry of open ends)
// or a handle of the process (win_support.hpp's handle_leak_check, with its grace period). The
// test main is win_support.cpp's, whose warm-up installs gipc's scheduler first, so that the
// thread's completion port belongs to every test's baseline.
#include "test_support.hpp"

#include "win_support.hpp"

#include <gipc/detail/test_support.hpp>
#include <gipc/runtime.hpp>

namespace gipc_test {

struct os_leak_check {
    gipc_win_test::handle_leak_check handles;
};

leak_check::leak_check() : handles_(gipc::detail::open_handle_count()), threads_(0)
{
    os_ = std::make_unique<os_leak_check>();
}

leak_check::~leak_check()
{
    const std::size_t now = gipc::detail::open_handle_count();
    if (now > handles_)
        FAIL_CHECK((now - handles_) << " gipc handle(s) left open by the test (" << handles_ << " before, "
                                    << now << " after)");
    os_.reset(); // the process's handles, after their grace period
}

namespace {
const bool reactor_warm_up = gipc_win_test::register_warm_up([] { gipc::use_reactor(); });
} // namespace

} // namespace gipc_test
