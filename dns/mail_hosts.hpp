#pragma once
// Where mail for a destination domain goes (RFC 5321 5.1): the MX hosts in
// the order to try, each with its addresses, or why there are none, with
// the enhanced status code (RFC 3463) the delivery outcome should carry.
//
//   MX answer                         result
//   one MX "." (null MX, RFC 7505)    NullMx        permanent 5.1.10
//   NXDOMAIN                          NoSuchDomain  permanent 5.1.2
//   NoData, domain has A/AAAA         implicit MX: the domain itself, preference 0
//   NoData, no A/AAAA either          NoMailHosts   permanent 5.1.2
//   SERVFAIL / timeout / malformed    Temporary     4.4.3
//   MX hosts, none with an address:
//     some lookup failed temporarily  Temporary     4.4.3
//     all NXDOMAIN / no address       NoAddress     permanent 5.4.4
// The last row follows Postfix (smtp_addr.c: a host not found is 5.4.4
// "unable to route", any soft DNS error makes it 4.4.3); RFC 5321 5.1 only
// says the client tries the hosts it can resolve. Hosts that do resolve are
// used even when others failed temporarily (Postfix does the same).
//
// Pure parts (order_mx) take their RNG; find_mail_hosts does the lookups
// through any Resolver (tests use a fake), on the caller's executor.

#include "core/net.hpp"
#include "dns/resolver.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace ember::dns {

struct MailHost {
    std::string name; // "mx1.example.com"; the domain itself for an implicit MX
    std::uint16_t preference = 0;
    // IPv6 then IPv4, each in DNS order. An address already listed for a
    // more preferred host is not repeated; a host left with none is dropped.
    std::vector<core::IpAddress> addresses;
    friend bool operator==(const MailHost&, const MailHost&) = default;
};

enum class MailHostsError { None, NullMx, NoSuchDomain, NoMailHosts, NoAddress, Temporary };

struct MailHosts {
    std::vector<MailHost> hosts; // in the order to try; empty unless ok()
    MailHostsError error = MailHostsError::None;
    bool implicit_mx = false; // no MX records: the domain's own address (RFC 5321 5.1)
    std::string detail;       // for logs and DSN text: "no MX or address records for example.com"

    [[nodiscard]] bool ok() const { return error == MailHostsError::None; }
    [[nodiscard]] bool permanent() const;
    // "5.1.10", "5.1.2", "5.4.4" or "4.4.3"; "" when ok().
    [[nodiscard]] std::string_view enhanced_status() const;
};

// RFC 5321 5.1: ascending preference, random order among equal preferences
// (so load spreads across equal MX hosts). Host names are normalized,
// duplicates keep their most preferred entry, null-MX targets ("") are dropped.
[[nodiscard]] std::vector<MxRecord> order_mx(std::vector<MxRecord> records, std::mt19937_64& rng);

// Not a coroutine: it draws a seed from `rng` now and returns the lookup
// coroutine. The resolver must outlive the returned awaitable.
[[nodiscard]] boost::asio::awaitable<MailHosts>
find_mail_hosts(Resolver& resolver, std::string domain, std::mt19937_64& rng);

} // namespace ember::dns
