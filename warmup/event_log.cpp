#include "warmup/event_log.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>

namespace ember::warmup {
namespace {

namespace json = boost::json;

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
        return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    });
    return out;
}

const json::value* first(const json::object& o, std::initializer_list<const char*> names) {
    for (const char* n : names) {
        if (const auto* v = o.if_contains(n))
            return v;
    }
    return nullptr;
}

std::string string_of(const json::object& o, std::initializer_list<const char*> names) {
    const auto* v = first(o, names);
    return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::string domain_of_address(std::string_view address) {
    if (!address.empty() && address.front() == '<')
        address.remove_prefix(1);
    if (!address.empty() && address.back() == '>')
        address.remove_suffix(1);
    const auto at = address.rfind('@');
    return lower(at == std::string_view::npos ? address : address.substr(at + 1));
}

std::optional<TimePoint> time_of(const json::value* v) {
    if (v == nullptr)
        return std::nullopt;
    if (v->is_string())
        return parse_time(v->as_string());
    double n = 0;
    if (v->is_int64())
        n = static_cast<double>(v->as_int64());
    else if (v->is_uint64())
        n = static_cast<double>(v->as_uint64());
    else if (v->is_double())
        n = v->as_double();
    else
        return std::nullopt;
    if (!std::isfinite(n) || n < 0)
        return std::nullopt;
    const double ms = n > 1e11 ? n : n * 1000.0;
    return TimePoint(std::chrono::milliseconds(std::llround(ms)));
}

std::optional<LoggedType> type_of(std::string_view t) {
    if (t == "delivered" || t == "delivery")
        return LoggedType::Delivered;
    if (t == "deferred" || t == "deferral")
        return LoggedType::Deferred;
    if (t == "bounced" || t == "bounce")
        return LoggedType::Bounced;
    if (t == "failed" || t == "failure")
        return LoggedType::Failed;
    if (t == "complained" || t == "complaint")
        return LoggedType::Complained;
    return std::nullopt;
}

// "421 4.7.28 text" -> code, enhanced, text (each part optional).
void split_reply(std::string_view reply, LoggedEvent& e) {
    const auto word = [&reply]() {
        const auto end = reply.find(' ');
        const auto w = reply.substr(0, end);
        reply = end == std::string_view::npos ? std::string_view() : reply.substr(end + 1);
        return w;
    };
    auto w = word();
    if (w.size() >= 3 &&
        std::all_of(w.begin(), w.begin() + 3, [](char c) { return c >= '0' && c <= '9'; })) {
        e.code = (w[0] - '0') * 100 + (w[1] - '0') * 10 + (w[2] - '0');
        w = word();
    }
    if (w.size() >= 5 && w[1] == '.' && w[0] >= '2' && w[0] <= '5') {
        e.enhanced = std::string(w);
        e.text = std::string(reply);
    } else {
        e.text = std::string(w) + (reply.empty() ? "" : " " + std::string(reply));
    }
}

void read_reply(const json::object& o, LoggedEvent& e) {
    if (const auto* r = o.if_contains("reply"); r != nullptr && r->is_string())
        split_reply(r->as_string(), e);
    if (const auto* c = o.if_contains("code")) {
        if (c->is_int64())
            e.code = static_cast<int>(c->as_int64());
        else if (c->is_string())
            e.code = std::atoi(std::string(c->as_string()).c_str());
    }
    if (const auto en = string_of(o, {"enhanced", "enhanced_code", "status"}); !en.empty())
        e.enhanced = en;
    if (const auto t = string_of(o, {"text", "reply_text"}); !t.empty())
        e.text = t;
}

// The event on one line, or why it was skipped.
std::optional<LoggedEvent> read_line(std::string_view line, std::string& why) {
    boost::system::error_code ec;
    const auto v = json::parse(line, ec);
    if (ec || !v.is_object()) {
        why = "not a JSON object";
        return std::nullopt;
    }
    const auto& o = v.as_object();
    LoggedEvent e;
    const auto t = time_of(first(o, {"time", "ts", "timestamp"}));
    const auto type = type_of(lower(string_of(o, {"type", "event"})));
    if (!t || !type) {
        why = !t ? "no readable time" : "no known type";
        return std::nullopt;
    }
    e.time = *t;
    e.type = *type;
    e.sending_domain = lower(string_of(o, {"sending_domain", "domain", "from_domain"}));
    if (e.sending_domain.empty())
        e.sending_domain = domain_of_address(string_of(o, {"sender", "mail_from"}));
    e.recipient_domain = lower(string_of(o, {"recipient_domain"}));
    if (e.recipient_domain.empty())
        e.recipient_domain = domain_of_address(string_of(o, {"recipient", "rcpt"}));
    e.mx_host = lower(string_of(o, {"mx", "mx_host", "remote_host"}));
    read_reply(o, e);
    const auto* hard = o.if_contains("hard");
    e.hard = hard != nullptr && hard->is_bool() ? hard->as_bool() : e.type == LoggedType::Bounced;
    if (e.sending_domain.empty()) {
        why = "no sending domain";
        return std::nullopt;
    }
    if (e.recipient_domain.empty() && e.type != LoggedType::Complained) {
        why = "no recipient domain";
        return std::nullopt;
    }
    return e;
}

} // namespace

EventLog parse_event_log(std::string_view text) {
    EventLog log;
    std::size_t number = 0;
    while (!text.empty()) {
        const auto end = text.find('\n');
        auto line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
        ++number;
        while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
            line.remove_suffix(1);
        if (line.empty() || line.front() == '#')
            continue;
        std::string why;
        if (auto e = read_line(line, why))
            log.events.push_back(std::move(*e));
        else
            log.skipped.push_back(fmt::format("line {}: {}", number, why));
    }
    std::stable_sort(log.events.begin(), log.events.end(),
                     [](const LoggedEvent& a, const LoggedEvent& b) { return a.time < b.time; });
    return log;
}

} // namespace ember::warmup
