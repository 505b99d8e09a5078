#include "daemon/ctl_format.hpp"

#include "warmup/values.hpp"

#include <boost/json/serialize.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <optional>

namespace ember::daemon::ctl {

namespace json = boost::json;

namespace {

// Code points, for column widths: UTF-8 continuation bytes take no column.
std::size_t display_width(std::string_view text) {
    return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
        return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    }));
}

const json::object& object_of(const json::value& value) {
    static const json::object empty;
    return value.is_object() ? value.get_object() : empty;
}

const json::array& array_at(const json::object& object, std::string_view key) {
    static const json::array empty;
    const auto* value = object.if_contains(key);
    return value && value->is_array() ? value->get_array() : empty;
}

const json::object& object_at(const json::object& object, std::string_view key) {
    static const json::object empty;
    const auto* value = object.if_contains(key);
    return value ? object_of(*value) : empty;
}

std::string scalar_text(const json::value& value) {
    switch (value.kind()) {
    case json::kind::string:
        return value.get_string().empty() ? "-" : printable(value.get_string());
    case json::kind::bool_:
        return value.get_bool() ? "yes" : "no";
    case json::kind::int64:
        return std::to_string(value.get_int64());
    case json::kind::uint64:
        return std::to_string(value.get_uint64());
    case json::kind::double_:
        return fmt::format("{}", value.get_double());
    case json::kind::null:
        return "-";
    default:
        return printable(json::serialize(value));
    }
}

// A field as text; "-" when missing, null or empty.
std::string cell(const json::object& object, std::string_view key) {
    const auto* value = object.if_contains(key);
    return value ? scalar_text(*value) : "-";
}

// The reverse-path; the null sender (RFC 5321 4.5.5, bounces) as "<>".
std::string sender_cell(const json::object& object) {
    const auto* value = object.if_contains("mail_from");
    if (value && value->is_string() && value->get_string().empty())
        return "<>";
    return cell(object, "mail_from");
}

// The raw string field; "" when missing or not a string.
std::string_view string_at(const json::object& object, std::string_view key) {
    const auto* value = object.if_contains(key);
    return value && value->is_string() ? std::string_view(value->get_string()) : std::string_view();
}

std::int64_t integer_at(const json::object& object, std::string_view key) {
    const auto* value = object.if_contains(key);
    if (value && value->is_int64())
        return value->get_int64();
    if (value && value->is_uint64())
        return static_cast<std::int64_t>(value->get_uint64());
    return 0;
}

constexpr std::array kStateNames{"queued", "deferred", "delivered", "failed", "suppressed"};

void pretty(const json::value& value, std::string& out, std::size_t indent) {
    const std::string pad(indent + 2, ' ');
    if (value.is_object() && !value.get_object().empty()) {
        out += "{\n";
        bool first = true;
        for (const auto& entry : value.get_object()) {
            out += first ? "" : ",\n";
            first = false;
            out += pad + json::serialize(json::value(entry.key())) + ": ";
            pretty(entry.value(), out, indent + 2);
        }
        out += "\n" + std::string(indent, ' ') + "}";
    } else if (value.is_array() && !value.get_array().empty()) {
        out += "[\n";
        bool first = true;
        for (const auto& element : value.get_array()) {
            out += first ? "" : ",\n";
            first = false;
            out += pad;
            pretty(element, out, indent + 2);
        }
        out += "\n" + std::string(indent, ' ') + "]";
    } else {
        out += json::serialize(value);
    }
}

// printable() per line, keeping the line ends; ends in a newline.
std::string printable_lines(std::string_view text) {
    std::string out;
    while (!text.empty()) {
        const auto eol = text.find('\n');
        out += printable(text.substr(0, eol)) + "\n";
        text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    }
    return out;
}

} // namespace

Table::Table(std::vector<std::string> headers)
    : headers_(std::move(headers)), right_(headers_.size(), false) {}

void Table::add_row(std::vector<std::string> cells) {
    cells.resize(headers_.size());
    rows_.push_back(std::move(cells));
}

void Table::align_right(std::size_t column) {
    if (column < right_.size())
        right_[column] = true;
}

std::string Table::render() const {
    std::vector<std::size_t> widths(headers_.size());
    for (std::size_t c = 0; c < headers_.size(); ++c) {
        widths[c] = display_width(headers_[c]);
        for (const auto& row : rows_)
            widths[c] = std::max(widths[c], display_width(row[c]));
    }
    std::string out;
    const auto line = [&](const std::vector<std::string>& cells) {
        std::string text;
        for (std::size_t c = 0; c < cells.size(); ++c) {
            const std::string padding(widths[c] - display_width(cells[c]), ' ');
            const bool last = c + 1 == cells.size();
            text += right_[c] ? padding + cells[c] : cells[c] + (last ? "" : padding);
            text += last ? "" : "  ";
        }
        while (!text.empty() && text.back() == ' ')
            text.pop_back();
        out += text + "\n";
    };
    line(headers_);
    for (const auto& row : rows_)
        line(row);
    return out;
}

std::string key_values(const std::vector<std::pair<std::string, std::string>>& rows) {
    std::size_t width = 0;
    for (const auto& [key, value] : rows)
        width = std::max(width, display_width(key) + 1);
    std::string out;
    for (const auto& [key, value] : rows)
        out += fmt::format("{:<{}} {}\n", key + ":", width, value);
    return out;
}

std::string pretty_json(const json::value& value) {
    std::string out;
    pretty(value, out, 0);
    return out + "\n";
}

std::string format_uptime(std::int64_t seconds) {
    if (seconds <= 0)
        return "0s";
    constexpr std::array<std::pair<std::int64_t, char>, 4> kUnits{
        {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}}};
    std::string out;
    for (const auto& [size, unit] : kUnits) {
        if (seconds >= size) {
            out += fmt::format("{}{}{}", out.empty() ? "" : " ", seconds / size, unit);
            seconds %= size;
        }
    }
    return out;
}

std::string printable(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        const auto next = i + 1 < text.size() ? static_cast<unsigned char>(text[i + 1]) : 0;
        if (c < 0x20 || c == 0x7F) {
            out += '?';
        } else if (c == 0xC2 && next >= 0x80 && next <= 0x9F) { // U+0080..U+009F
            out += '?';
            ++i;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string text_of(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || v->is_null())
        return "-";
    if (v->is_string())
        return printable(v->get_string());
    return printable(json::serialize(*v));
}

std::int64_t int_of(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr)
        return 0;
    if (v->is_int64())
        return v->get_int64();
    if (v->is_uint64())
        return static_cast<std::int64_t>(v->get_uint64());
    return 0;
}

std::uint64_t count_of(const json::object& o, std::string_view key) {
    const auto n = int_of(o, key);
    return n > 0 ? static_cast<std::uint64_t>(n) : 0;
}

Printed format_status(const json::value& result) {
    const auto& status = object_of(result);
    std::string out = key_values({
        {"version", cell(status, "version")},
        {"pid", cell(status, "pid")},
        {"uptime", format_uptime(integer_at(status, "uptime_s"))},
        {"hostname", cell(status, "hostname")},
        {"sessions active", cell(status, "sessions_active")},
    });
    Table listeners({"LISTENER", "MODE", "TLS", "AUTH"});
    for (const auto& entry : array_at(status, "listeners")) {
        const auto& l = object_of(entry);
        listeners.add_row({cell(l, "address"), cell(l, "mode"), cell(l, "tls"), cell(l, "auth")});
    }
    if (listeners.rows() > 0)
        out += "\n" + listeners.render();
    Table queue({"STATE", "RECIPIENTS"});
    queue.align_right(1);
    for (const auto& entry : object_at(status, "queue"))
        queue.add_row({printable(entry.key()), scalar_text(entry.value())});
    if (queue.rows() > 0)
        out += "\n" + queue.render();
    return {out, "", 0};
}

Printed format_reload(const json::value& result) {
    const auto& reload = object_of(result);
    const auto* reloaded = reload.if_contains("reloaded");
    const bool ok = reloaded && reloaded->is_bool() && reloaded->get_bool();
    Printed printed;
    printed.exit_code = ok ? 0 : 1;
    if (ok)
        printed.out = "configuration reloaded\n";
    else
        printed.err = "configuration not reloaded; the daemon keeps its current configuration\n";
    for (const auto& error : array_at(reload, "errors"))
        printed.err += scalar_text(error) + "\n";
    return printed;
}

Printed format_queue_summary(const json::value& result) {
    const auto& summary = object_of(result);
    const auto& recipients = object_at(summary, "recipients");
    std::vector<std::pair<std::string, std::string>> totals{
        {"messages", cell(summary, "messages")}};
    for (const char* state : kStateNames)
        totals.emplace_back(state, cell(recipients, state));
    std::string out = key_values(totals);

    std::vector<std::string> headers{"DOMAIN"};
    for (const char* state : kStateNames) {
        std::string header(state);
        std::transform(header.begin(), header.end(), header.begin(),
                       [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
        headers.push_back(std::move(header));
    }
    headers.emplace_back("TOTAL");
    Table domains(headers);
    for (std::size_t c = 1; c < headers.size(); ++c)
        domains.align_right(c);
    for (const auto& entry : array_at(summary, "domains")) {
        const auto& row = object_of(entry);
        std::vector<std::string> cells{cell(row, "domain")};
        for (const char* state : kStateNames)
            cells.push_back(cell(row, state));
        cells.push_back(cell(row, "total"));
        domains.add_row(std::move(cells));
    }
    if (domains.rows() > 0)
        out += "\n" + domains.render();
    return {out, "", 0};
}

Printed format_queue_list(const json::value& result) {
    const auto& list = object_of(result);
    const auto& messages = array_at(list, "messages");
    Table table({"ID", "RECEIVED", "SIZE", "SENDER", "STATE", "RECIPIENT"});
    table.align_right(2);
    for (const auto& entry : messages) {
        const auto& message = object_of(entry);
        std::vector<std::string> first{cell(message, "id"), cell(message, "received_at"),
                                       cell(message, "size"), sender_cell(message)};
        const auto& recipients = array_at(message, "recipients");
        if (recipients.empty())
            table.add_row(first);
        for (std::size_t i = 0; i < recipients.size(); ++i) {
            const auto& r = object_of(recipients[i]);
            // Later recipients of a message leave the message columns blank.
            auto row = i == 0 ? first : std::vector<std::string>(4);
            row.push_back(cell(r, "state"));
            row.push_back(cell(r, "address"));
            table.add_row(std::move(row));
        }
    }
    Printed printed;
    printed.out = messages.empty() ? "no matching messages\n" : table.render();
    const auto* truncated = list.if_contains("truncated");
    if (truncated && truncated->is_bool() && truncated->get_bool())
        printed.err =
            fmt::format("showing the first {} messages; use --limit for more\n", messages.size());
    return printed;
}

namespace {

std::string client_text(const json::object& submission) {
    std::string out = cell(submission, "client_ip");
    if (const auto helo = cell(submission, "helo"); helo != "-")
        out += " (helo " + helo + ")";
    return out;
}

std::string recipients_table(const json::array& recipients) {
    Table table({"RECIPIENT", "STATE", "ATTEMPTS", "NEXT ATTEMPT", "UPDATED", "LAST REPLY"});
    table.align_right(2);
    for (const auto& entry : recipients) {
        const auto& r = object_of(entry);
        table.add_row({cell(r, "address"), cell(r, "state"), cell(r, "attempts"),
                       cell(r, "next_attempt"), cell(r, "updated"), cell(r, "last_reply")});
    }
    return table.render();
}

} // namespace

Printed format_queue_show(const json::value& result) {
    const auto& show = object_of(result);
    const auto& envelope = object_at(show, "envelope");
    const auto& submission = object_at(show, "submission");
    std::string out = key_values({
        {"id", cell(show, "id")},
        {"size", cell(show, "size")},
        {"sender", sender_cell(envelope)},
        {"body", cell(envelope, "body")},
        {"smtputf8", cell(envelope, "smtputf8")},
        {"dsn ret", cell(envelope, "ret")},
        {"dsn envid", cell(envelope, "envid")},
        {"received", cell(submission, "received_at")},
        {"client", client_text(submission)},
        {"auth user", cell(submission, "auth_user")},
        {"tls", cell(submission, "tls")},
        {"listener", cell(submission, "listener")},
    });
    out += "\n" + recipients_table(array_at(show, "recipients"));
    const auto& headers = array_at(show, "headers");
    if (!headers.empty())
        out += "\n";
    for (const auto& entry : headers) {
        const auto& field = object_of(entry);
        out += cell(field, "name") + ": " + printable(string_at(field, "value")) + "\n";
    }
    const auto* truncated = show.if_contains("headers_truncated");
    if (truncated && truncated->is_bool() && truncated->get_bool())
        out += "(more header fields not shown)\n";
    return {out, "", 0};
}

Printed format_queue_delete(const json::value& result) {
    return {"deleted " + cell(object_of(result), "deleted") + "\n", "", 0};
}

namespace {

// "1 recipient", "3 recipients".
std::string count_of(std::int64_t n, std::string_view noun) {
    return fmt::format("{} {}{}", n, noun, n == 1 ? "" : "s");
}

} // namespace

std::string truncate_text(std::string_view text, std::size_t columns) {
    if (display_width(text) <= columns)
        return std::string(text);
    const std::size_t keep = columns > 3 ? columns - 3 : 0;
    std::size_t points = 0;
    std::size_t end = 0;
    for (; end < text.size(); ++end) {
        const bool starts_point = (static_cast<unsigned char>(text[end]) & 0xC0) != 0x80;
        if (starts_point && points++ == keep)
            break;
    }
    return std::string(text.substr(0, end)) + "...";
}

Printed format_queue_retry(const json::value& result) {
    const auto& retry = object_of(result);
    const auto changed = integer_at(retry, "changed");
    std::string out = "rescheduled " + count_of(changed, "recipient");
    if (retry.contains("messages"))
        out += " of " + count_of(integer_at(retry, "messages"), "message");
    out += changed == 0 ? " (none pending outside a delivery in progress)\n"
                        : " for immediate delivery\n";
    return {out, "", 0};
}

Printed format_queue_bounce(const json::value& result) {
    const auto& bounce = object_of(result);
    return {fmt::format("bounced {} of {}\n", count_of(integer_at(bounce, "bounced"), "recipient"),
                        cell(bounce, "id")),
            "", 0};
}

Printed format_domains(const json::value& result) {
    const auto& domains = array_at(object_of(result), "domains");
    if (domains.empty())
        return {"no destinations with queued mail or recent activity\n", "", 0};
    Table table(
        {"DOMAIN", "QUEUED", "DEFERRED", "IN FLIGHT", "CONNECTIONS", "LAST REPLY", "LAST TIME"});
    for (std::size_t c = 1; c <= 4; ++c)
        table.align_right(c);
    for (const auto& entry : domains) {
        const auto& d = object_of(entry);
        table.add_row({cell(d, "domain"), cell(d, "queued"), cell(d, "deferred"),
                       cell(d, "in_flight"), cell(d, "connections"),
                       truncate_text(cell(d, "last_reply"), kReplyColumns), cell(d, "last_time")});
    }
    return {table.render(), "", 0};
}

Printed format_dkim_keygen(const json::value& result) {
    const auto& key = object_of(result);
    std::string details = cell(key, "algorithm");
    if (const auto bits = integer_at(key, "bits"); bits > 0)
        details += fmt::format(", {} bits", bits);
    std::string out =
        fmt::format("wrote the private key {} ({}, mode 0600)\n\n", cell(key, "path"), details);
    out += fmt::format("publish TXT at {}:\n{}\n\n", cell(key, "dns_name"), cell(key, "record"));
    out += fmt::format("zone file line:\n{}\n\n", cell(key, "zone_line"));
    out += "add to ember.toml:\n" + printable_lines(string_at(key, "config"));
    return {out, "", 0};
}

namespace {

std::string_view status_word(std::string_view status) {
    if (status == "ok")
        return "OK";
    if (status == "temp")
        return "TEMP";
    return "FAIL";
}

} // namespace

Printed format_check_domain(const json::value& result) {
    const auto& report = object_of(result);
    std::string out;
    for (const auto& entry : array_at(report, "checks")) {
        const auto& check = object_of(entry);
        out += fmt::format("{:<4}  {:<5}  {}\n", status_word(string_at(check, "status")),
                           cell(check, "check"), cell(check, "detail"));
        const auto& fix = object_at(check, "fix");
        if (!fix.empty())
            out += fmt::format("{:13}publish {} at {}: {}\n", "", cell(fix, "type"),
                               cell(fix, "name"), cell(fix, "value"));
        if (const auto note = string_at(check, "note"); !note.empty())
            out += fmt::format("{:13}{}\n", "", printable(note));
    }
    out += cell(report, "verdict") + "\n";
    return {out, "", 0};
}

// ---- warm-up ----

namespace {

std::optional<double> number_at(const json::object& object, std::string_view key) {
    const auto* value = object.if_contains(key);
    if (!value)
        return std::nullopt;
    if (value->is_double())
        return value->get_double();
    if (value->is_int64())
        return static_cast<double>(value->get_int64());
    if (value->is_uint64())
        return static_cast<double>(value->get_uint64());
    return std::nullopt;
}

std::string warmup_key_text(const json::object& key) {
    std::string out = cell(key, "sending_domain") + "/" + cell(key, "provider");
    if (const auto source = string_at(key, "source"); !source.empty())
        out += "@" + printable(source);
    return out;
}

// A provider limit: 0 is no limit.
std::string limit_cell(const json::object& object, std::string_view key) {
    const auto n = integer_at(object, key);
    return n > 0 ? std::to_string(n) : "unlimited";
}

std::string ramp_day_cell(const json::object& row) {
    const auto day = integer_at(row, "ramp_day");
    return day > 0 ? std::to_string(day) : "-";
}

std::string rate_cell(const json::object& row) {
    const auto rate = number_at(row, "rate_per_second");
    return rate ? warmup::format_rate_per_second(*rate) : "-";
}

std::string percent_cell(const json::object& object, std::string_view key) {
    const auto rate = number_at(object, key);
    return rate ? warmup::format_percent(*rate) : "-";
}

// "guardrails news.example.com over 24h: bounces 0% deferrals 50% complaints 0% (2 attempts,
// too few to judge)"
std::string guardrail_line(const json::object& row) {
    const auto& g = object_at(row, "guardrails");
    const auto attempts =
        integer_at(g, "delivered") + integer_at(g, "deferred") + integer_at(g, "failed");
    const auto* judged = g.if_contains("judged");
    const bool enough = judged && judged->is_bool() && judged->get_bool();
    return fmt::format("guardrails {} over {}h: bounces {} deferrals {} complaints {} ({} "
                       "attempts{})\n",
                       cell(row, "sending_domain"), integer_at(g, "window_hours"),
                       percent_cell(g, "bounce_rate"), percent_cell(g, "deferral_rate"),
                       percent_cell(g, "complaint_rate"), attempts,
                       enough ? "" : ", too few to judge");
}

} // namespace

Printed format_warmup_status(const json::value& result) {
    const auto& status = object_of(result);
    std::string out;
    const auto* enabled = status.if_contains("enabled");
    if (enabled && enabled->is_bool() && !enabled->get_bool())
        out += "warm-up is off ([warmup] file is empty): nothing is throttled\n";
    if (integer_at(status, "clock_offset_s") != 0)
        out += fmt::format("warm-up clock: {} (advanced by {})\n", cell(status, "now"),
                           format_uptime(integer_at(status, "clock_offset_s")));
    const auto& keys = array_at(status, "keys");
    if (keys.empty())
        return {out + "no sending domain is warming up or has sent yet\n", "", 0};
    Table table({"DOMAIN", "PROVIDER", "DAY", "SENT/CAP", "RATE", "STATE"});
    table.align_right(2);
    table.align_right(3);
    table.align_right(4);
    std::string guardrails;
    std::string last_domain;
    for (const auto& entry : keys) {
        const auto& row = object_of(entry);
        auto domain = cell(row, "sending_domain");
        if (const auto source = string_at(row, "source"); !source.empty())
            domain += "@" + printable(source);
        table.add_row({domain, cell(row, "provider"), ramp_day_cell(row),
                       cell(row, "sent_today") + "/" + cell(row, "cap"), rate_cell(row),
                       cell(row, "state")});
        if (cell(row, "sending_domain") != last_domain) // the domain's guardrails once
            guardrails += guardrail_line(row);
        last_domain = cell(row, "sending_domain");
    }
    return {out + table.render() + guardrails, "", 0};
}

Printed format_warmup_explain(const json::value& result) {
    const auto& e = object_of(result);
    const auto& status = object_at(e, "status");
    const auto& admission = object_at(e, "admission");
    const auto* allowed = admission.if_contains("allowed");
    const bool goes = allowed && allowed->is_bool() && allowed->get_bool();
    const std::string verdict =
        goes ? "may go now"
             : fmt::format("waits ({}) until {}: {}", cell(admission, "reason"),
                           cell(admission, "until"), cell(admission, "detail"));
    std::vector<std::pair<std::string, std::string>> rows{
        {"key", warmup_key_text(object_at(e, "key"))},
        {"recipient domain", cell(e, "recipient_domain")},
        {"mx host", cell(e, "mx_host")},
        {"provider", cell(e, "provider_reason")},
        {"sender", cell(e, "sender_reason")},
        {"ramp day", ramp_day_cell(status)},
        {"sent today", cell(status, "sent_today") + "/" + cell(status, "cap")},
        {"rate", rate_cell(status) + " (configured " + cell(status, "configured_rate") + ")"},
        {"state", cell(status, "state")},
        {"connections",
         fmt::format("{} at once, {} messages each", limit_cell(e, "max_connections"),
                     limit_cell(e, "max_messages_per_connection"))},
        {"now", verdict},
    };
    std::string out = key_values(rows);
    const auto& rules = array_at(e, "rules");
    out += rules.empty() ? "rules: none\n" : "rules:\n";
    for (const auto& rule : rules)
        out += "  " + scalar_text(rule) + "\n";
    return {out, "", 0};
}

Printed format_warmup_message(const json::value& result) {
    return {cell(object_of(result), "message") + "\n", "", 0};
}

Printed format_warmup_advance(const json::value& result) {
    const auto& a = object_of(result);
    return {fmt::format("warm-up clock now {} (advanced by {}); {} pending recipient(s) due now\n",
                        cell(a, "now"), format_uptime(integer_at(a, "clock_offset_s")),
                        cell(a, "rescheduled")),
            "", 0};
}

} // namespace ember::daemon::ctl
