#pragma once
// RFC 5321 envelope address syntax: the Mailbox of a MAIL FROM reverse-path
// or RCPT TO forward-path (4.1.2), with the RFC 6531 3.3 UTF-8 extensions
// when SMTPUTF8 is in force, and the octet limits of 4.5.3.1.
// Syntax only: no DNS, no relay or policy decisions, no IDNA (U-labels are
// checked for UTF-8 validity and LDH placement, not mapped to A-labels).
// Pure functions, thread-safe, no allocation except ascii_lower().

#include <cstddef>
#include <string>
#include <string_view>

namespace ember::smtp {

// RFC 5321 4.5.3.1.1-3 (octets, "including the punctuation" for the path).
inline constexpr std::size_t kMaxLocalPart = 64;
inline constexpr std::size_t kMaxDomain = 255;
inline constexpr std::size_t kMaxPath = 256;

[[nodiscard]] bool is_ascii(std::string_view text);
// Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, <= U+10FFFF.
[[nodiscard]] bool is_valid_utf8(std::string_view text);
[[nodiscard]] std::string ascii_lower(std::string_view text);

// Domain = sub-domain *("." sub-domain); a sub-domain is letters, digits and
// hyphens, not starting or ending with a hyphen, at most 63 octets (RFC 1035
// 2.3.4), the whole at most 255 octets. With allow_utf8, U-labels (RFC 6531
// 3.3) are accepted: non-ASCII UTF-8 counts as a letter. No trailing dot.
[[nodiscard]] bool is_valid_domain(std::string_view domain, bool allow_utf8);

// "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3). General address
// literals ("[tag:...]") are refused: no Standardized-tag besides IPv6 is
// registered, so any other tag is a client error, not a future extension.
[[nodiscard]] bool is_valid_address_literal(std::string_view literal);

// Local-part "@" ( Domain / address-literal ), local part a Dot-string or a
// Quoted-string, with the length limits above.
[[nodiscard]] bool is_valid_mailbox(std::string_view mailbox, bool allow_utf8);

// Why a mailbox is invalid, as a short lowercase phrase for a reply text
// ("local part longer than 64 octets"); empty when it is valid.
[[nodiscard]] std::string_view mailbox_problem(std::string_view mailbox, bool allow_utf8);

} // namespace ember::smtp
