#pragma once
// The SMTP server's typed configuration: what a listener is ([[listener]])
// and the session limits ([smtp]). Defaults are written once, here; the
// daemon's config table parses TOML into these structs and documents them.

#include "core/net.hpp"
#include "core/units.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace ember::smtp {

using namespace std::chrono_literals;

enum class ListenerMode { Submission, Inbound };
enum class TlsMode { None, StartTls, Implicit };
enum class AuthPolicy { None, Optional, Required };
// What DATA/BDAT does with a bare LF or bare CR (SMTP smuggling): reject the
// message, or store it with CRLF line ends. Never a line end for the
// end-of-data detector either way.
enum class BareNewlinePolicy { Reject, Normalize };

// A listener's override of the DMARC alignment gate ([auth] alignment);
// smtp/ only carries it to the ContentPolicy the daemon provides.
enum class ListenerAlignment { Inherit, Enforce, Warn, Off };

struct ListenerConfig {
    core::Endpoint address{"127.0.0.1", 2525};
    ListenerMode mode = ListenerMode::Submission;
    TlsMode tls = TlsMode::None;
    AuthPolicy auth = AuthPolicy::Optional;
    // Offer AUTH before TLS. Only accepted on loopback listeners.
    bool auth_without_tls = false;
    ListenerAlignment alignment = ListenerAlignment::Inherit;
};

struct Limits {
    core::ByteSize max_message_size{std::uint64_t{25} << 20};
    std::uint32_t max_recipients = 1000;
    // Longest DATA line in octets without CRLF (RFC 5322 2.1.1: 998); 0 = no limit.
    std::uint32_t max_line_length = 998;
    core::Duration command_timeout = 5min; // RFC 5321 4.5.3.2.7 server timeout
    core::Duration data_timeout = 10min;   // per read inside DATA/BDAT
    std::uint32_t max_connections = 1000;
    std::uint32_t max_connections_per_ip = 50;
    std::uint32_t max_errors = 10;       // protocol errors before 421 and disconnect
    std::uint32_t auth_max_failures = 5; // per client IP within auth_failure_window
    core::Duration auth_failure_window = 10min;
    BareNewlinePolicy bare_newlines = BareNewlinePolicy::Reject;
};

// The longest command line (with CRLF) a session reads: RFC 5321 4.5.3.1.4
// allows 512, raised by extensions (RFC 3461 adds up to 600); 2048 leaves room
// for all of them while keeping a garbage flood cheap to refuse.
inline constexpr std::size_t kMaxCommandLine = 2048;

} // namespace ember::smtp
