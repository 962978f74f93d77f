// SPDX-License-Identifier: MIT
#include "cmdline.hpp"

#include <cstddef>
#include <cstdint>

namespace gipc::detail::win {

void append_quoted_argument(std::string& out, std::string_view arg)
{
    if (!arg.empty() && arg.find_first_of(" \t\n\v\"") == std::string_view::npos) {
        out += arg;
        return;
    }
    out += '"';
    std::size_t backslashes = 0;
    for (char c : arg) {
        if (c == '\\') {
            ++backslashes;
            continue;
        }
        if (c == '"') {
            // The backslashes before a quote are doubled, and one more escapes the quote.
            out.append(2 * backslashes + 1, '\\');
        } else {
            out.append(backslashes, '\\');
        }
        backslashes = 0;
        out += c;
    }
    // Backslashes before the closing quote are doubled, or the last would escape it.
    out.append(2 * backslashes, '\\');
    out += '"';
}

unsigned long build_command_line(const std::vector<std::string>& argv, std::string& out)
{
    out.clear();
    if (argv.empty() || argv[0].find('"') != std::string::npos)
        return error_invalid_parameter;
    for (const auto& a : argv)
        if (a.find('\0') != std::string::npos)
            return error_invalid_parameter;
    out += '"';
    out += argv[0];
    out += '"';
    for (std::size_t i = 1; i < argv.size(); ++i) {
        out += ' ';
        append_quoted_argument(out, argv[i]);
    }
    return 0;
}

unsigned long utf8_to_utf16(std::string_view in, std::u16string& out)
{
    out.clear();
    out.reserve(in.size());
    std::size_t i = 0;
    while (i < in.size()) {
        auto b0 = static_cast<unsigned char>(in[i]);
        if (b0 < 0x80) {
            out += static_cast<char16_t>(b0);
            ++i;
            continue;
        }
        std::size_t len;
        std::uint32_t cp;
        std::uint32_t min;
        if ((b0 & 0xE0) == 0xC0) {
            len = 2, cp = b0 & 0x1F, min = 0x80;
        } else if ((b0 & 0xF0) == 0xE0) {
            len = 3, cp = b0 & 0x0F, min = 0x800;
        } else if ((b0 & 0xF8) == 0xF0) {
            len = 4, cp = b0 & 0x07, min = 0x10000;
        } else {
            return error_no_unicode_translation; // a continuation byte, or 0xF8..0xFF
        }
        if (in.size() - i < len)
            return error_no_unicode_translation;
        for (std::size_t k = 1; k < len; ++k) {
            auto b = static_cast<unsigned char>(in[i + k]);
            if ((b & 0xC0) != 0x80)
                return error_no_unicode_translation;
            cp = (cp << 6) | (b & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return error_no_unicode_translation;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            out += static_cast<char16_t>(0xD800 + (cp >> 10));
            out += static_cast<char16_t>(0xDC00 + (cp & 0x3FF));
        } else {
            out += static_cast<char16_t>(cp);
        }
        i += len;
    }
    return 0;
}

unsigned long utf16_to_utf8(std::u16string_view in, std::string& out)
{
    out.clear();
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        std::uint32_t cp = in[i];
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (i + 1 == in.size() || in[i + 1] < 0xDC00 || in[i + 1] > 0xDFFF)
                return error_no_unicode_translation;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (in[i + 1] - 0xDC00);
            ++i;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return error_no_unicode_translation;
        }
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }
    return 0;
}

unsigned long command_line_utf16(const std::vector<std::string>& argv, std::u16string& out)
{
    std::string utf8;
    if (auto e = build_command_line(argv, utf8))
        return e;
    return utf8_to_utf16(utf8, out);
}

} // namespace gipc::detail::win
