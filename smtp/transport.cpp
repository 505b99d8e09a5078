#include "smtp/transport.hpp"

#include "smtp/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

namespace ember::smtp {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);

// Deadlines cancel the pending operation instead of closing the socket (as
// Beast's own expiry does), so the session can still say "421 timeout".
// The watch outlives neither the transport nor one operation: a timer
// completion from an earlier operation, or one that runs after the transport
// is gone, finds a stale generation or an expired weak_ptr and does nothing.
class TcpTransport final : public Transport {
public:
    explicit TcpTransport(asio::ip::tcp::socket socket)
        : timer_(socket.get_executor()), tcp_(std::move(socket)),
          watch_(std::make_shared<Watch>(Watch{this})) {}

    ~TcpTransport() override { timer_.cancel(); }

    void set_deadline(core::Duration d) override { deadline_ = d; }

    asio::awaitable<std::pair<error_code, std::size_t>>
    read_some(asio::mutable_buffer buffer) override {
        arm();
        // No co_await inside ?: or conditions: g++ 12 miscompiles some of them.
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

    asio::awaitable<error_code> start_tls(std::shared_ptr<asio::ssl::context> context) override {
        context_ = std::move(context);
        tls_ = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(tcp_), *context_);
        arm();
        auto [ec] = co_await tls_->async_handshake(asio::ssl::stream_base::server, kAsTuple);
        co_return disarm(ec);
    }

    bool tls_active() const override { return tls_ != nullptr; }

    std::string tls_description() const override {
        return tls_ ? describe_tls(tls_->native_handle()) : std::string();
    }

    void cancel() override { lowest().socket().cancel(); }

    void close() override {
        timer_.cancel();
        error_code ignored;
        lowest().socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
        lowest().close();
    }

private:
    struct Watch {
        TcpTransport* owner;
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
};

} // namespace

std::unique_ptr<Transport> make_tcp_transport(asio::ip::tcp::socket socket) {
    return std::make_unique<TcpTransport>(std::move(socket));
}

bool is_timeout(const error_code& ec) {
    return ec == asio::error::timed_out || ec == beast::error::timeout;
}

} // namespace ember::smtp
