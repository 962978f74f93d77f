// SPDX-License-Identifier: MIT
#pragma once
// private.hpp: the guard of gipc's private headers. Every header under src/ includes it first.
// meson.build defines GIPC_PRIVATE for libgipc's own sources only, so a private header
// included anywhere else fails to compile here: from a public header of include/gipc/ (which
// every test, example and installed program compiles without GIPC_PRIVATE), from a test, an
// example or a program. tests/meson.build checks that the guard refuses.

#ifndef GIPC_PRIVATE
#error "gipc: private headers (src/) are for libgipc's own sources: never include one from a public header (include/gipc/) or a program"
#endif
