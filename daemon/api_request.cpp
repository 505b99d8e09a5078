#include "daemon/api_request.hpp"

#include "core/ascii.hpp"
#include "core/envelope.hpp"
#include "personalize/transfer.hpp"
#include "smtp/address.hpp"
#include "smtp/message_header.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <initializer_list>
#include <set>

namespace ember::daemon {
namespace {

namespace json = boost::json;
using Result = std::variant<MessageRequest, ApiError>;

constexpr std::size_t kMaxAttachments = 100;
constexpr std::size_t kMaxTags = 32;
constexpr std::size_t kMaxTagSize = 64;
constexpr std::size_t kMaxCampaignSize = 128;
constexpr std::size_t kMaxHeaders = 100;
constexpr std::size_t kMaxHeaderValue = 998; // RFC 5322 2.1.1
constexpr std::size_t kMaxNameSize = 256;
constexpr auto kMaxSendWithin = std::chrono::hours(24 * 30);

// Fields ember writes itself, address fields the recipients decide, and
// trace and authentication fields only MTAs add.
constexpr std::array<std::string_view, 14> kReservedHeaders = {"from",
                                                               "sender",
                                                               "to",
                                                               "cc",
                                                               "bcc",
                                                               "subject",
                                                               "date",
                                                               "message-id",
                                                               "mime-version",
                                                               "received",
                                                               "return-path",
                                                               "dkim-signature",
                                                               "authentication-results",
                                                               "arc-seal"};

// The first problem unwinds the nested checks to parse_message_request(),
// which turns it into a value: the exception never leaves this file.
struct Failure {
    ApiError error;
};

[[noreturn]] void fail(std::string field, std::string message) {
    throw Failure{ApiError{400, std::move(field), std::move(message)}};
}

// Controls other than TAB would break a header line or hide text.
bool header_text(std::string_view s) {
    return std::none_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return (u < 0x20 && c != '\t') || u == 0x7f;
    });
}

const json::string& need_string(const json::value& v, const std::string& field) {
    if (!v.is_string())
        fail(field, "must be a string");
    return v.get_string();
}

std::string header_string(const json::value& v, const std::string& field, std::size_t max) {
    const auto& s = need_string(v, field);
    if (!header_text(s))
        fail(field, "must not hold line breaks or control characters");
    if (s.size() > max)
        fail(field, fmt::format("longer than {} octets", max));
    return std::string(s);
}

std::string body_string(const json::value& v, const std::string& field) {
    const auto& s = need_string(v, field);
    if (std::find(s.begin(), s.end(), '\0') != s.end())
        fail(field, "must not hold NUL characters");
    return std::string(s);
}

void check_keys(const json::object& o, std::initializer_list<std::string_view> known,
                const std::string& prefix) {
    for (const auto& kv : o) {
        if (std::find(known.begin(), known.end(), kv.key()) == known.end())
            fail(prefix + std::string(kv.key()), "unknown field");
    }
}

std::string checked_address(const json::value& v, const std::string& field) {
    const auto& s = need_string(v, field);
    const auto problem = smtp::mailbox_problem(s, false);
    if (!problem.empty())
        fail(field, fmt::format("not a valid address: {}", problem));
    return std::string(s);
}

void parse_from(const json::value& v, MessageRequest& r) {
    if (v.is_object()) {
        const auto& o = v.get_object();
        check_keys(o, {"address", "name"}, "from.");
        const auto* address = o.if_contains("address");
        if (address == nullptr)
            fail("from.address", "required");
        r.from_address = checked_address(*address, "from.address");
        if (const auto* name = o.if_contains("name"))
            r.from_name = header_string(*name, "from.name", kMaxNameSize);
        return;
    }
    const auto text = header_string(v, "from", kMaxHeaderValue);
    const auto list = smtp::parse_mailbox_list(text);
    if (!list || list->size() != 1)
        fail("from", "must be one mailbox, \"Name <address>\" or \"address\"");
    r.from_name = list->front().display_name;
    r.from_address = list->front().address();
    const auto problem = smtp::mailbox_problem(r.from_address, false);
    if (!problem.empty())
        fail("from", fmt::format("not a valid address: {}", problem));
}

void parse_headers(const json::value& v, MessageRequest& r) {
    if (!v.is_object())
        fail("headers", "must be an object of field names to values");
    const auto& o = v.get_object();
    if (o.size() > kMaxHeaders)
        fail("headers", fmt::format("more than {} fields", kMaxHeaders));
    for (const auto& kv : o) {
        const std::string name(kv.key());
        const auto field = "headers." + name;
        const bool valid_name = !name.empty() && name.size() <= 76 &&
                                std::all_of(name.begin(), name.end(),
                                            [](char c) { return c >= 33 && c <= 126 && c != ':'; });
        if (!valid_name)
            fail(field, "not a header field name (RFC 5322 2.2: printable ASCII but ':')");
        const auto lower = core::ascii_lower(name);
        const bool reserved = std::find(kReservedHeaders.begin(), kReservedHeaders.end(), lower) !=
                                  kReservedHeaders.end() ||
                              lower.starts_with("content-") || lower.starts_with("x-ember-") ||
                              lower.starts_with("arc-");
        if (reserved)
            fail(field, "ember sets this field itself (or a request field does)");
        r.headers.emplace_back(name, header_string(kv.value(), field, kMaxHeaderValue));
    }
}

bool base64_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

// Strict RFC 4648 4 (line breaks tolerated): lenient decoding would turn a
// client's mistake into a silently corrupt attachment.
bool valid_base64(std::string_view s) {
    std::size_t n = 0;
    std::size_t pad = 0;
    for (const char c : s) {
        if (c == '\r' || c == '\n')
            continue;
        if (c == '=') {
            ++pad;
        } else if (!base64_char(c) || pad > 0) {
            return false;
        }
        ++n;
    }
    return n % 4 == 0 && pad <= 2;
}

bool mime_token(std::string_view s) {
    // RFC 2045 5.1 token: no SPACE, CTLs or tspecials.
    constexpr std::string_view kSpecials = "()<>@,;:\\\"/[]?=";
    return !s.empty() && std::all_of(s.begin(), s.end(), [&](char c) {
        return c > 32 && c < 127 && kSpecials.find(c) == std::string_view::npos;
    });
}

void parse_attachments(const json::value& v, MessageRequest& r) {
    if (!v.is_array())
        fail("attachments", "must be an array");
    const auto& a = v.get_array();
    if (a.size() > kMaxAttachments)
        fail("attachments", fmt::format("more than {} attachments", kMaxAttachments));
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto at = fmt::format("attachments[{}]", i);
        if (!a[i].is_object())
            fail(at, "must be an object");
        const auto& o = a[i].get_object();
        check_keys(o, {"filename", "content_type", "content"}, at + ".");
        personalize::ComposeAttachment out;
        out.content_type = "application/octet-stream";
        if (const auto* t = o.if_contains("content_type")) {
            const auto type = core::ascii_lower(need_string(*t, at + ".content_type"));
            const auto slash = type.find('/');
            if (slash == std::string::npos || !mime_token(type.substr(0, slash)) ||
                !mime_token(type.substr(slash + 1)) || type.starts_with("multipart/"))
                fail(at + ".content_type", "must be a MIME type/subtype, not multipart");
            out.content_type = type;
        }
        if (const auto* f = o.if_contains("filename"))
            out.filename = header_string(*f, at + ".filename", 255);
        const auto* content = o.if_contains("content");
        if (content == nullptr)
            fail(at + ".content", "required (base64)");
        const auto& text = need_string(*content, at + ".content");
        if (!valid_base64(text))
            fail(at + ".content", "not valid base64 (RFC 4648 4)");
        out.data = personalize::decode_base64(text);
        r.attachments.push_back(std::move(out));
    }
}

void parse_recipients(const json::value& v, const RequestLimits& limits, MessageRequest& r) {
    if (!v.is_array() || v.get_array().empty())
        fail("recipients", "must be a non-empty array");
    const auto& a = v.get_array();
    if (a.size() > limits.max_recipients)
        fail("recipients", fmt::format("more than {} recipients in one request (the "
                                       "[http] max_recipients limit)",
                                       limits.max_recipients));
    std::set<std::string> seen;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto at = fmt::format("recipients[{}]", i);
        ApiRecipient out;
        if (a[i].is_string()) {
            out.address = checked_address(a[i], at);
        } else if (a[i].is_object()) {
            const auto& o = a[i].get_object();
            check_keys(o, {"address", "name", "vars"}, at + ".");
            const auto* address = o.if_contains("address");
            if (address == nullptr)
                fail(at + ".address", "required");
            out.address = checked_address(*address, at + ".address");
            if (const auto* name = o.if_contains("name"))
                out.name = header_string(*name, at + ".name", kMaxNameSize);
            if (const auto* vars = o.if_contains("vars")) {
                if (!vars->is_object())
                    fail(at + ".vars", "must be an object");
                out.vars = vars->get_object();
            }
        } else {
            fail(at, "must be an address or an object with an address");
        }
        if (!seen.insert(core::ascii_lower(out.address)).second)
            fail(at + ".address", "listed twice");
        r.recipients.push_back(std::move(out));
    }
}

void parse_tags(const json::value& v, MessageRequest& r) {
    if (!v.is_array())
        fail("tags", "must be an array of strings");
    const auto& a = v.get_array();
    if (a.size() > kMaxTags)
        fail("tags", fmt::format("more than {} tags", kMaxTags));
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto at = fmt::format("tags[{}]", i);
        const auto& t = need_string(a[i], at);
        const bool ok =
            !t.empty() && t.size() <= kMaxTagSize && std::all_of(t.begin(), t.end(), [](char c) {
                return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '_' || c == '-' || c == '.' || c == ':';
            });
        if (!ok)
            fail(at, fmt::format("1 to {} of letters, digits, '_', '-', '.', ':'", kMaxTagSize));
        r.tags.emplace_back(t);
    }
}

// {"opens": bool, "clicks": bool} (absent = false) as X-Ember-Track; both
// false is "none": untracked even for a domain in [tracking] domains.
void parse_tracking(const json::value& v, MessageRequest& r) {
    if (!v.is_object())
        fail("tracking", "must be an object like {\"opens\": true, \"clicks\": true}");
    check_keys(v.get_object(), {"opens", "clicks"}, "tracking.");
    bool on[2] = {false, false};
    const char* names[2] = {"opens", "clicks"};
    for (int i = 0; i < 2; ++i) {
        const auto* b = v.get_object().if_contains(names[i]);
        if (b != nullptr && !b->is_bool())
            fail(std::string("tracking.") + names[i], "must be true or false");
        on[i] = b != nullptr && b->get_bool();
    }
    r.track = on[0] && on[1] ? "opens, clicks" : on[0] ? "opens" : on[1] ? "clicks" : "none";
}

void parse_send_within(const json::value& v, MessageRequest& r) {
    const auto& text = need_string(v, "send_within");
    const auto d = core::parse_duration(text);
    if (!d || *d <= core::Duration::zero() || *d > kMaxSendWithin)
        fail("send_within", "a duration from 1s to 30d, such as \"6h\"");
    r.send_within = core::format_duration(*d);
}

// ---- A/B tests (variants, ab) ----

constexpr std::size_t kMinVariants = 2;
constexpr std::size_t kMaxVariants = 10;
constexpr std::size_t kMaxVariantName = 32;
constexpr auto kMaxAbDuration = std::chrono::hours(24 * 30);

bool variant_name(std::string_view s) {
    return !s.empty() && s.size() <= kMaxVariantName && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
}

// A variant may vary a body part, never add one: the cells must differ
// only in what the variant names (issue 8), not in their MIME structure.
ApiVariant parse_variant(const json::value& v, const std::string& at, const MessageRequest& r) {
    if (!v.is_object())
        fail(at, "must be an object with a name");
    const auto& o = v.get_object();
    check_keys(o, {"name", "subject", "from_name", "text", "html"}, at + ".");
    ApiVariant out;
    const auto* name = o.if_contains("name");
    if (name == nullptr)
        fail(at + ".name", "required");
    out.name = need_string(*name, at + ".name");
    if (!variant_name(out.name))
        fail(at + ".name", fmt::format("1 to {} of a-z, 0-9, '_', '-'", kMaxVariantName));
    if (const auto* s = o.if_contains("subject"))
        out.subject = header_string(*s, at + ".subject", kMaxHeaderValue);
    if (const auto* f = o.if_contains("from_name"))
        out.from_name = header_string(*f, at + ".from_name", kMaxNameSize);
    if (const auto* t = o.if_contains("text")) {
        out.text = body_string(*t, at + ".text");
        if (!r.text)
            fail(at + ".text", "the request has no text body for a variant to change");
    }
    if (const auto* h = o.if_contains("html")) {
        out.html = body_string(*h, at + ".html");
        if (!r.html)
            fail(at + ".html", "the request has no html body for a variant to change");
    }
    return out;
}

void parse_variants(const json::value& v, MessageRequest& r) {
    if (!v.is_array() || v.get_array().size() < kMinVariants || v.get_array().size() > kMaxVariants)
        fail("variants",
             fmt::format("must be an array of {} to {} variants", kMinVariants, kMaxVariants));
    const auto& a = v.get_array();
    std::set<std::string> seen;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto at = fmt::format("variants[{}]", i);
        auto variant = parse_variant(a[i], at, r);
        if (!seen.insert(variant.name).second)
            fail(at + ".name", "used twice");
        r.variants.push_back(std::move(variant));
    }
}

void parse_split(const json::value& v, MessageRequest& r, AbRequest& out) {
    if (!v.is_array() || v.get_array().size() != r.variants.size())
        fail("ab.split",
             fmt::format("must be an array of {} percentages, one per variant", r.variants.size()));
    double sum = 0;
    const auto& a = v.get_array();
    for (std::size_t i = 0; i < a.size(); ++i) {
        const auto at = fmt::format("ab.split[{}]", i);
        if (!a[i].is_number())
            fail(at, "must be a number (percent)");
        const auto percent = a[i].to_number<double>();
        if (!(percent > 0) || percent > 100)
            fail(at, "must be more than 0 and at most 100 (percent)");
        sum += percent;
        out.split.push_back(percent);
    }
    if (sum > 100 + 1e-9)
        fail("ab.split",
             fmt::format("adds up to {}; at most 100 (the remainder gets the winner)", sum));
}

void parse_ab(const json::value& v, MessageRequest& r) {
    if (!v.is_object())
        fail("ab", "must be an object: split, duration, metric");
    const auto& o = v.get_object();
    check_keys(o, {"split", "duration", "metric"}, "ab.");
    AbRequest out;
    const auto* split = o.if_contains("split");
    if (split == nullptr)
        fail("ab.split", "required");
    parse_split(*split, r, out);
    const auto* duration = o.if_contains("duration");
    if (duration == nullptr)
        fail("ab.duration", "required");
    const auto d = core::parse_duration(need_string(*duration, "ab.duration"));
    if (!d || *d < std::chrono::seconds(1) || *d > kMaxAbDuration)
        fail("ab.duration", "a duration from 1s to 30d, such as \"4h\"");
    out.duration = *d;
    const auto* metric = o.if_contains("metric");
    if (metric == nullptr)
        fail("ab.metric", "required");
    out.metric = need_string(*metric, "ab.metric");
    if (out.metric != "clicks" && out.metric != "opens")
        fail("ab.metric", "must be \"clicks\" or \"opens\"");
    r.ab = std::move(out);
}

void parse_test(const json::object& o, MessageRequest& r) {
    const auto* variants = o.if_contains("variants");
    const auto* ab = o.if_contains("ab");
    if (variants == nullptr && ab == nullptr)
        return;
    if (r.raw)
        fail(variants ? "variants" : "ab", "not allowed with raw (variants vary the parts)");
    if (variants == nullptr)
        fail("ab", "needs variants");
    parse_variants(*variants, r);
    if (ab == nullptr)
        fail("ab", "required with variants (split, duration, metric)");
    parse_ab(*ab, r);
}

// raw: the message's own From: decides the sending domain.
void parse_raw(const json::value& v, const json::object& o, MessageRequest& r) {
    for (const auto* part : {"subject", "text", "html", "headers", "attachments", "from"}) {
        if (o.contains(part))
            fail(part, "not allowed with raw (the raw message has its own)");
    }
    auto raw = personalize::to_crlf(body_string(v, "raw"));
    const auto header = smtp::parse_header_block(raw);
    const auto check = smtp::check_submission_headers(header);
    if (header.malformed || !check.ok)
        fail("raw", header.malformed
                        ? header.error
                        : (check.reply.lines.empty() ? "bad header" : check.reply.lines.front()));
    const auto* from = smtp::find_field(header, "From");
    const auto list = from ? smtp::parse_mailbox_list(smtp::unfold(from->value)) : std::nullopt;
    if (!list || list->size() != 1)
        fail("raw", "the From: field must hold exactly one mailbox");
    r.from_name = list->front().display_name;
    r.from_address = list->front().address();
    r.raw = std::move(raw);
}

std::uint64_t estimated_size(const MessageRequest& r) {
    std::uint64_t n = r.raw ? r.raw->size() : 0;
    n += r.text ? r.text->size() : 0;
    n += r.html ? r.html->size() : 0;
    for (const auto& a : r.attachments)
        n += a.data.size() / 3 * 4;
    for (const auto& v : r.variants) // every variant's body is in every message
        n += (v.text ? v.text->size() : 0) + (v.html ? v.html->size() : 0);
    return n;
}

void parse_fields(const json::object& o, const RequestLimits& limits, MessageRequest& r) {
    check_keys(o,
               {"from", "subject", "text", "html", "raw", "headers", "attachments", "recipients",
                "vars", "campaign", "tags", "send_within", "variants", "ab", "tracking"},
               "");
    if (const auto* raw = o.if_contains("raw")) {
        parse_raw(*raw, o, r);
    } else {
        const auto* from = o.if_contains("from");
        if (from == nullptr)
            fail("from", "required");
        parse_from(*from, r);
        if (const auto* s = o.if_contains("subject"))
            r.subject = header_string(*s, "subject", kMaxHeaderValue);
        if (const auto* t = o.if_contains("text"))
            r.text = body_string(*t, "text");
        if (const auto* h = o.if_contains("html"))
            r.html = body_string(*h, "html");
        if (!r.text && !r.html)
            fail("text", "a text or an html body (or raw) is required");
        if (const auto* h = o.if_contains("headers"))
            parse_headers(*h, r);
        if (const auto* a = o.if_contains("attachments"))
            parse_attachments(*a, r);
    }
    r.from_domain = core::address_domain(r.from_address);
    const auto* recipients = o.if_contains("recipients");
    if (recipients == nullptr)
        fail("recipients", "required");
    parse_recipients(*recipients, limits, r);
    if (const auto* v = o.if_contains("vars")) {
        if (!v->is_object())
            fail("vars", "must be an object");
        r.vars = v->get_object();
    }
    if (const auto* c = o.if_contains("campaign")) {
        r.campaign = header_string(*c, "campaign", kMaxCampaignSize);
        if (r.campaign.empty() || !smtp::is_ascii(r.campaign))
            fail("campaign", fmt::format("1 to {} ASCII characters", kMaxCampaignSize));
    }
    if (const auto* t = o.if_contains("tags"))
        parse_tags(*t, r);
    if (const auto* s = o.if_contains("send_within"))
        parse_send_within(*s, r);
    if (const auto* t = o.if_contains("tracking"))
        parse_tracking(*t, r);
    parse_test(o, r);
}

} // namespace

std::string error_json(const ApiError& error) {
    json::object inner;
    if (!error.field.empty())
        inner["field"] = error.field;
    inner["message"] = error.message;
    return json::serialize(json::object{{"error", std::move(inner)}});
}

Result parse_message_request(std::string_view body, const RequestLimits& limits) {
    boost::system::error_code ec;
    auto value = json::parse(body, ec);
    if (ec)
        return ApiError{400, "", "the body is not valid JSON: " + ec.message()};
    if (!value.is_object())
        return ApiError{400, "", "the body must be a JSON object"};
    MessageRequest request;
    try {
        parse_fields(value.get_object(), limits, request);
    } catch (Failure& f) {
        return std::move(f.error);
    }
    if (estimated_size(request) > limits.max_message_size)
        return ApiError{413, "",
                        fmt::format("the message exceeds the size limit of {} octets",
                                    limits.max_message_size)};
    return request;
}

namespace {

// JSON text (valid UTF-8, as serialize() writes it) with every non-ASCII
// code point as \uXXXX (a surrogate pair above U+FFFF, RFC 8259 7).
std::string ascii_json(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) {
            out += text[i++];
            continue;
        }
        const int len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        std::uint32_t cp = c & (len == 4 ? 0x07 : len == 3 ? 0x0f : 0x1f);
        for (int k = 1; k < len && i + k < text.size(); ++k)
            cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3f);
        i += len;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            out += fmt::format("\\u{:04x}\\u{:04x}", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
        } else {
            out += fmt::format("\\u{:04x}", cp);
        }
    }
    return out;
}

} // namespace

std::string vars_field_value(const boost::json::object& vars) {
    if (vars.empty())
        return {};
    const auto text = ascii_json(json::serialize(vars));
    // Fold after a ',' outside strings once a line passes 70 columns: the
    // CRLF goes away on unfolding and the SP left is JSON white space.
    constexpr std::size_t kFoldAt = 70;
    std::string out;
    std::size_t column = 14; // "X-Ember-Vars: "
    bool in_string = false;
    bool escaped = false;
    for (const char c : text) {
        out += c;
        ++column;
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == ',' && column > kFoldAt) {
            out += "\r\n ";
            column = 1;
        }
    }
    return out;
}

boost::json::object layered_vars(const boost::json::object& message,
                                 const boost::json::object& own) {
    auto out = message;
    for (const auto& kv : own)
        out[kv.key()] = kv.value();
    return out;
}

} // namespace ember::daemon
