#pragma once
// The SMTP client's typed config (the [delivery] section): EHLO name,
// destination port, routes (smarthosts that bypass MX lookup, like Postfix
// transport_maps), TLS policy per destination, per-phase deadlines,
// connection reuse and limits. Defaults are written once, here.
// Plain data plus pure lookups; no I/O, thread-safe to read.
//
// Lookup keys in `routes` and `tls_policies` (Postfix's transport_maps
// order): the exact domain ("example.com"), then each parent written with a
// leading dot (".example.com" matches "a.example.com" and deeper, not
// "example.com" itself), then "*". Keys are lowercase.

#include "core/net.hpp"
#include "core/units.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace ember::smtp {

// None: never STARTTLS. Opportunistic: STARTTLS when offered, certificate
// not verified (RFC 7435), plaintext when not offered or when the handshake
// fails. Required: STARTTLS or defer; the certificate must chain to the
// system CA store (or tls_ca_file) and match the MX host name (RFC 6125;
// the route host for a route). Like Postfix's may / encrypt+verify levels.
enum class TlsPolicy : std::uint8_t { None, Opportunistic, Required };

// Which address families to connect to (Postfix inet_protocols); the MX
// lookup lists IPv6 addresses before IPv4 ones for each host.
enum class AddressFamily : std::uint8_t { Any, Ipv4, Ipv6 };

// RFC 5321 4.5.3.2 minimums; "data_block" bounds each write of message
// content, "dot" the wait for the reply to the final ".".
struct ClientTimeouts {
    core::Duration connect = std::chrono::seconds(30);
    core::Duration greeting = std::chrono::minutes(5);
    core::Duration ehlo = std::chrono::minutes(5);
    core::Duration starttls = std::chrono::minutes(2);
    core::Duration mail = std::chrono::minutes(5);
    core::Duration rcpt = std::chrono::minutes(5);
    core::Duration data = std::chrono::minutes(2);
    core::Duration data_block = std::chrono::minutes(3);
    core::Duration dot = std::chrono::minutes(10);
    core::Duration rset = std::chrono::minutes(1);
    core::Duration quit = std::chrono::minutes(1);
};

struct ClientConfig {
    std::string helo_name = "localhost"; // the daemon sets [server] hostname
    std::uint16_t port = 25;             // MX hosts' port; routes carry their own
    std::map<std::string, core::Endpoint> routes;
    std::map<std::string, TlsPolicy> tls_policies; // no match: Opportunistic
    std::string tls_ca_file; // PEM bundle for "required"; empty: the system CA store
    ClientTimeouts timeouts;
    std::uint32_t max_messages_per_connection = 100;
    core::Duration idle_timeout = std::chrono::seconds(5); // idle connections kept for reuse
    std::uint32_t max_connections = 500;                   // all destinations together
    std::uint32_t max_connections_per_destination = 20;
    // Postfix smtp_mx_address_limit / smtp_mx_session_limit: addresses tried
    // per delivery, and sessions that got as far as a greeting.
    std::uint32_t max_mx_addresses = 5;
    std::uint32_t max_mx_sessions = 2;
    AddressFamily address_family = AddressFamily::Any;
    std::optional<core::IpAddress> source_address; // bind before connect; none: the kernel picks

    // The route for a destination domain, or nullptr: look up its MX hosts.
    [[nodiscard]] const core::Endpoint* route_for(std::string_view domain) const;
    [[nodiscard]] TlsPolicy tls_policy_for(std::string_view domain) const;
};

// The map value for domain: exact, then ".parent" keys, then "*".
template <typename Map>
[[nodiscard]] const typename Map::mapped_type* lookup_domain(const Map& map,
                                                             std::string_view domain) {
    if (const auto it = map.find(std::string(domain)); it != map.end())
        return &it->second;
    for (auto dot = domain.find('.'); dot != std::string_view::npos;
         dot = domain.find('.', dot + 1)) {
        if (const auto it = map.find(std::string(domain.substr(dot))); it != map.end())
            return &it->second;
    }
    if (const auto it = map.find("*"); it != map.end())
        return &it->second;
    return nullptr;
}

inline const core::Endpoint* ClientConfig::route_for(std::string_view domain) const {
    return lookup_domain(routes, domain);
}

inline TlsPolicy ClientConfig::tls_policy_for(std::string_view domain) const {
    const auto* policy = lookup_domain(tls_policies, domain);
    return policy ? *policy : TlsPolicy::Opportunistic;
}

} // namespace ember::smtp
