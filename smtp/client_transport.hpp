#pragma once
// Outbound connections for the SMTP client: a TCP connect with a deadline
// (optionally from a source address), returning a Transport whose
// start_tls() performs the *client* side of the handshake, with SNI and,
// when asked, certificate verification against the expected host name.
// Deadlines work as in smtp/transport.cpp: an expired deadline cancels the
// pending operation (error is_timeout()) instead of closing the socket.
// A Connector is the seam the delivery agent connects through, so tests
// can hand it in-memory transports. Runs on the caller's executor.

#include "core/net.hpp"
#include "core/units.hpp"
#include "smtp/transport.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace ember::smtp {

struct ConnectRequest {
    core::IpAddress ip;
    std::uint16_t port = 25;
    std::optional<core::IpAddress> source; // bind address; none: the kernel picks
    core::Duration timeout = std::chrono::seconds(30);
    // For STARTTLS: the SNI name and, when verify_certificate, the name the
    // certificate must match (the MX host name, or the route's host).
    std::string server_name;
    bool verify_certificate = false;
};

using ConnectResult = std::pair<error_code, std::unique_ptr<Transport>>;

class Connector {
public:
    virtual ~Connector() = default;
    // A connected transport, or the error (is_timeout() for the deadline).
    [[nodiscard]] virtual boost::asio::awaitable<ConnectResult> connect(ConnectRequest request) = 0;
    // Shutdown: connects in progress end now with operation_aborted, and so
    // does every later one.
    virtual void cancel_all() {}
};

[[nodiscard]] std::unique_ptr<Connector> make_tcp_connector(boost::asio::any_io_executor executor);

} // namespace ember::smtp
