// SPDX-License-Identifier: MIT
#pragma once
// GIPC_EXPORT marks what libgipc exports: every class and function of the headers that the
// library defines out of line. The library is built with hidden visibility (meson.build:
// gnu_symbol_visibility 'hidden'), so a shared libgipc exports these and nothing else. Not part
// of the API: names here may change.

#if defined(__GNUC__) || defined(__clang__)
#define GIPC_EXPORT __attribute__((visibility("default")))
#else
#define GIPC_EXPORT
#endif
