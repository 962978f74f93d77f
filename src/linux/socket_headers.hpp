// SPDX-License-Identifier: MIT
#pragma once
// The system's socket headers on POSIX, for socket_os.hpp and net.cpp (src/windows/ has the
// Winsock ones); meson.build puts this directory on the include path as for native_fd.hpp.

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
