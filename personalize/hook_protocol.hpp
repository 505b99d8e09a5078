#pragma once
// The external hook's JSON contract (man page ember-hook(7)): the request
// ember POSTs for a batch of recipients of one message, and the answer it
// reads back. Pure: JSON in and out, no I/O; thread-safe.
//
// Request (one batch; fields are never renamed, new ones may be added):
//   {"version":1, "message_id":"0K3F...", "campaign":"spring", "tags":["news"],
//    "from":"news@example.com", "subject":"Hi {{ first_name }}",
//    "variables":["first_name"],            the names the message's templates read
//    "recipients":[{"address":"jane@example.org", "attributes":{...},
//                   "tags":["runner"], "engagement":{engagement_summary}}]}
//
// Answer (HTTP 200, Content-Type application/json; 204 = no changes):
//   {"recipients":[{"address":"jane@example.org",
//                   "vars":{"offer":"20%"},          merge variables, highest precedence
//                   "headers":{"X-Offer":"b"},       header fields to set (see below)
//                   "variant":"b",                   a named content variant
//                   "send_at":"2026-03-02T09:00:00Z" or 1772442000 (unix seconds),
//                   "skip":{"reason":"not interested"}}]}   or "skip": true
// Every field is optional. Answers are matched to recipients by address
// (case ignored), so their order does not matter; a recipient without an
// answer is sent as is. An unusable field is ignored and named in
// `warnings` (the rest of that answer still applies): the hook's mistakes
// never fail a message. Only a body that is not a JSON object with a
// "recipients" array fails the batch (on_error decides).
//
// Header fields the hook may not set, because ember owns them or they were
// checked at submission: From, Sender, To, Cc, Bcc, Date, Message-ID,
// Return-Path, Received, DKIM-Signature, ARC-*, Authentication-Results,
// MIME-Version, Content-*, List-Unsubscribe, List-Unsubscribe-Post,
// Resent-*, X-Ember-*. Values are UTF-8 text; control characters become
// spaces, so a value can never add a field.

#include <boost/json/object.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace ember::personalize {

inline constexpr std::size_t kMaxVariantName = 64;
inline constexpr std::size_t kMaxSkipReason = 256;
inline constexpr std::size_t kMaxHookHeaderValue = 4096;

struct HookRecipient {
    std::string address;
    boost::json::object attributes;
    std::vector<std::string> tags;
    boost::json::object engagement; // engagement_summary()
};

struct Contact;

// The recipient as the hook sees it: its address, and the contact's
// attributes, tags and engagement_summary() at `now_ms` (empty, and the
// summary of no engagement, when `contact` is null).
[[nodiscard]] HookRecipient make_hook_recipient(std::string_view address, const Contact* contact,
                                                std::int64_t now_ms);

struct HookRequest {
    std::string message_id;
    std::string campaign;
    std::vector<std::string> tags;
    std::string from;
    std::string subject;                // decoded to UTF-8
    std::vector<std::string> variables; // CompiledMessage::names()
    std::vector<HookRecipient> recipients;
};

struct HookAnswer {
    boost::json::object vars;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string variant;                    // "" = the default content
    std::optional<std::int64_t> send_at_ms; // unix ms
    std::optional<std::string> skip_reason; // set: do not send (an event, not a bounce)
    std::vector<std::string> warnings;      // what was ignored, for the log
};

// The request body for recipients [first, first + count).
[[nodiscard]] std::string encode_hook_request(const HookRequest& request, std::size_t first,
                                              std::size_t count);

// One answer object (fields as above; "address" is not looked at).
[[nodiscard]] HookAnswer parse_hook_answer(const boost::json::object& answer);

// The answers for recipients [first, first + count), in their order, or why
// the body is unusable.
[[nodiscard]] std::variant<std::vector<HookAnswer>, std::string>
parse_hook_response(std::string_view body, const HookRequest& request, std::size_t first,
                    std::size_t count);

// Whether the hook may set this header field (see the header comment).
[[nodiscard]] bool hook_may_set_header(std::string_view name);

} // namespace ember::personalize
