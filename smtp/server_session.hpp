#pragma once
// One SMTP server session (RFC 5321 with PIPELINING, SIZE, 8BITMIME,
// SMTPUTF8, ENHANCEDSTATUSCODES, DSN, CHUNKING, STARTTLS and AUTH PLAIN/LOGIN)
// as a single coroutine loop: read a command, answer it, repeat.
//
// Replies are buffered and flushed only when no further pipelined command is
// waiting in the input buffer (RFC 2920 3.2) or before the session would
// block. A message is acknowledged with 250 only after MessageSink::commit()
// reported it durable. Each read has a deadline from Limits
// (command_timeout between commands, data_timeout inside DATA/BDAT).
//
// Runs on the I/O thread that runs the listener; the session owns its
// transport and registers itself in ServerContext::sessions for shutdown.

#include "core/net.hpp"
#include "smtp/server_config.hpp"
#include "smtp/server_env.hpp"
#include "smtp/transport.hpp"

#include <boost/asio/awaitable.hpp>

#include <memory>

namespace ember::smtp {

// Serves one connection from accept to close. Never throws for anything the
// client does; the caller has already counted the connection in
// ctx.connections and releases it when this completes.
[[nodiscard]] boost::asio::awaitable<void> serve_session(std::unique_ptr<Transport> transport,
                                                         ListenerConfig listener,
                                                         ServerContext& ctx,
                                                         core::IpAddress client);

} // namespace ember::smtp
