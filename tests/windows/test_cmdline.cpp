// SPDX-License-Identifier: MIT
// Command-line quoting and UTF-8/UTF-16 conversion (src/windows/cmdline.cpp): pure functions,
// tested on every platform; test_win_argv.cpp checks the same table against Windows itself.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "cmdline_cases.hpp"
#include "windows/cmdline.hpp"

namespace win = gipc::detail::win;

TEST_CASE("build_command_line quotes each case of the table as expected")
{
    for (const auto& c : gipc_win_test::cmdline_cases) {
        std::string line = "garbage";
        CAPTURE(c.line);
        REQUIRE(win::build_command_line(c.argv, line) == 0);
        CHECK(line == c.line);
    }
}

TEST_CASE("build_command_line refuses what a command line cannot carry")
{
    std::string line;
    CHECK(win::build_command_line({}, line) == win::error_invalid_parameter);
    CHECK(win::build_command_line({R"(a"b.exe)"}, line) == win::error_invalid_parameter);
    CHECK(win::build_command_line({"prog", std::string("a\0b", 3)}, line) == win::error_invalid_parameter);
    CHECK(win::build_command_line({std::string("p\0", 2)}, line) == win::error_invalid_parameter);
    std::u16string wide;
    CHECK(win::command_line_utf16({"prog", "\xff"}, wide) == win::error_no_unicode_translation);
}

TEST_CASE("append_quoted_argument leaves plain arguments alone")
{
    std::string out;
    win::append_quoted_argument(out, "plain");
    win::append_quoted_argument(out, "/flag:value");
    CHECK(out == "plain/flag:value");
}

TEST_CASE("utf8_to_utf16 converts every length of sequence, and back")
{
    // U+0041, U+00E9, U+65E5, U+1F600 (a surrogate pair), U+10FFFF, U+0000 inside.
    std::string utf8("A\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\0z", 16);
    std::u16string expected{u'A', 0x00E9, 0x65E5, 0xD83D, 0xDE00, 0xDBFF, 0xDFFF, 0, u'z'};
    std::u16string wide;
    REQUIRE(win::utf8_to_utf16(utf8, wide) == 0);
    CHECK(wide == expected);
    std::string back;
    REQUIRE(win::utf16_to_utf8(wide, back) == 0);
    CHECK(back == utf8);
    REQUIRE(win::utf8_to_utf16("", wide) == 0);
    CHECK(wide.empty());
}

TEST_CASE("utf8_to_utf16 refuses malformed UTF-8")
{
    const char* bad[] = {
        "\x80",             // a continuation byte first
        "a\xc3",            // truncated 2-byte sequence
        "\xe6\x97",         // truncated 3-byte sequence
        "\xe6\x41\xa5",     // a non-continuation byte inside
        "\xc0\x80",         // overlong NUL
        "\xe0\x80\xaf",     // overlong '/'
        "\xf0\x82\x82\xac", // overlong U+20AC
        "\xed\xa0\x80",     // U+D800, a surrogate
        "\xed\xbf\xbf",     // U+DFFF
        "\xf4\x90\x80\x80", // U+110000
        "\xf8\x88\x80\x80\x80",
        "\xff",
    };
    for (const char* s : bad) {
        std::u16string wide;
        CAPTURE(std::string(s));
        CHECK(win::utf8_to_utf16(s, wide) == win::error_no_unicode_translation);
    }
}

TEST_CASE("utf16_to_utf8 refuses unpaired surrogates")
{
    std::string out;
    CHECK(win::utf16_to_utf8(std::u16string{0xD800}, out) == win::error_no_unicode_translation);
    CHECK(win::utf16_to_utf8(std::u16string{0xD800, u'a'}, out) == win::error_no_unicode_translation);
    CHECK(win::utf16_to_utf8(std::u16string{0xDC00, 0xD800}, out) == win::error_no_unicode_translation);
    CHECK(win::utf16_to_utf8(std::u16string{u'a', 0xDFFF}, out) == win::error_no_unicode_translation);
}
