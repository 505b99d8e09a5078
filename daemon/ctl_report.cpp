#include "daemon/ctl_report.hpp"

#include "core/units.hpp"
#include "daemon/ctl_client.hpp"
#include "personalize/time_text.hpp"

#include <CLI/CLI.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ostream>
#include <sstream>
#include <vector>

namespace ember::daemon::ctl {

namespace json = boost::json;

namespace {

const json::value* rate_of(const json::object& o, std::string_view name) {
    const auto* rates = o.if_contains("rates");
    if (rates == nullptr || !rates->is_object())
        return nullptr;
    return rates->get_object().if_contains(name);
}

// "userunknown 8, mailboxfull 3": the largest first, then by name.
std::string reasons_text(const json::object& o) {
    const auto* r = o.if_contains("bounce_reasons");
    if (r == nullptr || !r->is_object())
        return {};
    std::vector<std::pair<std::uint64_t, std::string>> rows;
    for (const auto& [name, value] : r->get_object())
        rows.emplace_back(count_of(r->get_object(), name), printable(name));
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    std::string out;
    for (const auto& [n, name] : rows)
        out += fmt::format("{}{} {}", out.empty() ? "" : ", ", name, n);
    return out;
}

std::string bounced_text(const json::object& o) {
    const auto bounced = count_of(o, "bounced");
    std::string out = fmt::format("{} ({})", bounced, percent_text(rate_of(o, "bounce")));
    if (bounced == 0)
        return out;
    return out + fmt::format(": {}; {} hard, {} soft", reasons_text(o), count_of(o, "hard_bounces"),
                             count_of(o, "soft_bounces"));
}

std::string engagement_text(const json::object& o, std::string_view kind, std::string_view rate) {
    return fmt::format("{} unique ({}), {} in all; {} by machines",
                       count_of(o, fmt::format("unique_{}", kind)), percent_text(rate_of(o, rate)),
                       count_of(o, kind), count_of(o, fmt::format("machine_{}", kind)));
}

std::string campaign_block(const json::object& c) {
    std::vector<std::pair<std::string, std::string>> rows{
        {"days", fmt::format("{} to {} (UTC)", text_of(c, "first_day"), text_of(c, "last_day"))},
        {"delivered", std::to_string(count_of(c, "delivered"))},
        {"bounced", bounced_text(c)},
        {"deferred", std::to_string(count_of(c, "deferred"))},
        {"complaints",
         fmt::format("{} ({})", count_of(c, "complaints"), percent_text(rate_of(c, "complaint")))},
        {"unsubscribes", fmt::format("{} ({})", count_of(c, "unsubscribes"),
                                     percent_text(rate_of(c, "unsubscribe")))},
        {"suppressed", std::to_string(count_of(c, "suppressed"))},
        {"opens", engagement_text(c, "opens", "open")},
        {"clicks", engagement_text(c, "clicks", "click")},
    };
    std::string out = fmt::format("campaign {}\n", text_of(c, "campaign"));
    std::istringstream lines(key_values(rows));
    for (std::string line; std::getline(lines, line);)
        out += "  " + line + "\n";
    return out;
}

const json::value* lift_of(const json::object& v, std::string_view name) {
    const auto* lift = v.if_contains("lift");
    if (lift == nullptr || !lift->is_object())
        return nullptr;
    return lift->get_object().if_contains(name);
}

std::string variants_block(const json::object& c) {
    const auto* variants = c.if_contains("variants");
    if (variants == nullptr || !variants->is_array() || variants->get_array().empty())
        return {};
    const auto control = text_of(c, "control");
    Table table({"VARIANT", "DELIVERED", "BOUNCED", "COMPLAINTS", "UNSUBSCRIBES", "OPENS",
                 "OPEN RATE", "OPEN LIFT", "CLICKS", "CLICK RATE", "CLICK LIFT"});
    for (std::size_t i = 1; i < 11; ++i)
        table.align_right(i);
    std::string reasons;
    for (const auto& value : variants->get_array()) {
        if (!value.is_object())
            continue;
        const auto& v = value.get_object();
        const auto name = text_of(v, "variant");
        const bool is_control = name == control;
        table.add_row(
            {is_control ? name + " (control)" : name, std::to_string(count_of(v, "delivered")),
             std::to_string(count_of(v, "bounced")), std::to_string(count_of(v, "complaints")),
             std::to_string(count_of(v, "unsubscribes")),
             std::to_string(count_of(v, "unique_opens")), percent_text(rate_of(v, "open")),
             is_control ? "-" : percent_text(lift_of(v, "open_rate"), true),
             std::to_string(count_of(v, "unique_clicks")), percent_text(rate_of(v, "click")),
             is_control ? "-" : percent_text(lift_of(v, "click_rate"), true)});
        if (count_of(v, "bounced") > 0)
            reasons += fmt::format("  bounced in {}: {}\n", name, reasons_text(v));
    }
    std::string out = "\n";
    std::istringstream lines(table.render());
    for (std::string line; std::getline(lines, line);)
        out += "  " + line + "\n";
    return out + reasons;
}

} // namespace

std::variant<std::int64_t, std::string> parse_since(std::string_view text, std::int64_t now_ms) {
    if (const auto d = core::parse_duration(text))
        return now_ms - d->count();
    if (const auto t = personalize::parse_rfc3339(text))
        return *t;
    // RFC 3339 full-date: the day from its first instant, UTC.
    if (text.size() == 10)
        if (const auto t = personalize::parse_rfc3339(fmt::format("{}T00:00:00Z", text)))
            return *t;
    return fmt::format("--since: \"{}\" is neither an RFC 3339 date or date-time nor a "
                       "duration like 7d",
                       printable(text));
}

json::object report_request(const json::object& given, std::int64_t now_ms, std::string& error) {
    json::object request;
    if (const auto* c = given.if_contains("campaign"))
        request["campaign"] = *c;
    if (const auto* s = given.if_contains("since"); s && s->is_string()) {
        auto since = parse_since(s->get_string(), now_ms);
        if (auto* why = std::get_if<std::string>(&since)) {
            error = std::move(*why);
            return {};
        }
        request["since"] = std::max<std::int64_t>(0, std::get<std::int64_t>(since));
    }
    return request;
}

std::string percent_text(const json::value* rate, bool sign) {
    if (rate == nullptr || !rate->is_number())
        return "-";
    const double pct = rate->to_number<double>() * 100.0;
    return sign ? fmt::format("{:+.2f} %", pct) : fmt::format("{:.2f} %", pct);
}

Printed format_report(const json::value& result) {
    const auto* campaigns =
        result.is_object() ? result.get_object().if_contains("campaigns") : nullptr;
    if (campaigns == nullptr || !campaigns->is_array())
        return Printed{"", "emberctl: unexpected answer\n", kExitProtocol};
    const auto& doc = result.get_object();
    if (campaigns->get_array().empty()) {
        const auto* since = doc.if_contains("since");
        return Printed{since ? fmt::format("no campaign events since {}\n", text_of(doc, "since"))
                             : std::string("no campaign events\n"),
                       "", kExitOk};
    }
    std::string out;
    for (const auto& c : campaigns->get_array()) {
        if (!c.is_object())
            continue;
        out += (out.empty() ? "" : "\n") + campaign_block(c.get_object()) +
               variants_block(c.get_object());
    }
    return Printed{out, "", kExitOk};
}

void report_options(CLI::App& command, VerbArgs&) {
    command.add_option("--campaign", "only this campaign (X-Ember-Campaign)");
    command.add_option("--since", "from the UTC day containing T: RFC 3339 date or date-time, "
                                  "or a duration back from now (7d)");
}

int run_report(const Invocation& invocation, std::ostream& out, std::ostream& err) {
    using namespace std::chrono;
    const auto now = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
    std::string error;
    const auto request = report_request(invocation.args, now, error);
    if (!error.empty()) {
        err << "emberctl: " << error << "\n";
        return kExitUsage;
    }
    const auto socket = resolve_socket(invocation.options, std::getenv(kSocketEnv), error);
    if (socket.empty()) {
        err << error << (error.ends_with('\n') ? "" : "\n");
        return kExitConfig;
    }
    const auto call = call_admin(socket, "report", request, kTimeout);
    if (call.status != AdminCall::Status::Ok)
        return call_failed(call, err);
    const auto printed = invocation.options.json ? Printed{pretty_json(call.result), "", kExitOk}
                                                 : format_report(call.result);
    out << printed.out;
    err << printed.err;
    return printed.exit_code;
}

} // namespace ember::daemon::ctl
