#include "daemon/admin_verbs.hpp"

#include "core/log.hpp"

#include <boost/json/array.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <initializer_list>
#include <optional>

namespace ember::daemon {

namespace json = boost::json;
namespace log = core::log;
using queue::RecipientState;

namespace {

constexpr std::array kStates{RecipientState::Queued, RecipientState::Deferred,
                             RecipientState::Delivered, RecipientState::Failed,
                             RecipientState::Suppressed};

json::value time_or_null(std::int64_t unix_ms) {
    if (unix_ms == 0)
        return nullptr;
    return json::string(format_timestamp(unix_ms));
}

std::string_view body_name(core::BodyType body) {
    switch (body) {
    case core::BodyType::SevenBit:
        return "7bit";
    case core::BodyType::EightBitMime:
        return "8bitmime";
    case core::BodyType::BinaryMime:
        return "binarymime";
    case core::BodyType::Unspecified:
        break;
    }
    return "";
}

std::string_view ret_name(core::DsnRet ret) {
    switch (ret) {
    case core::DsnRet::Full:
        return "full";
    case core::DsnRet::Headers:
        return "hdrs";
    case core::DsnRet::Unspecified:
        break;
    }
    return "";
}

json::array notify_names(std::uint8_t notify) {
    json::array names;
    if (notify & core::kNotifyNever)
        names.emplace_back("never");
    if (notify & core::kNotifySuccess)
        names.emplace_back("success");
    if (notify & core::kNotifyFailure)
        names.emplace_back("failure");
    if (notify & core::kNotifyDelay)
        names.emplace_back("delay");
    return names;
}

json::object state_counts(const std::map<RecipientState, std::uint64_t>& counts) {
    json::object out;
    std::uint64_t total = 0;
    for (auto state : kStates) {
        auto it = counts.find(state);
        const std::uint64_t n = it == counts.end() ? 0 : it->second;
        out[queue::state_name(state)] = n;
        total += n;
    }
    out["total"] = total;
    return out;
}

// The recipient id argument, parsed; `error` set when absent or invalid.
std::optional<queue::QueueId> id_arg(const json::object& args, std::string& error) {
    error = unknown_argument(args, {"id"});
    if (!error.empty())
        return std::nullopt;
    auto text = string_arg(args, "id", error);
    if (!text) {
        if (error.empty())
            error = R"(missing argument "id")";
        return std::nullopt;
    }
    auto id = queue::parse_queue_id(*text);
    if (!id)
        error = fmt::format("invalid queue id \"{}\"", valid_utf8(*text));
    return id;
}

json::object list_entry(const queue::Message& message) {
    json::array recipients;
    for (const auto& r : message.recipients)
        recipients.push_back(json::object{{"address", valid_utf8(r.spec.address)},
                                          {"state", queue::state_name(r.state)}});
    return json::object{{"id", queue::format_queue_id(message.id)},
                        {"mail_from", valid_utf8(message.envelope.mail_from)},
                        {"size", message.size},
                        {"received_at", time_or_null(message.submission.received_at_ms)},
                        {"recipients", std::move(recipients)}};
}

json::object recipient_detail(const queue::Recipient& r) {
    return json::object{
        {"address", valid_utf8(r.spec.address)},
        {"orcpt", valid_utf8(r.spec.orcpt)},
        {"notify", notify_names(r.spec.notify)},
        {"state", queue::state_name(r.state)},
        {"attempts", r.attempts},
        {"next_attempt", queue::is_pending(r.state) ? time_or_null(r.next_attempt_ms) : nullptr},
        {"updated", time_or_null(r.updated_ms)},
        {"last_reply", valid_utf8(r.last_reply)},
    };
}

json::object show_result(const queue::Message& message, std::string_view content) {
    const auto& env = message.envelope;
    const auto& sub = message.submission;
    json::array recipients;
    for (const auto& r : message.recipients)
        recipients.push_back(recipient_detail(r));
    const auto header = parse_header_section(content);
    json::array headers;
    for (const auto& field : header.fields)
        headers.push_back(
            json::object{{"name", valid_utf8(field.name)}, {"value", valid_utf8(field.value)}});
    return json::object{
        {"id", queue::format_queue_id(message.id)},
        {"size", message.size},
        {"envelope", json::object{{"mail_from", valid_utf8(env.mail_from)},
                                  {"body", body_name(env.body)},
                                  {"smtputf8", env.smtputf8},
                                  {"ret", ret_name(env.ret)},
                                  {"envid", valid_utf8(env.envid)}}},
        {"submission", json::object{{"client_ip", sub.client_ip},
                                    {"helo", valid_utf8(sub.helo)},
                                    {"auth_user", valid_utf8(sub.auth_user)},
                                    {"tls", sub.tls},
                                    {"listener", sub.listener},
                                    {"received_at", time_or_null(sub.received_at_ms)}}},
        {"recipients", std::move(recipients)},
        {"headers", std::move(headers)},
        {"headers_truncated", header.truncated},
    };
}

// Domains by total recipients, largest first (as Postfix's qshape), then by name.
json::array domain_rows(const queue::QueueSummary& summary) {
    struct Row {
        std::string domain;
        std::uint64_t total = 0;
        json::object counts;
    };
    std::vector<Row> rows;
    for (const auto& [domain, counts] : summary.by_domain) {
        auto object = state_counts(counts);
        const auto total = object["total"].get_uint64();
        rows.push_back({domain, total, std::move(object)});
    }
    std::stable_sort(rows.begin(), rows.end(),
                     [](const Row& a, const Row& b) { return a.total > b.total; });
    json::array out;
    for (auto& row : rows) {
        json::object entry{{"domain", valid_utf8(row.domain)}};
        for (auto& count : row.counts)
            entry[count.key()] = count.value();
        out.push_back(std::move(entry));
    }
    return out;
}

struct ListQuery {
    queue::ListFilter filter;
    std::string error;
};

ListQuery parse_list_args(const json::object& args) {
    ListQuery query;
    query.error = unknown_argument(args, {"domain", "state", "limit"});
    if (!query.error.empty())
        return query;
    if (auto domain = string_arg(args, "domain", query.error))
        query.filter.domain = core::address_domain("@" + *domain);
    if (auto state = string_arg(args, "state", query.error)) {
        query.filter.state = queue::parse_state(*state);
        if (!query.filter.state)
            query.error = fmt::format("unknown state \"{}\" (queued, deferred, delivered, "
                                      "failed, suppressed)",
                                      valid_utf8(*state));
    }
    query.filter.limit = kDefaultListLimit;
    if (const auto* limit = args.if_contains("limit"); limit && !limit->is_null()) {
        const bool integral = limit->is_int64() || limit->is_uint64();
        const auto n = integral ? limit->to_number<std::int64_t>() : 0;
        if (!integral || n < 1 || static_cast<std::size_t>(n) > kMaxListLimit)
            query.error =
                fmt::format("argument \"limit\" must be an integer from 1 to {}", kMaxListLimit);
        else
            query.filter.limit = static_cast<std::size_t>(n);
    }
    return query;
}

} // namespace

AdminResult queue_summary(const queue::Store& store, const json::object& args) {
    if (auto error = unknown_argument(args, {}); !error.empty())
        return AdminResult::failure(std::move(error));
    const auto summary = store.summary();
    return json::object{{"messages", summary.messages},
                        {"recipients", state_counts(summary.by_state)},
                        {"domains", domain_rows(summary)}};
}

AdminResult queue_list(const queue::Store& store, const json::object& args) {
    auto query = parse_list_args(args);
    if (!query.error.empty())
        return AdminResult::failure(std::move(query.error));
    const std::size_t limit = query.filter.limit;
    query.filter.limit = limit + 1; // one more tells whether the list was cut
    auto messages = store.list(query.filter);
    const bool truncated = messages.size() > limit;
    if (truncated)
        messages.resize(limit);
    json::array entries;
    for (const auto& message : messages)
        entries.push_back(list_entry(message));
    return json::object{{"messages", std::move(entries)}, {"truncated", truncated}};
}

AdminResult queue_show(const queue::Store& store, const json::object& args) {
    std::string error;
    const auto id = id_arg(args, error);
    if (!id)
        return AdminResult::failure(std::move(error));
    const auto message = store.load(*id);
    if (!message)
        return AdminResult::failure("no such message: " + queue::format_queue_id(*id));
    const auto content = store.load_content(*id);
    return show_result(*message, content ? std::string_view(*content) : std::string_view());
}

AdminResult queue_delete(queue::Store& store, const json::object& args) {
    std::string error;
    const auto id = id_arg(args, error);
    if (!id)
        return AdminResult::failure(std::move(error));
    const auto text = queue::format_queue_id(*id);
    if (!store.remove(*id, error)) {
        if (error.empty())
            return AdminResult::failure("no such message: " + text);
        return AdminResult::failure(fmt::format("cannot delete {}: {}", text, error));
    }
    log::info("queue.deleted", "id={} by=admin", text);
    return json::object{{"deleted", text}};
}

void add_queue_verbs(AdminServer& server, queue::Store& store) {
    server.add_verb("queue.summary",
                    [&store](const json::object& args) { return queue_summary(store, args); });
    server.add_verb("queue.list",
                    [&store](const json::object& args) { return queue_list(store, args); });
    server.add_verb("queue.show",
                    [&store](const json::object& args) { return queue_show(store, args); });
    server.add_verb("queue.delete",
                    [&store](const json::object& args) { return queue_delete(store, args); });
}

namespace {

bool is_wsp(char c) {
    return c == ' ' || c == '\t';
}

std::string_view trim_wsp(std::string_view text) {
    while (!text.empty() && is_wsp(text.front()))
        text.remove_prefix(1);
    while (!text.empty() && is_wsp(text.back()))
        text.remove_suffix(1);
    return text;
}

} // namespace

HeaderSection parse_header_section(std::string_view content, std::size_t max_fields) {
    HeaderSection section;
    std::size_t pos = 0;
    while (pos < content.size()) {
        const auto eol = content.find('\n', pos);
        std::string_view line =
            content.substr(pos, eol == std::string_view::npos ? eol : eol - pos);
        pos = eol == std::string_view::npos ? content.size() : eol + 1;
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (line.empty())
            break;                  // the empty line that ends the header
        if (is_wsp(line.front())) { // a folded continuation
            if (section.fields.empty())
                break;
            section.fields.back().value += line;
            continue;
        }
        const auto colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0)
            break; // not a header field: the body starts here
        if (section.fields.size() == max_fields) {
            section.truncated = true;
            break;
        }
        // RFC 5322 section 4.5 (obsolete syntax) allows WSP before the colon.
        section.fields.push_back(
            {std::string(trim_wsp(line.substr(0, colon))), std::string(line.substr(colon + 1))});
    }
    for (auto& field : section.fields)
        field.value = std::string(trim_wsp(field.value));
    return section;
}

std::string format_timestamp(std::int64_t unix_ms) {
    if (unix_ms == 0)
        return "";
    const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
    std::tm tm{};
    if (!::gmtime_r(&seconds, &tm))
        return "";
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

namespace {

// Length of the valid UTF-8 sequence at the start of `s` (RFC 3629 section 4),
// or 0 when it is not one.
std::size_t utf8_sequence(std::string_view s) {
    const auto byte = [&](std::size_t i) {
        return static_cast<unsigned char>(s[i]);
    };
    const unsigned char lead = byte(0);
    if (lead < 0x80)
        return 1;
    std::size_t length = 0;
    unsigned char low = 0x80, high = 0xBF; // allowed range of the second byte
    if (lead >= 0xC2 && lead <= 0xDF)
        length = 2;
    else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        low = lead == 0xE0 ? 0xA0 : 0x80;  // no overlong forms
        high = lead == 0xED ? 0x9F : 0xBF; // no surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        low = lead == 0xF0 ? 0x90 : 0x80;
        high = lead == 0xF4 ? 0x8F : 0xBF; // nothing above U+10FFFF
    } else
        return 0;
    if (s.size() < length || byte(1) < low || byte(1) > high)
        return 0;
    for (std::size_t i = 2; i < length; ++i)
        if (byte(i) < 0x80 || byte(i) > 0xBF)
            return 0;
    return length;
}

} // namespace

std::string valid_utf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    while (!text.empty()) {
        const std::size_t n = utf8_sequence(text);
        if (n == 0) {
            out += "\xEF\xBF\xBD"; // U+FFFD REPLACEMENT CHARACTER
            text.remove_prefix(1);
        } else {
            out.append(text.substr(0, n));
            text.remove_prefix(n);
        }
    }
    return out;
}

std::string unknown_argument(const json::object& args,
                             std::initializer_list<std::string_view> known) {
    for (const auto& entry : args)
        if (std::find(known.begin(), known.end(), entry.key()) == known.end())
            return fmt::format("unknown argument \"{}\"", valid_utf8(entry.key()));
    return "";
}

std::optional<std::string> string_arg(const json::object& args, std::string_view name,
                                      std::string& error, bool non_empty) {
    const auto* value = args.if_contains(name);
    if (!value || value->is_null())
        return std::nullopt;
    if (!value->is_string() || (non_empty && value->get_string().empty())) {
        error =
            fmt::format("argument \"{}\" must be a {}string", name, non_empty ? "non-empty " : "");
        return std::nullopt;
    }
    return std::string(value->get_string());
}

} // namespace ember::daemon
