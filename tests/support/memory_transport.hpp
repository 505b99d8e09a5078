#pragma once
// smtp::Transport over Beast's in-memory test stream, so unit tests run a
// real session coroutine on a real io_context without sockets. Reads can be
// split at any size (read_size) and the Nth operation can be made to fail
// (beast::test::fail_count). TLS is not available: start_tls() fails, which
// is what a broken handshake looks like to the session.

#include "smtp/transport.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/_experimental/test/stream.hpp>

namespace ember::test {

class MemoryTransport final : public smtp::Transport {
public:
    explicit MemoryTransport(boost::beast::test::stream stream) : stream_(std::move(stream)) {}

    void set_deadline(core::Duration) override {}

    boost::asio::awaitable<std::pair<smtp::error_code, std::size_t>>
    read_some(boost::asio::mutable_buffer buffer) override {
        auto [ec, n] = co_await stream_.async_read_some(
            buffer, boost::asio::as_tuple(boost::asio::use_awaitable));
        co_return std::pair{ec, n};
    }

    boost::asio::awaitable<smtp::error_code> write(boost::asio::const_buffer buffer) override {
        auto [ec, n] = co_await boost::asio::async_write(
            stream_, buffer, boost::asio::as_tuple(boost::asio::use_awaitable));
        (void)n;
        co_return ec;
    }

    boost::asio::awaitable<smtp::error_code>
    start_tls(std::shared_ptr<boost::asio::ssl::context>) override {
        co_return boost::asio::error::operation_not_supported;
    }

    bool tls_active() const override { return false; }
    std::string tls_description() const override { return {}; }
    void cancel() override { stream_.close(); }
    void close() override { stream_.close(); }

private:
    boost::beast::test::stream stream_;
};

} // namespace ember::test
