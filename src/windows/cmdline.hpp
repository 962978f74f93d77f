// SPDX-License-Identifier: MIT
#pragma once
// cmdline.hpp: Windows command lines. A Windows program receives one string, not an argv: the
// parent joins the arguments into a command line and the child's C runtime (or
// CommandLineToArgvW) splits it again. These functions quote so that the split gives back
// exactly the arguments given, under the rules of CommandLineToArgvW:
//   - arguments are separated by spaces and tabs; a double quote starts or ends a quoted part,
//     in which spaces and tabs are ordinary characters;
//   - 2n backslashes followed by a double quote give n backslashes, and the quote delimits;
//     2n+1 backslashes followed by a double quote give n backslashes and a literal quote;
//     backslashes followed by anything else are literal;
//   - the first argument, the program, is split by simpler rules: up to the next space or tab,
//     or, when it starts with a double quote, up to the next one, backslashes being literal.
//     (A Windows file name cannot contain a double quote.)
// Portable C++ (no Windows header): the same code is tested on Linux. Nothing throws but
// std::bad_alloc; the functions return 0 or a Win32 error code, whose values are spelled here.

#include "../private.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace gipc::detail::win {

inline constexpr unsigned long error_invalid_parameter = 87;       // ERROR_INVALID_PARAMETER
inline constexpr unsigned long error_no_unicode_translation = 1113; // ERROR_NO_UNICODE_TRANSLATION

// append_quoted_argument appends arg (not the program: see above) to out, quoted when it is empty
// or holds a space, tab, newline, vertical tab or double quote, so that CommandLineToArgvW gives
// it back unchanged.
void append_quoted_argument(std::string& out, std::string_view arg);

// build_command_line joins argv (argv[0] the program) into one command line in UTF-8.
// argv[0] is always quoted. Returns error_invalid_parameter when argv is empty, argv[0] holds a
// double quote, or any argument holds a NUL character (which a command line cannot carry).
unsigned long build_command_line(const std::vector<std::string>& argv, std::string& out);

// utf8_to_utf16 converts UTF-8 to UTF-16 (what every W function of Windows takes). Returns
// error_no_unicode_translation for malformed UTF-8: a truncated or overlong sequence, an encoded
// surrogate, or a code point past U+10FFFF.
unsigned long utf8_to_utf16(std::string_view in, std::u16string& out);

// utf16_to_utf8 converts back. Returns error_no_unicode_translation for an unpaired surrogate.
unsigned long utf16_to_utf8(std::u16string_view in, std::string& out);

// command_line_utf16: build_command_line, then utf8_to_utf16.
unsigned long command_line_utf16(const std::vector<std::string>& argv, std::u16string& out);

} // namespace gipc::detail::win
