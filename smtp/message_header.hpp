#pragma once
// RFC 5322 header handling for submitted messages: splitting the header block
// into fields, unfolding, parsing address lists (3.4, with the common obs-
// forms of 4.4 and UTF-8 per RFC 6532), the submission checks of 3.6 that
// decide whether a message is accepted, and the Date: format (3.3).
// Not here: MIME, RFC 2047 decoding (encoded-words stay opaque atoms), DKIM
// canonicalization, header rewriting. Pure functions, thread-safe.

#include "smtp/reply.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::smtp {

struct HeaderField {
    std::string name;  // as written, obs "name WSP :" trimmed
    std::string value; // raw, from right after the colon; may hold folding
                       // CRLF+WSP; no trailing CRLF
};

struct HeaderBlock {
    std::vector<HeaderField> fields;
    std::size_t body_offset = 0; // index of the first body octet; == size if no body
    bool malformed = false;
    std::string error; // why, with the line number, when malformed
};

// Stops at the first empty line. A line without a colon, with an invalid
// field name (RFC 5322 2.2: printable ASCII 33-126 but ':') or a folded line
// before any field makes the block malformed; parsing stops there and
// body_offset is that line's start. A message with no empty line is all
// header. Lines may end in CRLF or, for tolerance, LF.
[[nodiscard]] HeaderBlock parse_header_block(std::string_view message);

// RFC 5322 2.2.3: drop the CRLF (or LF) of every fold; the WSP stays.
[[nodiscard]] std::string unfold(std::string_view value);

// The first field with this name (case-insensitive), or nullptr.
[[nodiscard]] const HeaderField* find_field(const HeaderBlock& block, std::string_view name);

struct Mailbox {
    std::string display_name; // words joined by one space, quotes removed; may be empty
    std::string local_part;   // as written without CFWS (a quoted local part keeps its quotes)
    std::string domain;       // dot-atom, or a domain literal with its brackets
    [[nodiscard]] std::string address() const { return local_part + '@' + domain; }
    friend bool operator==(const Mailbox&, const Mailbox&) = default;
};

// RFC 5322 3.4 address-list: mailboxes and groups, groups flattened (an
// empty group such as "undisclosed-recipients:;" adds nothing but is valid).
// Empty list elements (obs-addr-list) are skipped; at least one address or
// group is required. nullopt when the text does not parse.
[[nodiscard]] std::optional<std::vector<Mailbox>> parse_address_list(std::string_view text);
// RFC 5322 3.4 mailbox-list (From:): no groups, at least one mailbox.
[[nodiscard]] std::optional<std::vector<Mailbox>> parse_mailbox_list(std::string_view text);

// The domain of every mailbox of every From: field, lowercased, in order:
// what DMARC alignment and the DKIM signing-domain choice look at.
[[nodiscard]] std::vector<std::string> from_domains(const HeaderBlock& header);

struct HeaderCheck {
    bool ok = false;
    Reply reply; // 550 5.6.0 naming the problem when !ok; empty when ok
    bool has_message_id = false;
    bool has_date = false;
};

// RFC 5322 3.6 for a message a client submits: exactly one From: with at
// least one mailbox, a Sender: when From: has several, at most one of each
// field of the 3.6 table that allows one, and parseable address fields.
// has_message_id and has_date tell the session which fields to add.
[[nodiscard]] HeaderCheck check_submission_headers(const HeaderBlock& block);

// "Sun, 29 Nov 2026 06:45:38 +0000" (RFC 5322 3.3), the day without padding
// as in the RFC's own examples. |utc_offset_minutes| < 1440.
[[nodiscard]] std::string format_rfc5322_date(std::int64_t unix_seconds,
                                              int utc_offset_minutes = 0);

} // namespace ember::smtp
