// SPDX-License-Identifier: MIT
#pragma once
// The table of command-line quoting cases, shared by the portable test (the expected command
// line, exactly) and the Windows one (CommandLineToArgvW must give the arguments back).

#include <string>
#include <vector>

namespace gipc_win_test {

struct cmdline_case {
    std::vector<std::string> argv;
    std::string line; // what build_command_line makes of argv
};

// R"(...)" strings: every backslash and quote below is one character of the argument.
inline const std::vector<cmdline_case> cmdline_cases = {
    {{"prog"}, R"("prog")"},
    {{"prog", "a"}, R"("prog" a)"},
    {{"prog", ""}, R"("prog" "")"},
    {{"prog", "a", "", "b", ""}, R"("prog" a "" b "")"},
    {{"prog", "a b"}, R"("prog" "a b")"},
    {{"prog", " "}, R"("prog" " ")"},
    {{"prog", "  leading and trailing  "}, R"("prog" "  leading and trailing  ")"},
    {{"prog", "tab\there"}, "\"prog\" \"tab\there\""},
    {{"prog", "new\nline"}, "\"prog\" \"new\nline\""},
    {{"prog", "vertical\vtab"}, "\"prog\" \"vertical\vtab\""},
    {{"prog", R"(a"b)"}, R"("prog" "a\"b")"},
    {{"prog", R"(")"}, R"("prog" "\"")"},
    {{"prog", R"("")"}, R"("prog" "\"\"")"},
    {{"prog", R"("quoted")"}, R"("prog" "\"quoted\"")"},
    {{"prog", R"(\)"}, R"("prog" \)"},
    {{"prog", R"(\\)"}, R"("prog" \\)"},
    {{"prog", R"(a\b)"}, R"("prog" a\b)"},
    {{"prog", R"(a\\b)"}, R"("prog" a\\b)"},
    {{"prog", R"(\\server\share\)"}, R"("prog" \\server\share\)"},
    {{"prog", R"(a\"b)"}, R"("prog" "a\\\"b")"},
    {{"prog", R"(a\\"b)"}, R"("prog" "a\\\\\"b")"},
    {{"prog", R"(\")"}, R"("prog" "\\\"")"},
    {{"prog", R"(a b\)"}, R"("prog" "a b\\")"},
    {{"prog", R"(a b\\)"}, R"("prog" "a b\\\\")"},
    {{"prog", R"(C:\Program Files\)"}, R"("prog" "C:\Program Files\\")"},
    {{"prog", R"(\ \)"}, R"("prog" "\ \\")"},
    {{"prog", R"("\ )"}, R"("prog" "\"\ ")"},
    {{"prog", R"(a"b"c d)"}, R"("prog" "a\"b\"c d")"},
    {{"prog", "-Dx=\"1 2\"", "--name=value"}, R"("prog" "-Dx=\"1 2\"" --name=value)"},
    {{"prog", "caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac \xe8\xaa\x9e", "\xf0\x9f\x98\x80"},
     "\"prog\" caf\xc3\xa9 \"\xe6\x97\xa5\xe6\x9c\xac \xe8\xaa\x9e\" \xf0\x9f\x98\x80"},
    {{R"(C:\Program Files\app\app.exe)", "x"}, R"("C:\Program Files\app\app.exe" x)"},
    {{R"(C:\dir\)", R"(y\)"}, R"("C:\dir\" y\)"},
    {{R"(C:\a\b.exe)", R"(&|<>^%!)"}, R"("C:\a\b.exe" &|<>^%!)"},
};

} // namespace gipc_win_test
