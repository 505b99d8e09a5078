#pragma once
// A listening socket for one [[listener]]: accepts connections, enforces the
// total and per-IP connection limits (421 4.7.0 and close, before any
// session state exists) and runs serve_session() for each client.
// Runs on the I/O thread; stop() closes the acceptor, open sessions go on
// until the daemon's shutdown tells them to leave.

#include "smtp/server_config.hpp"
#include "smtp/server_env.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <string>

namespace ember::smtp {

class Listener {
public:
    Listener(boost::asio::any_io_executor executor, ListenerConfig config, ServerContext& ctx);
    // Binds and starts accepting; returns "" or why it could not bind.
    [[nodiscard]] std::string start();
    void stop();
    [[nodiscard]] const ListenerConfig& config() const { return config_; }

private:
    boost::asio::awaitable<void> accept_loop();
    void refuse(boost::asio::ip::tcp::socket socket, std::string reply);

    boost::asio::any_io_executor executor_;
    ListenerConfig config_;
    ServerContext& ctx_;
    boost::asio::ip::tcp::acceptor acceptor_;
};

} // namespace ember::smtp
