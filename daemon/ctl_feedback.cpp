#include "daemon/ctl_feedback.hpp"

#include "daemon/feedback_verbs.hpp"
#include "feedback/rates.hpp"
#include "feedback/suppression.hpp"

#include <CLI/CLI.hpp>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <ostream>
#include <sstream>

namespace ember::daemon::ctl {

namespace json = boost::json;

namespace {

// Each import request stays well under the admin socket's 64 KiB limit.
constexpr std::size_t kChunkBytes = 48 * 1024;
constexpr std::size_t kChunkEntries = 1000;
constexpr int kExportPage = 10000;

std::string text(const json::value& v, std::string_view key) {
    if (!v.is_object())
        return "-";
    const auto* field = v.get_object().if_contains(key);
    if (!field || field->is_null())
        return "-";
    if (field->is_string())
        return printable(field->get_string());
    return printable(json::serialize(*field));
}

const json::array* array_of(const json::value& v, std::string_view key) {
    if (!v.is_object())
        return nullptr;
    const auto* field = v.get_object().if_contains(key);
    return field && field->is_array() ? &field->get_array() : nullptr;
}

std::string reasons() {
    return "hard-bounce, soft-bounce, complaint, unsubscribe or manual";
}

// The daemon behind -s / -c / $EMBER_ADMIN_SOCKET, as run_daemon_verb finds it.
std::optional<AdminCaller> caller_for(const Invocation& invocation, std::ostream& err) {
    std::string error;
    const auto socket = resolve_socket(invocation.options, std::getenv(kSocketEnv), error);
    if (socket.empty()) {
        err << error << (error.ends_with('\n') ? "" : "\n");
        return std::nullopt;
    }
    return AdminCaller([socket](const std::string& verb, const json::object& args) {
        return call_admin(socket, verb, args, kTimeout);
    });
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::optional<std::string> read_input(const std::string& name, std::ostream& err) {
    if (name.empty() || name == "-") {
        std::ostringstream buffer;
        buffer << std::cin.rdbuf();
        return buffer.str();
    }
    std::ifstream in(name, std::ios::binary);
    if (!in) {
        err << "emberctl: " << name << ": cannot read\n";
        return std::nullopt;
    }
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// A scorecard back from format_scorecards_json's shape, for the text form.
feedback::Scorecard card_from_json(const json::value& v) {
    feedback::Scorecard card;
    card.domain = text(v, "domain");
    card.window = text(v, "window");
    if (const auto* counts = v.get_object().if_contains("counts"); counts && counts->is_object())
        for (const auto& [name, value] : counts->get_object())
            if (const auto c = feedback::parse_counter(name); c && value.is_number())
                card.counts[*c] = value.to_number<std::uint64_t>();
    const auto* rules = array_of(v, "rules");
    for (std::size_t i = 0; rules && i < rules->size(); ++i) {
        const auto& r = (*rules)[i];
        feedback::ScoreLine line;
        line.rule = text(r, "rule");
        line.measured_text = text(r, "measured_text");
        line.threshold_text = text(r, "threshold_text");
        line.why = text(r, "why");
        const auto result = text(r, "result");
        line.verdict = result == "pass"   ? feedback::Verdict::Pass
                       : result == "fail" ? feedback::Verdict::Fail
                                          : feedback::Verdict::NoData;
        card.lines.push_back(std::move(line));
    }
    return card;
}

} // namespace

// ---- formatters -------------------------------------------------------------

Printed format_suppress_change(const json::value& result) {
    if (text(result, "added") != "-")
        return Printed{fmt::format("suppressed {} ({}, {})\n", text(result, "added"),
                                   text(result, "scope"), text(result, "reason")),
                       "", kExitOk};
    return Printed{fmt::format("removed {} ({})\n", text(result, "removed"), text(result, "scope")),
                   "", kExitOk};
}

Printed format_suppress_list(const json::value& result) {
    Table table({"ADDRESS", "REASON", "SCOPE", "SINCE", "SOURCE"});
    const auto* entries = array_of(result, "entries");
    for (std::size_t i = 0; entries && i < entries->size(); ++i) {
        const auto& e = (*entries)[i];
        table.add_row({text(e, "address"), text(e, "reason"), text(e, "scope"), text(e, "time"),
                       truncate_text(text(e, "source"), kReplyColumns)});
    }
    std::string out = table.rows() == 0 ? std::string("no suppressed addresses\n") : table.render();
    const auto cursor = text(result, "next_cursor");
    if (cursor != "-" && !cursor.empty())
        out += "more: --cursor " + cursor + "\n";
    return Printed{std::move(out), "", kExitOk};
}

Printed format_suppress_check(const json::value& result) {
    const auto address = text(result, "address");
    const auto* entry = result.is_object() ? result.get_object().if_contains("entry") : nullptr;
    if (!entry || !entry->is_object())
        return Printed{address + ": not suppressed\n", "", kExitOk};
    std::string out = fmt::format("{}: suppressed: {} ({}) since {}\n  source: {}\n", address,
                                  text(*entry, "reason"), text(*entry, "scope"),
                                  text(*entry, "time"), text(*entry, "source"));
    return Printed{std::move(out), "", kExitOk};
}

Printed format_compliance(const json::value& result) {
    const auto* domains = array_of(result, "domains");
    if (!domains || domains->empty())
        return Printed{"no mail seen in the last 24 hours\n", "", kExitOk};
    std::vector<feedback::Scorecard> cards;
    for (const auto& d : *domains)
        if (d.is_object())
            cards.push_back(card_from_json(d));
    return Printed{feedback::format_scorecards_text(cards), "", kExitOk};
}

// ---- options ----------------------------------------------------------------

void suppress_add_options(CLI::App& command, VerbArgs&) {
    command.add_option("address", "the address to suppress")->required();
    const std::string reason_help = "why: " + reasons() + " (default manual)";
    command.add_option("--reason", reason_help);
    command.add_option("--scope", "a sending domain, or global (default)");
    command.add_option("--source", "a note kept with the entry (default emberctl)");
}

void suppress_remove_options(CLI::App& command, VerbArgs&) {
    command.add_option("address", "the address to mail again")->required();
    command.add_option("--scope", "only this scope's entry (a sending domain or global); "
                                  "default: every entry and the soft-bounce streak");
}

void suppress_list_options(CLI::App& command, VerbArgs&) {
    const std::string reason_help = "only entries of this reason: " + reasons();
    command.add_option("--reason", reason_help);
    command.add_option("--scope", "only this scope: a sending domain or global");
    command.add_option("--limit", "at most this many entries (default 100)")
        ->check(CLI::Range(1, 10000));
    command.add_option("--cursor", "continue after a previous page (its \"more:\" line)");
}

void suppress_check_options(CLI::App& command, VerbArgs&) {
    command.add_option("address", "the address to look up")->required();
    command.add_option("--domain", "the sending domain (default: global entries only)");
}

void suppress_import_options(CLI::App& command, VerbArgs&) {
    command.add_option("file", "CSV file: address,reason,scope,time,source (default: stdin)");
}

void suppress_export_options(CLI::App& command, VerbArgs&) {
    const std::string reason_help = "only entries of this reason: " + reasons();
    command.add_option("--reason", reason_help);
    command.add_option("--scope", "only this scope: a sending domain or global");
}

void compliance_options(CLI::App& command, VerbArgs&) {
    command.add_option("domain", "only this sending domain");
}

// ---- import and export ------------------------------------------------------

int suppress_import(const std::string& name, const std::string& csv, bool as_json,
                    const AdminCaller& call, std::ostream& out, std::ostream& err,
                    std::int64_t now) {
    auto parsed = feedback::parse_suppression_csv(csv, now, name);
    for (const auto& d : parsed.errors.sorted())
        err << core::format(d) << "\n";
    std::size_t imported = 0;
    json::array chunk;
    std::size_t bytes = 0;
    auto flush = [&]() -> int {
        if (chunk.empty())
            return kExitOk;
        auto answer = call("suppress.import", json::object{{"entries", std::move(chunk)}});
        chunk = json::array();
        bytes = 0;
        if (answer.status != AdminCall::Status::Ok)
            return call_failed(answer, err);
        if (const auto* n = answer.result.is_object()
                                ? answer.result.get_object().if_contains("imported")
                                : nullptr;
            n && n->is_number())
            imported += n->to_number<std::size_t>();
        return kExitOk;
    };
    for (const auto& entry : parsed.entries) {
        auto item = entry_json(entry);
        item.erase("time");
        bytes += json::serialize(item).size() + 1;
        chunk.push_back(std::move(item));
        if (bytes >= kChunkBytes || chunk.size() >= kChunkEntries)
            if (const int rc = flush(); rc != kExitOk)
                return rc;
    }
    if (const int rc = flush(); rc != kExitOk)
        return rc;
    const auto bad = parsed.errors.size();
    if (as_json)
        out << pretty_json(
            json::object{{"imported", imported}, {"rows", parsed.rows}, {"errors", bad}});
    else
        out << fmt::format("imported {} of {} rows{}\n", imported, parsed.rows,
                           bad == 0 ? std::string() : fmt::format(" ({} bad)", bad));
    return bad == 0 ? kExitOk : kExitDaemonError;
}

int suppress_export(const json::object& filter, bool as_json, const AdminCaller& call,
                    std::ostream& out, std::ostream& err) {
    json::array all;
    if (!as_json)
        out << feedback::kCsvHeader << "\n";
    std::string cursor;
    do {
        json::object args = filter;
        args["limit"] = kExportPage;
        if (!cursor.empty())
            args["cursor"] = cursor;
        auto answer = call("suppress.list", args);
        if (answer.status != AdminCall::Status::Ok)
            return call_failed(answer, err);
        const auto* entries = array_of(answer.result, "entries");
        for (std::size_t i = 0; entries && i < entries->size(); ++i) {
            std::string error;
            const auto entry = entry_from_json((*entries)[i], 0, error);
            if (!entry) {
                err << "emberctl: skipped an entry the daemon sent: " << error << "\n";
                continue;
            }
            if (as_json)
                all.push_back((*entries)[i]);
            else
                out << feedback::csv_line(*entry) << "\n";
        }
        const auto next = text(answer.result, "next_cursor");
        cursor = next == "-" ? std::string() : next;
    } while (!cursor.empty());
    if (as_json)
        out << pretty_json(all);
    return kExitOk;
}

int run_suppress_import(const Invocation& invocation, std::ostream& out, std::ostream& err) {
    const auto caller = caller_for(invocation, err);
    if (!caller)
        return kExitConfig;
    std::string name = "-";
    if (const auto* file = invocation.args.if_contains("file"); file && file->is_string())
        name = std::string(file->get_string());
    const auto csv = read_input(name, err);
    if (!csv)
        return 66; // EX_NOINPUT
    return suppress_import(name == "-" ? "stdin" : name, *csv, invocation.options.json, *caller,
                           out, err, now_ms());
}

int run_suppress_export(const Invocation& invocation, std::ostream& out, std::ostream& err) {
    const auto caller = caller_for(invocation, err);
    if (!caller)
        return kExitConfig;
    return suppress_export(invocation.args, invocation.options.json, *caller, out, err);
}

} // namespace ember::daemon::ctl
