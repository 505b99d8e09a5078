#include "smtp/listener.hpp"

#include "core/async.hpp"
#include "core/log.hpp"
#include "smtp/server_metrics.hpp"
#include "smtp/server_session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>

namespace ember::smtp {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);

core::IpAddress to_core(const asio::ip::address& a) {
    if (a.is_v4())
        return core::IpAddress::v4(a.to_v4().to_bytes());
    return core::IpAddress::v6(a.to_v6().to_bytes());
}

// Releases the connection slot however the session ends.
struct SlotGuard {
    ConnectionTracker& tracker;
    core::IpAddress ip;
    ~SlotGuard() { tracker.release(ip); }
};

} // namespace

Listener::Listener(asio::any_io_executor executor, ListenerConfig config, ServerContext& ctx)
    : executor_(executor), config_(std::move(config)), ctx_(ctx), acceptor_(executor) {}

std::string Listener::start() {
    error_code ec;
    const auto address = asio::ip::make_address(config_.address.host, ec);
    if (ec)
        return config_.address.to_string() + ": not an IP address";
    const tcp::endpoint endpoint(address, config_.address.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec)
        acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && address.is_v6())
        acceptor_.set_option(asio::ip::v6_only(true), ec);
    if (!ec)
        acceptor_.bind(endpoint, ec);
    if (!ec)
        acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        return config_.address.to_string() + ": " + ec.message();
    core::spawn(executor_, accept_loop(), "listener " + config_.address.to_string(),
                core::TaskKind::TopLevel);
    return {};
}

void Listener::stop() {
    error_code ignored;
    acceptor_.close(ignored);
}

asio::awaitable<void> Listener::accept_loop() {
    asio::steady_timer backoff(executor_);
    while (acceptor_.is_open()) {
        auto [ec, socket] = co_await acceptor_.async_accept(kAsTuple);
        if (ec == asio::error::operation_aborted || !acceptor_.is_open())
            break;
        if (ec) {
            // EMFILE and friends: wait a little instead of spinning.
            core::log::warning("smtp.accept_failed", "listener={} error={}",
                               config_.address.to_string(), core::log::q(ec.message()));
            backoff.expires_after(std::chrono::milliseconds(100));
            co_await backoff.async_wait(kAsTuple);
            continue;
        }
        error_code peer_ec;
        const auto peer = socket.remote_endpoint(peer_ec);
        if (peer_ec)
            continue;
        socket.set_option(tcp::no_delay(true), peer_ec);
        const auto ip = to_core(peer.address());
        const auto settings = ctx_.settings;
        const auto verdict = ctx_.connections.try_acquire(ip, settings->limits);
        if (verdict != ConnectionTracker::Verdict::Ok) {
            const bool per_ip = verdict == ConnectionTracker::Verdict::TooManyFromIp;
            ctx_.metrics.connection_refused(per_ip ? "per_ip_limit" : "total_limit");
            core::log::info("smtp.connection_refused", "client={} reason={}", ip.to_string(),
                            per_ip ? "per_ip_limit" : "total_limit");
            refuse(std::move(socket), "421 4.7.0 " + settings->hostname +
                                          (per_ip ? " Error: too many connections from your IP\r\n"
                                                  : " Error: too many connections\r\n"));
            continue;
        }
        auto session = [](tcp::socket s, ListenerConfig cfg, ServerContext& ctx,
                          core::IpAddress client) -> asio::awaitable<void> {
            SlotGuard guard{ctx.connections, client};
            co_await serve_session(make_tcp_transport(std::move(s)), std::move(cfg), ctx, client);
        };
        core::spawn(executor_, session(std::move(socket), config_, ctx_, ip),
                    "smtp session " + ip.to_string());
    }
}

void Listener::refuse(tcp::socket socket, std::string reply) {
    auto task = [](tcp::socket s, std::string text) -> asio::awaitable<void> {
        boost::beast::tcp_stream stream(std::move(s));
        stream.expires_after(std::chrono::seconds(5));
        co_await asio::async_write(stream, asio::buffer(text), kAsTuple);
        error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream.close();
    };
    core::spawn(executor_, task(std::move(socket), std::move(reply)), "smtp refuse");
}

} // namespace ember::smtp
