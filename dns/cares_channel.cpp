#include "dns/cares_channel.hpp"

#include "core/log.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <ares.h>
#include <arpa/nameser.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <unordered_map>

namespace ember::dns {
namespace {

namespace asio = boost::asio;
namespace log = core::log;
using boost::system::error_code;

// One socket c-ares opened. The descriptor never owns the fd: c-ares closes
// it, after telling us (readable = writable = 0), when we release() it.
struct Watch {
    Watch(const asio::any_io_executor& executor, int socket_fd)
        : descriptor(executor), fd(socket_fd) {}
    asio::posix::stream_descriptor descriptor;
    int fd;
    bool want_read = false;
    bool want_write = false;
    bool reading = false; // an async_wait is pending
    bool writing = false;
    bool closed = false; // c-ares closed it: late handlers must not touch it
};

void close_watch(Watch& w) {
    w.closed = true;
    error_code ignored;
    w.descriptor.cancel(ignored);
    (void)w.descriptor.release();
}

void query_done(void* arg, int status, int /*timeouts*/, unsigned char* abuf, int alen) {
    const std::unique_ptr<AresChannel::Done> done(static_cast<AresChannel::Done*>(arg));
    std::span<const std::uint8_t> reply;
    if (abuf != nullptr && alen > 0)
        reply = {abuf, static_cast<std::size_t>(alen)};
    (*done)(status, reply);
}

void init_library_once() {
    static std::once_flag once;
    std::call_once(once, [] { (void)ares_library_init(ARES_LIB_INIT_ALL); });
}

} // namespace

struct AresChannel::State : std::enable_shared_from_this<State> {
    explicit State(asio::any_io_executor ex) : executor(std::move(ex)), timer(executor) {}

    asio::any_io_executor executor;
    ares_channel channel = nullptr;
    std::unordered_map<int, std::shared_ptr<Watch>> watches;
    asio::steady_timer timer;

    static void on_socket_state(void* data, ares_socket_t fd, int readable, int writable);
    void update(int fd, bool readable, bool writable);
    void arm(const std::shared_ptr<Watch>& w);
    void wait(const std::shared_ptr<Watch>& w, bool read);
    void on_ready(Watch& w, bool read, const error_code& ec);
    void rearm_timer();
    void shutdown();
};

void AresChannel::State::on_socket_state(void* data, ares_socket_t fd, int readable, int writable) {
    static_cast<State*>(data)->update(fd, readable != 0, writable != 0);
}

void AresChannel::State::update(int fd, bool readable, bool writable) {
    auto it = watches.find(fd);
    if (!readable && !writable) {
        if (it != watches.end()) {
            close_watch(*it->second);
            watches.erase(it);
        }
        return;
    }
    if (it == watches.end()) {
        auto w = std::make_shared<Watch>(executor, fd);
        error_code ec;
        w->descriptor.assign(fd, ec);
        if (ec) {
            // c-ares times the query out through the timer; nothing leaks.
            log::error("dns.socket_watch_failed", "fd={} error={}", fd, log::q(ec.message()));
            return;
        }
        it = watches.emplace(fd, std::move(w)).first;
    }
    it->second->want_read = readable;
    it->second->want_write = writable;
    arm(it->second);
}

void AresChannel::State::arm(const std::shared_ptr<Watch>& w) {
    if (w->closed)
        return;
    if (w->want_read && !w->reading)
        wait(w, true);
    if (w->want_write && !w->writing)
        wait(w, false);
}

void AresChannel::State::wait(const std::shared_ptr<Watch>& w, bool read) {
    (read ? w->reading : w->writing) = true;
    const auto kind =
        read ? asio::posix::descriptor_base::wait_read : asio::posix::descriptor_base::wait_write;
    w->descriptor.async_wait(kind, [weak = weak_from_this(), w, read](const error_code& ec) {
        (read ? w->reading : w->writing) = false;
        const auto self = weak.lock();
        if (!self || w->closed)
            return;
        self->on_ready(*w, read, ec);
        self->arm(w);
    });
}

void AresChannel::State::on_ready(Watch& w, bool read, const error_code& ec) {
    if (ec == asio::error::operation_aborted || (read ? !w.want_read : !w.want_write))
        return;
    // On other errors c-ares reads or writes, sees the failure and closes
    // the socket itself (then tries the next server).
    ares_process_fd(channel, read ? w.fd : ARES_SOCKET_BAD, read ? ARES_SOCKET_BAD : w.fd);
    rearm_timer();
}

void AresChannel::State::rearm_timer() {
    timeval tv{};
    if (channel == nullptr || ares_timeout(channel, nullptr, &tv) == nullptr) {
        timer.cancel();
        return;
    }
    timer.expires_after(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
    timer.async_wait([weak = weak_from_this()](const error_code& ec) {
        const auto self = weak.lock();
        if (ec || !self || self->channel == nullptr)
            return;
        ares_process_fd(self->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
        self->rearm_timer();
    });
}

void AresChannel::State::shutdown() {
    if (channel != nullptr) {
        // Runs every pending callback with ARES_EDESTRUCTION and reports each
        // socket closed (update() releases its descriptor).
        ares_destroy(channel);
        channel = nullptr;
    }
    for (auto& [fd, w] : watches)
        close_watch(*w);
    watches.clear();
    timer.cancel();
}

std::unique_ptr<AresChannel> AresChannel::create(asio::any_io_executor executor,
                                                 const ChannelOptions& options,
                                                 std::string& error) {
    init_library_once();
    std::vector<ares_addr_port_node> nodes(options.servers.size());
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        const auto& server = options.servers[i];
        const auto ip = core::IpAddress::parse(server.host);
        if (!ip) {
            error = fmt::format("dns server {} is not an IP address", server.to_string());
            return nullptr;
        }
        auto& node = nodes[i];
        node.next = i + 1 < nodes.size() ? &nodes[i + 1] : nullptr;
        node.family = ip->is_v4() ? AF_INET : AF_INET6;
        std::memcpy(ip->is_v4() ? static_cast<void*>(&node.addr.addr4)
                                : static_cast<void*>(&node.addr.addr6),
                    ip->data(), ip->size());
        node.udp_port = server.port;
        node.tcp_port = server.port;
    }

    auto state = std::make_shared<State>(std::move(executor));
    ares_options opts{};
    // Names are absolute: no search list, no HOSTALIASES.
    opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
    opts.timeout = static_cast<int>(std::max<std::int64_t>(1, options.attempt_timeout.count()));
    opts.tries = static_cast<int>(std::max<std::uint32_t>(1, options.tries));
    opts.sock_state_cb = &State::on_socket_state;
    opts.sock_state_cb_data = state.get();
    const int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
    int rc = ares_init_options(&state->channel, &opts, mask);
    if (rc == ARES_SUCCESS && !nodes.empty())
        rc = ares_set_servers_ports(state->channel, nodes.data());
    if (rc != ARES_SUCCESS) {
        error = fmt::format("c-ares: {}", ares_strerror(rc));
        state->shutdown();
        return nullptr;
    }
    return std::unique_ptr<AresChannel>(new AresChannel(std::move(state)));
}

AresChannel::~AresChannel() {
    state_->shutdown();
}

void AresChannel::query(const std::string& name, RecordType type, Done done) {
    if (state_->channel == nullptr) {
        done(ARES_EDESTRUCTION, {});
        return;
    }
    ares_query(state_->channel, name.c_str(), ns_c_in, static_cast<int>(type), &query_done,
               new Done(std::move(done)));
    state_->rearm_timer();
}

} // namespace ember::dns
