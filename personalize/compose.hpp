#pragma once
// Builds an RFC 5322 / MIME message from parts (what the HTTP injection API
// receives as JSON): From, Subject and extra header fields, a text and/or
// an HTML body, attachments.
//
// Shape (RFC 2046):
//   text only or html only      a single text/plain or text/html part
//   text and html               multipart/alternative (text first: 5.1.4,
//                               the last part is the preferred one)
//   with attachments            multipart/mixed holding the above, then one
//                               part per attachment
// Bodies are UTF-8, CRLF line ends (RFC 2045 6.7 canonical form), 7bit when
// every line is ASCII and at most 78 octets, else quoted-printable, so the
// message is 7-bit clean and needs neither 8BITMIME nor SMTPUTF8;
// attachments are base64. Header text that is not ASCII is RFC 2047-encoded
// (Subject, display names, extra fields) and attachment file names use
// RFC 2231 (filename*=utf-8''...) beside a plain ASCII fallback.
// Boundaries start with "=_", which neither quoted-printable nor base64 can
// produce (Python's email package and Mutt rely on the same), so no body
// scan is needed.
//
// Does not: add Date, Message-ID, To, MIME checks on caller-supplied
// content types (the caller validates), Received: or any X-Ember- field.
// The caller prepends those (field order is free, RFC 5322 3.6).
// Pure; thread-safe.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ember::personalize {

struct ComposeAttachment {
    std::string filename;     // UTF-8; may be empty
    std::string content_type; // "type/subtype", validated by the caller
    std::string data;         // decoded octets
};

struct ComposeInput {
    std::string from_name;    // UTF-8 display name; may be empty
    std::string from_address; // addr-spec
    std::string subject;      // UTF-8; may be empty
    std::optional<std::string> text;
    std::optional<std::string> html;
    // Extra fields, name and UTF-8 value; no CR or LF in either (the caller checks).
    std::vector<std::pair<std::string, std::string>> headers;
    std::vector<ComposeAttachment> attachments;
    std::string boundary_seed; // makes boundaries unique per message (the queue id)
};

// "Name <addr>" with the name encoded as RFC 5322 3.2.5 phrase text needs.
[[nodiscard]] std::string format_mailbox(std::string_view name, std::string_view address);

// The message: header fields (From, Subject, the extras, MIME-Version,
// Content-Type, Content-Transfer-Encoding), a blank line, the body.
// Needs a text or an html body (else an empty text/plain part is written).
[[nodiscard]] std::string compose(const ComposeInput& input);

} // namespace ember::personalize
