// SPDX-License-Identifier: MIT
// The pieces of a child's start that both platforms share (child_call.hpp).
#include "child_call.hpp"

#include "byte_order.hpp"
#include "child_state.hpp"
#include "end_base.hpp"
#include "errors.hpp"
#include "pipe_end.hpp"
#include "platform.hpp"

#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>

namespace gipc::detail {

void start_failure_message(int err, const char* what, start_failure_bytes& out) noexcept
{
    out[0] = failed_byte;
    setup_failure f{};
    f.err = err;
    std::snprintf(f.what, sizeof f.what, "%s", what);
    std::memcpy(out + 1, &f, sizeof f);
}

int read_start_report(const char* msg, std::size_t have, std::string& what) noexcept
{
    if (have >= 1 && msg[0] == started_byte)
        return 0;
    if (have != 1 + sizeof(setup_failure) || msg[0] != failed_byte)
        return -1;
    setup_failure f;
    std::memcpy(&f, msg + 1, sizeof f);
    f.what[sizeof f.what - 1] = 0;
    try {
        what = f.what;
    } catch (const std::bad_alloc&) {
    }
    return f.err > 0 ? f.err : EIO;
}

std::string go_message(const call_header& header, const char* packed_args, std::size_t args_size)
{
    msgpack::sbuffer packed;
    msgpack::pack(packed, header);
    const std::size_t size = packed.size() + args_size;
    if (size > 0xffffffffu)
        throw error("gipc: spawn_process: the arguments are too large (4 GiB or more packed)");
    std::string message(go_message_head_size, '\0');
    message[0] = go_byte;
    store_be32(message.data() + 1, static_cast<std::uint32_t>(size));
    message.reserve(go_message_head_size + size);
    message.append(packed.data(), packed.size());
    message.append(packed_args, args_size);
    return message;
}

std::uint32_t go_message_length(const char* head) noexcept { return load_be32(head + 1); }

call_header decode_call(const std::string& data, spawned_call& call)
{
    std::size_t offset = 0;
    msgpack::object_handle oh = msgpack::unpack(data.data(), data.size(), offset);
    auto header = oh.get().as<call_header>();
    if (header.magic != spawn_call_magic)
        throw error("gipc: a spawned child received a call from another version of gipc");
    call.args = msgpack::unpack(data.data(), data.size(), offset);
    call.name = header.name;
    return header;
}

void bind_call(const call_header& header, spawned_call& call, spawned_handles& handles)
{
    handles = rebuild_handles(header.handles);
    call.handles = &handles;
    call.invoker = reinterpret_cast<spawn_invoker>(find_code(header.invoker));
    call.target = find_code(header.target);
}

void exit_duties() noexcept
{
    // The signal numbers child_state::signal takes: POSIX's, which Windows maps.
    constexpr int sigterm = 15, sigkill = 9;
    std::vector<std::shared_ptr<child_state>> children;
    try {
        children = live_children();
    } catch (const std::bad_alloc&) {
        return;
    }
    for (auto& c : children)
        if (c->daemon()) {
            try {
                c->signal(c->program() ? sigkill : sigterm);
            } catch (...) {
            }
        }
    for (auto& c : children)
        if (c->daemon() || !c->program())
            c->wait_blocking();
}

void finish_child() noexcept
{
    std::vector<std::shared_ptr<write_end>> writers;
    try {
        for_each_open_end([&](end_base* e) {
            if (auto* w = dynamic_cast<write_end*>(e))
                writers.push_back(w->shared_from_this());
        });
    } catch (...) {
    }
    for (auto& w : writers) {
        try {
            flush(w.get());
        } catch (...) {
        }
    }
    writers.clear();
    exit_duties();
    std::fflush(nullptr);
}

void run_child_target(const std::string& name, int (*run)(void*), void (*destroy)(void*) noexcept, void* arg)
{
    int code = 0;
    try {
        code = run(arg);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "gipc: process %s (pid %ld): uncaught exception: %s\n", name.c_str(),
                     platform::process_id(), e.what());
        code = 1;
    } catch (...) {
        std::fprintf(stderr, "gipc: process %s (pid %ld): uncaught exception: unknown exception\n",
                     name.c_str(), platform::process_id());
        code = 1;
    }
    // Arguments (and the handles among them) are destroyed here, which flushes and closes.
    destroy(arg);
    finish_child();
    platform::exit_now(code);
}

void run_spawned_call(spawned_call& call)
{
    run_child_target(
        call.name,
        [](void* c) {
            auto& sc = *static_cast<spawned_call*>(c);
            return sc.invoker(sc.target, sc.args.get(), *sc.handles);
        },
        [](void* c) noexcept {
            auto& sc = *static_cast<spawned_call*>(c);
            sc.args = msgpack::object_handle();
            *sc.handles = spawned_handles(); // untaken handles close
        },
        &call);
}

} // namespace gipc::detail
