#pragma once
// SPF records (RFC 7208 sections 4.5, 4.6, 5, 6, 12): recognising one among
// a name's TXT records and parsing it, whole, into mechanisms and modifiers.
// Pure and thread-safe: no DNS, no macro expansion (auth/spf_macro.hpp
// checks the syntax of every macro-string here; auth/spf.hpp evaluates).
//
// The whole record is checked before anything is evaluated (4.6: "If there
// are any syntax errors anywhere in the record, check_host() returns
// immediately with the result permerror"), so a record with a bad term after
// a matching one is still a permerror. Only 7-bit printable ASCII and SP are
// allowed (3.1, 4.6.1: terms are separated by SP, never by other controls).

#include "core/net.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::auth {

enum class SpfQualifier { Pass, Fail, SoftFail, Neutral }; // + - ~ ?

enum class SpfMechanismKind { All, Include, A, Mx, Ptr, Ip4, Ip6, Exists };

// An ip4/ip6 network. IPv6 networks keep their 16 octets even for
// "::ffff:1.2.3.4" so they never match an IPv4 client (5: an IPv4-mapped
// client address is IPv4 and only ip4 mechanisms apply).
struct SpfNetwork {
    std::array<std::uint8_t, 16> bytes{};
    bool v4 = true;
    unsigned prefix = 32;
    [[nodiscard]] bool contains(const core::IpAddress& address) const;
};

// Does address lie in the same-family network of base/prefix? Used for a and
// mx with their dual CIDR lengths.
[[nodiscard]] bool same_network(const core::IpAddress& address, const core::IpAddress& base,
                                unsigned prefix);

struct SpfMechanism {
    SpfQualifier qualifier = SpfQualifier::Pass;
    SpfMechanismKind kind = SpfMechanismKind::All;
    std::string domain_spec; // include, a, mx, ptr, exists; "" = the current <domain>
    unsigned cidr4 = 32;     // a, mx
    unsigned cidr6 = 128;    // a, mx
    SpfNetwork network;      // ip4, ip6
    std::string text;        // the term as written, for logs and results
};

struct SpfRecord {
    std::vector<SpfMechanism> mechanisms;
    std::optional<std::string> redirect;    // domain-spec (6.1)
    std::optional<std::string> explanation; // exp= domain-spec (6.2)
};

struct SpfParse {
    std::optional<SpfRecord> record;
    std::string error; // why the record is a permerror, when !record
};

// 4.5: "v=spf1" (case-insensitive) followed by SP or the end of the record.
// "v=spf10" and "v=spf1mx" are not SPF records.
[[nodiscard]] bool is_spf_record(std::string_view txt);

// Parses a record for which is_spf_record() is true.
[[nodiscard]] SpfParse parse_spf_record(std::string_view txt);

} // namespace ember::auth
