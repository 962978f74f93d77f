// SPDX-License-Identifier: MIT
// The command lines of src/windows/cmdline.cpp against Windows itself: CommandLineToArgvW gives
// back the arguments of every case of the table, and the UTF-16 conversion agrees with
// MultiByteToWideChar.
#include "win_support.hpp"

#include "cmdline_cases.hpp"
#include "windows/cmdline.hpp"

#include <shellapi.h>

namespace win = gipc::detail::win;

namespace {

std::wstring wide(const std::u16string& s)
{
    return std::wstring(s.begin(), s.end());
}

std::u16string utf16(const std::string& s)
{
    std::u16string out;
    REQUIRE(win::utf8_to_utf16(s, out) == 0);
    return out;
}

} // namespace

WIN_TEST("CommandLineToArgvW gives back the arguments of every case of the table")
{
    for (const auto& c : gipc_win_test::cmdline_cases) {
        CAPTURE(c.line);
        std::u16string line;
        REQUIRE(win::command_line_utf16(c.argv, line) == 0);
        std::wstring wline = wide(line);
        int argc = 0;
        wchar_t** argv = ::CommandLineToArgvW(wline.c_str(), &argc);
        REQUIRE(argv != nullptr);
        std::vector<std::wstring> got(argv, argv + argc);
        ::LocalFree(argv);
        REQUIRE(got.size() == c.argv.size());
        for (std::size_t i = 0; i < got.size(); ++i) {
            CAPTURE(i);
            CHECK((got[i] == wide(utf16(c.argv[i]))));
        }
    }
}

WIN_TEST("utf8_to_utf16 agrees with MultiByteToWideChar")
{
    for (const auto& c : gipc_win_test::cmdline_cases) {
        for (const auto& arg : c.argv) {
            if (arg.empty())
                continue;
            int n = ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, arg.data(),
                                          static_cast<int>(arg.size()), nullptr, 0);
            REQUIRE(n > 0);
            std::wstring system(static_cast<std::size_t>(n), L'\0');
            ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, arg.data(),
                                  static_cast<int>(arg.size()), system.data(), n);
            CHECK((wide(utf16(arg)) == system));
        }
    }
}
