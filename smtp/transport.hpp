#pragma once
// A byte stream a session talks over: plain TCP that may switch to TLS
// (STARTTLS, or right away for implicit-TLS listeners). Every operation has
// the deadline last set with set_deadline(); an expired deadline cancels the
// operation, which then completes with an error for which is_timeout() is
// true, and leaves the connection open so a 421 can still be sent.
// Errors are values.
// The interface lets tests drive a real session over an in-memory stream.
// Runs on the session's executor; not thread-safe.

#include "core/units.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <utility>

namespace boost::asio::ssl {
class context;
}

namespace ember::smtp {

using boost::system::error_code;

class Transport {
public:
    virtual ~Transport() = default;
    virtual void set_deadline(core::Duration d) = 0;
    [[nodiscard]] virtual boost::asio::awaitable<std::pair<error_code, std::size_t>>
    read_some(boost::asio::mutable_buffer buffer) = 0;
    [[nodiscard]] virtual boost::asio::awaitable<error_code>
    write(boost::asio::const_buffer buffer) = 0;
    // Server-side TLS handshake; on success every later read/write is TLS.
    [[nodiscard]] virtual boost::asio::awaitable<error_code>
    start_tls(std::shared_ptr<boost::asio::ssl::context> context) = 0;
    [[nodiscard]] virtual bool tls_active() const = 0;
    [[nodiscard]] virtual std::string tls_description() const = 0;
    // Completes pending operations with operation_aborted; the stream stays usable.
    virtual void cancel() = 0;
    virtual void close() = 0;
};

// True for the error an expired deadline produces.
[[nodiscard]] bool is_timeout(const error_code& ec);

// TCP, optionally upgraded to TLS.
[[nodiscard]] std::unique_ptr<Transport> make_tcp_transport(boost::asio::ip::tcp::socket socket);

} // namespace ember::smtp
