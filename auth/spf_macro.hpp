#pragma once
// SPF macros (RFC 7208 section 7): syntax checks for macro-strings and
// domain-specs, and the expander. Pure and thread-safe: no DNS here. The
// one macro that needs DNS, %{p} (the validated name of the client), is
// looked up by the evaluator (auth/spf.hpp) and handed in through
// MacroContext::validated_name.
//
// Syntax (7.1):
//   macro-string = *( macro-expand / macro-literal )
//   macro-expand = ( "%{" macro-letter transformers *delimiter "}" )
//                  / "%%" / "%_" / "%-"
//   macro-literal = %x21-24 / %x26-7E        ; visible characters except "%"
//   transformers = *DIGIT [ "r" ]            ; the DIGIT value, when given, is nonzero (7.3)
//   delimiter    = "." / "-" / "+" / "," / "/" / "_" / "="
//   domain-spec  = macro-string domain-end
//   domain-end   = ( "." toplabel [ "." ] ) / macro-expand
// Letters are case-insensitive; an upper-case letter URL-escapes its
// expansion (7.3). c, r and t are allowed only in explanation text (7.3).

#include "core/net.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ember::auth {

enum class MacroUse {
    Domain,      // a mechanism or modifier target: letters s l o d i p v h
    Modifier,    // the value of an unknown modifier: any letter, never expanded
    Explanation, // explain-string (6.2): any letter, and SP between the parts
};

struct MacroContext {
    std::string sender;                     // s: <sender> ("postmaster@domain" without local part)
    std::string local_part;                 // l
    std::string sender_domain;              // o
    std::string domain;                     // d: the <domain> being checked
    core::IpAddress ip;                     // i, c, v
    std::string helo;                       // h: the HELO/EHLO domain as given
    std::string validated_name = "unknown"; // p: resolved by the caller (5.5, 7.3)
    std::string receiver = "unknown";       // r: the host performing the check
    std::int64_t timestamp = 0;             // t: seconds since the epoch
};

[[nodiscard]] bool is_macro_string(std::string_view text, MacroUse use);

// A domain-spec as written in a record (7.1), checked before any expansion:
// "example.com", "%{d}", "_spf.%{d2}"; not "museum", "example.123", "".
[[nodiscard]] bool is_domain_spec(std::string_view text);

// toplabel (7.1): alphanumerics with at least one letter, or alphanumerics and
// inner hyphens ("xn--zckzah"); never all digits, never a leading hyphen.
[[nodiscard]] bool is_toplabel(std::string_view label);

// True when the text expands %{p} (or %{P}): the caller must resolve
// MacroContext::validated_name before expanding.
[[nodiscard]] bool uses_p_macro(std::string_view text);

// Expands every macro. nullopt on a syntax error (including a letter the use
// does not allow); callers check syntax at parse time, so for record terms
// this only fails on explanation text fetched from DNS.
[[nodiscard]] std::optional<std::string> expand_macros(std::string_view text,
                                                       const MacroContext& context, MacroUse use);

// The name to query for an expanded domain-spec: one trailing dot dropped,
// then whole labels dropped from the left until it fits 253 octets (7.3).
// nullopt when no DNS query can be composed from it (an empty label, a label
// over 63 octets): RFC 7208 leaves this undefined (the test suite accepts
// fail or permerror); ember treats the name as non-existent, like 4.3 does
// for the initial domain, so the mechanism does not match.
[[nodiscard]] std::optional<std::string> query_name(std::string_view expanded);

// The "i" macro: dotted quad for IPv4; for IPv6 32 lower-case nibbles joined
// by dots ("2.0.0.1.0.d.b.8...."), as in RFC 7208 7.4's example.
[[nodiscard]] std::string dotted_address(const core::IpAddress& ip);

} // namespace ember::auth
