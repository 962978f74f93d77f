// SPDX-License-Identifier: MIT
// raw_tcp_clients: the serverclient exchange (1000 clients, one line echoed each) with plain
// blocking syscalls and no gipc: a server thread accepts, a forked child connects sequentially.
// It shows what the kernel's loopback TCP path costs on this machine, the floor under
// gipc_bench's tcp_clients_1000 figure.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

int main()
{
    constexpr int n = 1000;
    int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(ls, SOMAXCONN) != 0 ||
        ::getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        std::perror("listen");
        return 1;
    }
    std::thread server([&] {
        for (int i = 0; i < n; ++i) {
            int c = ::accept(ls, nullptr, nullptr);
            char buf[64];
            ssize_t got = ::read(c, buf, sizeof buf);
            if (got > 0 && ::write(c, buf, size_t(got)) != got)
                std::perror("write");
            ::close(c);
        }
    });
    pid_t pid = ::fork();
    if (pid == 0) {
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < n; ++i) {
            int s = ::socket(AF_INET, SOCK_STREAM, 0);
            char buf[64];
            if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::write(s, "HELLO\n", 6) != 6 ||
                ::read(s, buf, sizeof buf) != 6)
                ::_exit(1);
            ::close(s);
        }
        std::printf("raw_tcp_clients_1000: %.3g s\n",
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        std::fflush(stdout);
        ::_exit(0);
    }
    int status;
    ::waitpid(pid, &status, 0);
    server.join();
    ::close(ls);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
