// SPDX-License-Identifier: MIT
#pragma once
// The system's socket headers on Windows (Winsock 2: getaddrinfo, inet_pton, sockaddr_in6), for
// socket_os.hpp and net.cpp (src/linux/ has the POSIX ones); meson.build puts this directory on
// the include path as for native_fd.hpp.

#include "win32.hpp"
