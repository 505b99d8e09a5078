#pragma once
// POST /v1/messages: the JSON request, validated into a MessageRequest, or
// the first problem as an ApiError naming the field ("recipients[3].address")
// in the form ember-api(7) documents. Also the X-Ember-Vars encoding the
// personalization merge reads back (personalize/merge.hpp).
//
// The request (every key optional unless marked):
//   from         required: "Name <addr>" or {"address", "name"?}
//   subject      string
//   text, html   strings; at least one of them, or raw
//   raw          a complete RFC 5322 message instead of the parts above
//                (From: is taken from it; subject/text/html/headers/
//                attachments must then be absent)
//   headers      {"Name": "value"}: extra fields; ember's own fields, the
//                MIME and trace fields and the address fields are refused
//   attachments  [{"filename"?, "content_type"?, "content" (base64)}]
//   recipients   required, 1..max_recipients: [{"address", "name"?, "vars"?}]
//   vars         {..}: variables for every recipient (a recipient's own
//                vars win, key by key)
//   campaign     string, tags [string]; send_within "6h" (a duration)
//   variants     A/B test: 2..10 [{"name", "subject"?, "from_name"?,
//                "text"?, "html"?}], the first is the control; a variant
//                changes only the fields it names (text/html only where the
//                request has that part); names 1..32 of [a-z0-9_-], unique
//   ab           required with variants, refused without: {"split": [% per
//                variant, each > 0, sum <= 100; the remainder gets the
//                winner], "duration": "4h" (1s..30d), "metric": "clicks" |
//                "opens"}. Neither is allowed with raw.
// Unknown keys are errors (a typo must not silently drop a setting).
//
// Pure: no I/O; thread-safe.

#include "core/units.hpp"
#include "personalize/compose.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace ember::daemon {

struct ApiError {
    unsigned status = 400;
    std::string field; // JSON path of the culprit; "" for the whole request
    std::string message;
};

// {"error": {"field": ..., "message": ...}} (field left out when empty).
[[nodiscard]] std::string error_json(const ApiError& error);

struct ApiRecipient {
    std::string address;
    std::string name; // display name for To:
    boost::json::object vars;
};

// One A/B variant: a field left nullopt is the request's own.
struct ApiVariant {
    std::string name;
    std::optional<std::string> subject;
    std::optional<std::string> from_name;
    std::optional<std::string> text;
    std::optional<std::string> html;
};

struct AbRequest {
    std::vector<double> split; // percent per variant, parallel to variants
    core::Duration duration{};
    std::string metric; // "clicks" or "opens"
};

struct MessageRequest {
    std::string from_name;
    std::string from_address;
    std::string from_domain; // lowercased: what the key's scope is checked against
    std::string subject;
    std::optional<std::string> text;
    std::optional<std::string> html;
    std::optional<std::string> raw; // CRLF line ends
    std::vector<std::pair<std::string, std::string>> headers;
    std::vector<personalize::ComposeAttachment> attachments;
    std::vector<ApiRecipient> recipients;
    boost::json::object vars;
    std::string campaign;
    std::vector<std::string> tags;
    std::string send_within; // normalized duration text ("6h"); "" when absent
    std::string
        track; // X-Ember-Track from "tracking": "opens, clicks", "opens", "none"...; "" absent
    std::vector<ApiVariant> variants; // empty: no A/B test
    std::optional<AbRequest> ab;      // set exactly when variants are
};

struct RequestLimits {
    std::size_t max_recipients = 1000;
    std::uint64_t max_message_size = std::uint64_t{25} << 20; // 413 above it
};

[[nodiscard]] std::variant<MessageRequest, ApiError>
parse_message_request(std::string_view body, const RequestLimits& limits);

// A JSON object as one header field value for X-Ember-Vars: ASCII only
// (non-ASCII as \uXXXX escapes), folded between tokens so no line exceeds
// 78 octets where a token allows it (RFC 5322 2.1.1). The merge unfolds it.
// "" for an empty object. Without the field name and final CRLF.
[[nodiscard]] std::string vars_field_value(const boost::json::object& vars);

// The message's variables for one recipient: `message` then `own` on top.
[[nodiscard]] boost::json::object layered_vars(const boost::json::object& message,
                                               const boost::json::object& own);

} // namespace ember::daemon
