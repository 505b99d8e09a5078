#include "personalize/hook_protocol.hpp"

#include "core/ascii.hpp"
#include "personalize/contacts.hpp"
#include "personalize/time_text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <unordered_map>

namespace ember::personalize {

namespace json = boost::json;

namespace {

constexpr std::size_t kMaxHeaderName = 76;
// send_at beyond this (year 9999) is a mistake, not a schedule.
constexpr double kMaxUnixSeconds = 253'402'300'799.0;

json::array string_array(const std::vector<std::string>& items) {
    json::array out;
    out.reserve(items.size());
    for (const auto& s : items)
        out.emplace_back(s);
    return out;
}

// Control characters become spaces; cut at `max` octets, not inside a
// UTF-8 sequence.
std::string clean_text(std::string_view text, std::size_t max) {
    std::string out;
    out.reserve(std::min(text.size(), max));
    for (const char c : text)
        out.push_back(static_cast<unsigned char>(c) < 0x20 || c == '\x7f' ? ' ' : c);
    if (out.size() > max) {
        std::size_t cut = max;
        while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80)
            --cut;
        out.resize(cut);
    }
    return out;
}

bool header_name_ok(std::string_view name) {
    // RFC 5322 3.6.8: printable ASCII except ':'.
    return !name.empty() && name.size() <= kMaxHeaderName &&
           std::all_of(name.begin(), name.end(),
                       [](char c) { return c >= 33 && c <= 126 && c != ':'; });
}

bool variant_ok(std::string_view name) {
    return !name.empty() && name.size() <= kMaxVariantName &&
           std::all_of(name.begin(), name.end(), [](char c) {
               return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '.' || c == '-';
           });
}

void read_headers(const json::value& v, HookAnswer& a) {
    const auto* o = v.if_object();
    if (o == nullptr)
        return a.warnings.push_back("headers is not an object");
    for (const auto& [name, value] : *o) {
        if (!header_name_ok(name)) {
            a.warnings.push_back(fmt::format("header name \"{}\" is not a field name",
                                             clean_text(name, kMaxHeaderName)));
        } else if (!hook_may_set_header(name)) {
            a.warnings.push_back(
                fmt::format("header {} may not be set by the hook", std::string_view(name)));
        } else if (!value.is_string()) {
            a.warnings.push_back(fmt::format("header {} is not a string", std::string_view(name)));
        } else {
            a.headers.emplace_back(std::string(name),
                                   clean_text(value.get_string(), kMaxHookHeaderValue));
        }
    }
}

void read_send_at(const json::value& v, HookAnswer& a) {
    if (v.is_null())
        return;
    if (v.is_number()) {
        const double seconds = v.to_number<double>();
        if (std::isfinite(seconds) && seconds > 0 && seconds <= kMaxUnixSeconds) {
            a.send_at_ms = static_cast<std::int64_t>(std::llround(seconds * 1000.0));
            return;
        }
    } else if (v.is_string()) {
        if (const auto ms = parse_rfc3339(v.get_string())) {
            a.send_at_ms = *ms;
            return;
        }
    }
    a.warnings.push_back("send_at is not an RFC 3339 date-time or unix seconds");
}

void read_skip(const json::value& v, HookAnswer& a) {
    if (v.is_null() || (v.is_bool() && !v.get_bool()))
        return;
    if (v.is_bool()) {
        a.skip_reason = "hook";
    } else if (v.is_string()) {
        a.skip_reason = clean_text(v.get_string(), kMaxSkipReason);
    } else if (const auto* o = v.if_object()) {
        const auto* reason = o->if_contains("reason");
        a.skip_reason = reason != nullptr && reason->is_string()
                            ? clean_text(reason->get_string(), kMaxSkipReason)
                            : std::string("hook");
    } else {
        return a.warnings.push_back("skip is not an object, a string or a boolean");
    }
    if (a.skip_reason->empty())
        a.skip_reason = "hook";
}

} // namespace

bool hook_may_set_header(std::string_view name) {
    static constexpr std::array<std::string_view, 15> kOwned = {"from",
                                                                "sender",
                                                                "to",
                                                                "cc",
                                                                "bcc",
                                                                "date",
                                                                "message-id",
                                                                "return-path",
                                                                "received",
                                                                "dkim-signature",
                                                                "mime-version",
                                                                "authentication-results",
                                                                "list-unsubscribe",
                                                                "list-unsubscribe-post",
                                                                "x-ember-vars"};
    static constexpr std::array<std::string_view, 4> kOwnedPrefixes = {"arc-", "content-",
                                                                       "resent-", "x-ember-"};
    const auto lower = core::ascii_lower(name);
    if (std::find(kOwned.begin(), kOwned.end(), lower) != kOwned.end())
        return false;
    return std::none_of(kOwnedPrefixes.begin(), kOwnedPrefixes.end(),
                        [&lower](std::string_view p) { return lower.starts_with(p); });
}

HookRecipient make_hook_recipient(std::string_view address, const Contact* contact,
                                  std::int64_t now_ms) {
    HookRecipient r;
    r.address = std::string(address);
    if (contact != nullptr) {
        r.attributes = contact->attributes;
        r.tags = contact->tags;
    }
    r.engagement =
        engagement_summary(contact != nullptr ? contact->engagement : Engagement{}, now_ms);
    return r;
}

std::string encode_hook_request(const HookRequest& request, std::size_t first, std::size_t count) {
    json::object out;
    out["version"] = 1;
    out["message_id"] = request.message_id;
    out["campaign"] = request.campaign;
    out["tags"] = string_array(request.tags);
    out["from"] = request.from;
    out["subject"] = request.subject;
    out["variables"] = string_array(request.variables);
    json::array recipients;
    const auto end = std::min(request.recipients.size(), first + count);
    for (std::size_t i = first; i < end; ++i) {
        const auto& r = request.recipients[i];
        recipients.push_back(json::object{{"address", r.address},
                                          {"attributes", r.attributes},
                                          {"tags", string_array(r.tags)},
                                          {"engagement", r.engagement}});
    }
    out["recipients"] = std::move(recipients);
    return json::serialize(out);
}

HookAnswer parse_hook_answer(const json::object& answer) {
    HookAnswer a;
    if (const auto* vars = answer.if_contains("vars")) {
        if (vars->is_object())
            a.vars = vars->get_object();
        else if (!vars->is_null())
            a.warnings.push_back("vars is not an object");
    }
    if (const auto* headers = answer.if_contains("headers"))
        read_headers(*headers, a);
    if (const auto* variant = answer.if_contains("variant");
        variant != nullptr && !variant->is_null()) {
        if (variant->is_string() && variant_ok(variant->get_string()))
            a.variant = std::string(variant->get_string());
        else
            a.warnings.push_back("variant is not a name of letters, digits and _ . - (64 at most)");
    }
    if (const auto* send_at = answer.if_contains("send_at"))
        read_send_at(*send_at, a);
    if (const auto* skip = answer.if_contains("skip"))
        read_skip(*skip, a);
    return a;
}

std::variant<std::vector<HookAnswer>, std::string> parse_hook_response(std::string_view body,
                                                                       const HookRequest& request,
                                                                       std::size_t first,
                                                                       std::size_t count) {
    boost::system::error_code ec;
    const auto v = json::parse(body, ec);
    if (ec)
        return fmt::format("the answer is not JSON: {}", ec.message());
    const auto* o = v.if_object();
    const auto* list = o != nullptr ? o->if_contains("recipients") : nullptr;
    if (list == nullptr || !list->is_array())
        return std::string("the answer has no \"recipients\" array");
    std::unordered_map<std::string, const json::object*> by_address;
    std::vector<std::string> unmatched;
    for (const auto& item : list->get_array()) {
        const auto* answer = item.if_object();
        const auto* address = answer != nullptr ? answer->if_contains("address") : nullptr;
        const auto key = address != nullptr && address->is_string()
                             ? normalize_contact_address(address->get_string())
                             : std::nullopt;
        if (key)
            by_address.emplace(*key, answer);
        else
            unmatched.push_back("an answer without a valid address was ignored");
    }
    const auto end = std::min(request.recipients.size(), first + count);
    std::vector<HookAnswer> answers;
    answers.reserve(end > first ? end - first : 0);
    for (std::size_t i = first; i < end; ++i) {
        const auto key = normalize_contact_address(request.recipients[i].address);
        const auto it = key ? by_address.find(*key) : by_address.end();
        // No answer: sent as is (a hook may answer only what it changes).
        answers.push_back(it == by_address.end() ? HookAnswer{} : parse_hook_answer(*it->second));
    }
    if (!answers.empty())
        for (auto& w : unmatched)
            answers.front().warnings.push_back(std::move(w));
    return answers;
}

} // namespace ember::personalize
