#pragma once
// RFC 6376 3.4 canonicalization and the pieces of a message DKIM works on:
// splitting a stored message into header fields and body, the simple and
// relaxed forms of a header field and of a body, and the body hash (bh=).
//
// Input is the message as ember stores and sends it: CRLF line ends (the
// SMTP server refuses or normalizes bare CR/LF), not dot-stuffed. Only CRLF
// ends a line here; a stray CR or LF is an ordinary octet, as in dkimpy and
// libopendkim. Pure functions, no I/O, thread-safe.

#include "auth/dkim_config.hpp"
#include "auth/dkim_crypto.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace ember::auth::dkim {

struct HeaderField {
    std::string_view name; // before ':', trailing WSP removed; "" if there is no ':'
    std::string_view raw;  // the whole field, folded lines included, without its last CRLF
};

struct SplitMessage {
    std::vector<HeaderField> headers; // in message order
    std::string_view body;            // after the empty line; "" when there is none
};

// The header section ends at the first empty line. A message without one is
// all header (and its body is empty). A line starting with SP or HTAB
// continues the field before it (RFC 5322 2.2.3).
[[nodiscard]] SplitMessage split_message(std::string_view message);

// Appends the canonical form of one header field, without the CRLF.
// relaxed (3.4.2): lower-case name, unfolded, WSP runs as one SP, no WSP at
// the ends of the value or around the colon. simple (3.4.1): unchanged.
void canonicalize_header(DkimCanon canon, std::string_view raw_field, std::string& out);

// The canonical body (3.4.3 simple, 3.4.4 relaxed), for tests and tools;
// signing streams it into the hash instead.
[[nodiscard]] std::string canonicalize_body(DkimCanon canon, std::string_view body);

// SHA-256 of the canonical body, without holding it in memory.
[[nodiscard]] Sha256 body_hash(DkimCanon canon, std::string_view body);

} // namespace ember::auth::dkim
