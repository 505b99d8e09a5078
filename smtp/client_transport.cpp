#include "smtp/client_transport.hpp"

#include "core/log.hpp"
#include "smtp/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <set>

namespace ember::smtp {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::ip::tcp;
namespace log = core::log;
constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);

// The same deadline scheme as smtp/transport.cpp's server transport (a timer
// that cancels the pending operation; a generation number makes a late timer
// completion harmless), with the client role in the handshake. Duplicated
// rather than shared because that class is private to transport.cpp.
class ClientTcpTransport final : public Transport {
public:
    ClientTcpTransport(tcp::socket socket, std::string server_name, bool verify)
        : timer_(socket.get_executor()), tcp_(std::move(socket)),
          watch_(std::make_shared<Watch>(Watch{this})), server_name_(std::move(server_name)),
          verify_(verify) {}

    ~ClientTcpTransport() override { timer_.cancel(); }

    void set_deadline(core::Duration d) override { deadline_ = d; }

    asio::awaitable<std::pair<error_code, std::size_t>>
    read_some(asio::mutable_buffer buffer) override {
        arm();
        std::pair<error_code, std::size_t> result;
        if (tls_) {
            auto [ec, n] = co_await tls_->async_read_some(buffer, kAsTuple);
            result = {ec, n};
        } else {
            auto [ec, n] = co_await tcp_.async_read_some(buffer, kAsTuple);
            result = {ec, n};
        }
        result.first = disarm(result.first);
        co_return result;
    }

    asio::awaitable<error_code> write(asio::const_buffer buffer) override {
        arm();
        error_code result;
        if (tls_) {
            auto [ec, n] = co_await asio::async_write(*tls_, buffer, kAsTuple);
            result = ec;
        } else {
            auto [ec, n] = co_await asio::async_write(tcp_, buffer, kAsTuple);
            result = ec;
        }
        co_return disarm(result);
    }

    // The client handshake (the interface's server-side wording is the
    // listener's view; a client transport only ever plays the client).
    asio::awaitable<error_code> start_tls(std::shared_ptr<asio::ssl::context> context) override {
        context_ = std::move(context);
        tls_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(tcp_), *context_);
        std::string error;
        if (!prepare_client_tls(tls_->native_handle(), server_name_, verify_, error)) {
            log::warning("delivery.tls_setup_failed", "server={} error={}", log::q(server_name_),
                         log::q(error));
            co_return asio::error::invalid_argument;
        }
        arm();
        auto [ec] = co_await tls_->async_handshake(asio::ssl::stream_base::client, kAsTuple);
        ec = disarm(ec);
        if (ec && verify_) {
            // "certificate verify failed" says little; OpenSSL knows why.
            if (const auto why = verification_error(tls_->native_handle()))
                ec = why;
        }
        co_return ec;
    }

    bool tls_active() const override { return tls_ != nullptr; }

    std::string tls_description() const override {
        return tls_ ? describe_tls(tls_->native_handle()) : std::string();
    }

    void cancel() override { lowest().socket().cancel(); }

    void close() override {
        timer_.cancel();
        error_code ignored;
        lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
        lowest().close();
    }

private:
    struct Watch {
        ClientTcpTransport* owner;
        std::uint64_t generation = 0;
        bool expired = false;
    };

    beast::tcp_stream& lowest() { return tls_ ? tls_->next_layer() : tcp_; }

    void arm() {
        const auto generation = ++watch_->generation;
        watch_->expired = false;
        timer_.expires_after(deadline_);
        timer_.async_wait([weak = std::weak_ptr<Watch>(watch_), generation](error_code ec) {
            const auto watch = weak.lock();
            if (ec || !watch || watch->generation != generation)
                return;
            watch->expired = true;
            watch->owner->lowest().socket().cancel();
        });
    }

    error_code disarm(error_code ec) {
        timer_.cancel();
        ++watch_->generation;
        if (watch_->expired && (ec == asio::error::operation_aborted || !ec))
            return asio::error::timed_out;
        return ec;
    }

    asio::steady_timer timer_;
    beast::tcp_stream tcp_;
    std::shared_ptr<Watch> watch_;
    std::shared_ptr<asio::ssl::context> context_;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls_;
    core::Duration deadline_{std::chrono::minutes(5)};
    std::string server_name_;
    bool verify_ = false;
};

asio::ip::address to_asio(const core::IpAddress& ip) {
    error_code ignored;
    return asio::ip::make_address(ip.to_string(), ignored);
}

// Opens the socket and binds the source address when its family matches the
// target's (a v4 source cannot originate a v6 connection; Postfix keeps
// smtp_bind_address and smtp_bind_address6 apart for the same reason).
error_code open_socket(tcp::socket& socket, const tcp::endpoint& target,
                       const std::optional<core::IpAddress>& source) {
    error_code ec;
    socket.open(target.protocol(), ec);
    if (ec || !source || source->is_v4() != target.address().is_v4())
        return ec;
    socket.bind(tcp::endpoint(to_asio(*source), 0), ec);
    return ec;
}

class TcpConnector final : public Connector {
public:
    explicit TcpConnector(asio::any_io_executor executor) : executor_(std::move(executor)) {}

    asio::awaitable<ConnectResult> connect(ConnectRequest request) override {
        tcp::socket socket(executor_);
        const tcp::endpoint target(to_asio(request.ip), request.port);
        if (const auto ec = open_socket(socket, target, request.source))
            co_return ConnectResult{ec, nullptr};
        // The timer cancels the connect; `done` keeps a timer completion that
        // was already queued from touching the socket once it has moved on.
        struct Watch {
            tcp::socket* socket;
            bool done = false;
            bool expired = false;
        };
        auto watch = std::make_shared<Watch>(Watch{&socket});
        if (cancelled_)
            co_return ConnectResult{error_code(asio::error::operation_aborted), nullptr};
        // Listed while connecting, unlisted on every way out (a destroyed
        // coroutine frame included), so cancel_all() never touches a dead socket.
        const Listed listed(connecting_, &socket);
        asio::steady_timer timer(executor_);
        timer.expires_after(request.timeout);
        timer.async_wait([watch](error_code ec) {
            if (ec || watch->done)
                return;
            watch->expired = true;
            watch->socket->cancel();
        });
        auto [ec] = co_await socket.async_connect(target, kAsTuple);
        watch->done = true;
        timer.cancel();
        if (watch->expired && (ec == asio::error::operation_aborted || !ec))
            ec = asio::error::timed_out;
        if (ec)
            co_return ConnectResult{ec, nullptr};
        co_return ConnectResult{error_code{}, std::make_unique<ClientTcpTransport>(
                                                  std::move(socket), std::move(request.server_name),
                                                  request.verify_certificate)};
    }

    void cancel_all() override {
        cancelled_ = true;
        for (auto* socket : connecting_)
            socket->cancel();
    }

private:
    struct Listed {
        Listed(std::set<tcp::socket*>& in, tcp::socket* what) : list(in), entry(what) {
            list.insert(entry);
        }
        ~Listed() { list.erase(entry); }
        Listed(const Listed&) = delete;
        Listed& operator=(const Listed&) = delete;
        std::set<tcp::socket*>& list;
        tcp::socket* entry;
    };

    asio::any_io_executor executor_;
    std::set<tcp::socket*> connecting_; // sockets whose connect is in progress
    bool cancelled_ = false;
};

} // namespace

std::unique_ptr<Connector> make_tcp_connector(asio::any_io_executor executor) {
    return std::make_unique<TcpConnector>(std::move(executor));
}

} // namespace ember::smtp
