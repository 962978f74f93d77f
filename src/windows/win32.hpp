// SPDX-License-Identifier: MIT
#pragma once
// win32.hpp: the Windows headers, included in the one order that works (winsock2.h before
// windows.h, which would otherwise bring the old winsock.h). meson.build defines
// WIN32_LEAN_AND_MEAN, NOMINMAX, UNICODE and _WIN32_WINNT (Windows 10) for every Windows source.

#include "../private.hpp"

#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
