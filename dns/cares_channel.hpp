#pragma once
// One c-ares channel driven by an Asio executor, without a thread and
// without polling: c-ares reports each socket it opens and whether it wants
// to read or write (ARES_OPT_SOCK_STATE_CB); each socket gets a non-owning
// posix::stream_descriptor that waits for readiness only while c-ares wants
// it, then calls ares_process_fd. One steady_timer tracks ares_timeout().
// This file knows nothing about caching or answer types (cares_resolver.hpp).
//
// Threading: everything runs on the executor given, which must not run
// handlers concurrently (an io_context run by one thread, or a strand).
// Lifetime: destroying the channel calls ares_destroy, which runs every
// pending query's `done` at once with ARES_EDESTRUCTION; handlers still
// queued on the executor find the channel gone and do nothing.

#include "core/net.hpp"
#include "core/units.hpp"
#include "dns/record.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace ember::dns {

struct ChannelOptions {
    std::vector<core::Endpoint> servers; // IP literals; empty = /etc/resolv.conf
    core::Duration attempt_timeout = std::chrono::seconds(2); // first try; c-ares doubles it
    std::uint32_t tries = 2;
};

class AresChannel {
public:
    // The ares status and the raw reply (empty when there was none). Runs
    // from inside c-ares (ares_process_fd, ares_query or ares_destroy): it
    // must not destroy the channel or start queries; post the work instead.
    using Done = std::function<void(int ares_status, std::span<const std::uint8_t> reply)>;

    // nullptr and `error` set when c-ares cannot start or a server is not an
    // IP address.
    [[nodiscard]] static std::unique_ptr<AresChannel> create(boost::asio::any_io_executor executor,
                                                             const ChannelOptions& options,
                                                             std::string& error);

    ~AresChannel();
    AresChannel(const AresChannel&) = delete;
    AresChannel& operator=(const AresChannel&) = delete;

    // One question, sent as given (no search domains). `done` runs exactly once.
    void query(const std::string& name, RecordType type, Done done);

    struct State; // the c-ares channel, socket watches and timer (in the .cpp)

private:
    explicit AresChannel(std::shared_ptr<State> state) : state_(std::move(state)) {}
    std::shared_ptr<State> state_;
};

} // namespace ember::dns
