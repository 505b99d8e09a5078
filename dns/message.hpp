#pragma once
// A small reader of DNS response messages (RFC 1035 4.1) for what c-ares
// 1.18's ares_parse_* functions do not expose: the RCODE, the TTLs of MX,
// TXT and PTR answers, and the SOA that sets how long a negative answer may
// be cached (RFC 2308 5). It only walks the sections; the records
// themselves are decoded by c-ares. Pure, bounds-checked, never throws.

#include <cstdint>
#include <optional>
#include <span>

namespace ember::dns {

struct MessageSummary {
    std::uint8_t rcode = 0; // RFC 1035 4.1.1: 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN
    bool truncated = false;
    std::uint16_t answer_count = 0;
    // The smallest TTL in the answer section (CNAMEs on the way included).
    std::optional<std::uint32_t> answer_ttl;
    // min(SOA TTL, SOA MINIMUM) of the first SOA in the authority section.
    std::optional<std::uint32_t> negative_ttl;
};

// nullopt when the message is cut short or a name is not well formed.
[[nodiscard]] std::optional<MessageSummary>
summarize_message(std::span<const std::uint8_t> message);

} // namespace ember::dns
