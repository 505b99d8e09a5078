#pragma once
// What a bounce or complaint says about the message ember sent: the
// returned message's headers, reduced to the keys that map a report back
// to a queued message and recipient: ember's X-Ember-ID trace header, the
// VERP return path, Message-ID. Pure; thread-safe.

#include "feedback/mime.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ember::feedback {

struct OriginalMessage {
    std::string message_id;  // without <>
    std::string ember_id;    // X-Ember-ID
    std::string return_path; // without <>
    std::string from;        // the field as written (display name included)
    std::string to;          // ditto
    std::string subject;     // RFC 2047 words decoded (bytes, charset not converted)
    [[nodiscard]] bool empty() const {
        return message_id.empty() && ember_id.empty() && return_path.empty() && from.empty() &&
               to.empty();
    }
};

[[nodiscard]] OriginalMessage original_from_headers(const mime::Headers& headers);

// The VERP token of `address` when its local part starts with `prefix`
// ("bounces+" for "bounces+TOKEN@example.com"); nullopt otherwise. The
// comparison of the prefix is case-insensitive (local parts are often
// lowered by the way back), the token is returned as written.
[[nodiscard]] std::optional<std::string> verp_token(std::string_view address,
                                                    std::string_view prefix);

// The key that maps a report back to what ember sent, best first: the
// VERP token of the address the report came back to (a bounce's envelope
// recipient) or of the returned message's Return-Path (a complaint comes
// to the feedback-loop address, but quotes the message with its return
// path), then ember's X-Ember-ID trace header, then the Message-ID.
struct TraceKey {
    enum class Kind : std::uint8_t { None, Verp, EmberId, MessageId };
    Kind kind = Kind::None;
    std::string value;
};

[[nodiscard]] TraceKey trace_key(const OriginalMessage& original, std::string_view envelope_to,
                                 std::string_view verp_prefix);

// The first addr-spec in a header value: "Name <a@b>" -> "a@b", "a@b" -> "a@b".
[[nodiscard]] std::string first_address(std::string_view value);

} // namespace ember::feedback
