#include "daemon/ctl_contacts.hpp"

#include "core/ascii.hpp"
#include "daemon/ctl_client.hpp"

#include <CLI/CLI.hpp>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <thread>

namespace ember::daemon::ctl {

namespace json = boost::json;

namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(200);

// "Mon 09:00-09:59 UTC" for an hour of the week (0 = Monday 00:00).
std::string hour_of_week_text(std::int64_t hour) {
    static constexpr std::array<const char*, 7> kDays{"Mon", "Tue", "Wed", "Thu",
                                                      "Fri", "Sat", "Sun"};
    return fmt::format("{} {:02}:00-{:02}:59 UTC", kDays.at(static_cast<std::size_t>(hour / 24)),
                       hour % 24, hour % 24);
}

std::vector<std::pair<std::string, std::string>> engagement_rows(const json::object& e) {
    std::vector<std::pair<std::string, std::string>> rows;
    rows.emplace_back("tier",
                      fmt::format("{} (priority {})", text_of(e, "tier"), text_of(e, "score")));
    rows.emplace_back("last delivery", text_of(e, "last_delivery"));
    rows.emplace_back("last open", text_of(e, "last_open"));
    rows.emplace_back("last click", text_of(e, "last_click"));
    rows.emplace_back("30 days",
                      fmt::format("{} delivered, {} opens, {} clicks", int_of(e, "delivered_30d"),
                                  int_of(e, "opens_30d"), int_of(e, "clicks_30d")));
    rows.emplace_back("90 days",
                      fmt::format("{} delivered, {} opens, {} clicks", int_of(e, "delivered_90d"),
                                  int_of(e, "opens_90d"), int_of(e, "clicks_90d")));
    const auto* best = e.if_contains("best_hour_of_week");
    rows.emplace_back("best hour",
                      best && !best->is_null()
                          ? fmt::format("{} ({} opens and clicks)",
                                        hour_of_week_text(int_of(e, "best_hour_of_week")),
                                        int_of(e, "history"))
                          : std::string("- (no history)"));
    return rows;
}

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

std::vector<std::string> words_of(const json::object& given, std::string_view key) {
    std::vector<std::string> out;
    const auto* v = given.if_contains(key);
    if (v == nullptr)
        return out;
    if (v->is_string())
        out.emplace_back(v->get_string());
    else if (v->is_array())
        for (const auto& w : v->get_array())
            if (w.is_string())
                out.emplace_back(w.get_string());
    return out;
}

std::variant<json::value, std::string> typed_value(std::string_view type, std::string_view text) {
    if (type == "string")
        return json::value(json::string(text));
    if (type == "number") {
        std::int64_t i = 0;
        if (auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), i);
            ec == std::errc() && p == text.data() + text.size())
            return json::value(i);
        double d = 0;
        if (auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
            ec == std::errc() && p == text.data() + text.size())
            return json::value(d);
        return fmt::format("\"{}\" is not a number", printable(text));
    }
    if (type == "bool") {
        const auto lower = core::ascii_lower(text);
        if (lower == "true" || lower == "yes" || lower == "1")
            return json::value(true);
        if (lower == "false" || lower == "no" || lower == "0")
            return json::value(false);
        return fmt::format("\"{}\" is not a bool (true/false, yes/no, 1/0)", printable(text));
    }
    if (type == "list") {
        json::array list;
        std::size_t at = 0;
        while (at <= text.size()) {
            const auto semi = std::min(text.find(';', at), text.size());
            if (semi > at)
                list.emplace_back(json::string(text.substr(at, semi - at)));
            at = semi + 1;
        }
        return json::value(std::move(list));
    }
    return fmt::format("unknown type \"{}\" (string, number, bool, list)", printable(type));
}

} // namespace

std::variant<Assignment, std::string> parse_assignment(std::string_view text) {
    const auto eq = text.find('=');
    if (eq == std::string_view::npos || eq == 0)
        return fmt::format("\"{}\" is not NAME=VALUE", printable(text));
    auto name = text.substr(0, eq);
    const auto value = text.substr(eq + 1);
    std::string_view type = "string";
    if (const auto colon = name.rfind(':'); colon != std::string_view::npos) {
        const auto suffix = core::ascii_lower(name.substr(colon + 1));
        if (suffix == "string" || suffix == "number" || suffix == "bool" || suffix == "list") {
            type = suffix == "string"   ? "string"
                   : suffix == "number" ? "number"
                   : suffix == "bool"   ? "bool"
                                        : "list";
            name = name.substr(0, colon);
        }
    }
    if (value.empty())
        return Assignment{std::string(name), nullptr};
    auto typed = typed_value(type, value);
    if (auto* why = std::get_if<std::string>(&typed))
        return fmt::format("{}: {}", printable(name), *why);
    return Assignment{std::string(name), std::move(std::get<json::value>(typed))};
}

json::object contacts_set_request(const json::object& given, std::string& error) {
    json::object request;
    if (const auto* a = given.if_contains("address"))
        request["address"] = *a;
    json::object attributes;
    for (const auto& word : words_of(given, "assignments")) {
        auto parsed = parse_assignment(word);
        if (auto* why = std::get_if<std::string>(&parsed)) {
            error = std::move(*why);
            return {};
        }
        auto& a = std::get<Assignment>(parsed);
        attributes[a.name] = std::move(a.value);
    }
    if (!attributes.empty())
        request["attributes"] = std::move(attributes);
    const auto tags = words_of(given, "tag");
    if (!tags.empty())
        request["add_tags"] = json::array(tags.begin(), tags.end());
    return request;
}

Printed format_contact(const json::value& result) {
    if (!result.is_object())
        return Printed{"", "emberctl: unexpected answer\n", kExitProtocol};
    const auto& c = result.get_object();
    std::vector<std::pair<std::string, std::string>> rows;
    rows.emplace_back("address", text_of(c, "address"));
    std::string tags;
    if (const auto* t = c.if_contains("tags"); t && t->is_array())
        for (const auto& tag : t->get_array())
            if (tag.is_string())
                tags += (tags.empty() ? "" : ", ") + printable(tag.get_string());
    rows.emplace_back("tags", tags.empty() ? "-" : tags);
    if (const auto* e = c.if_contains("engagement"); e && e->is_object())
        for (auto& row : engagement_rows(e->get_object()))
            rows.push_back(std::move(row));
    std::string out = key_values(rows);
    if (const auto* a = c.if_contains("attributes");
        a && a->is_object() && !a->get_object().empty()) {
        out += "attributes:\n";
        for (const auto& [name, value] : a->get_object())
            out += fmt::format("  {} = {}\n", printable(name), printable(json::serialize(value)));
    }
    return Printed{out, "", 0};
}

Printed format_contact_change(const json::value& result) {
    if (!result.is_object())
        return Printed{"", "emberctl: unexpected answer\n", kExitProtocol};
    const auto& o = result.get_object();
    if (o.contains("deleted"))
        return Printed{fmt::format("deleted {}\n", text_of(o, "deleted")), "", 0};
    return Printed{fmt::format("recorded {} for {} at {}\n", text_of(o, "event"),
                               text_of(o, "address"), text_of(o, "time")),
                   "", 0};
}

void contacts_address_options(CLI::App& command, VerbArgs&) {
    command.add_option("address", "the contact's address")->required();
}

void contacts_set_options(CLI::App& command, VerbArgs&) {
    command.add_option("address", "the contact's address")->required();
    command
        .add_option("assignments", "NAME[:TYPE]=VALUE (TYPE: string, number, bool, list); "
                                   "NAME= removes the attribute")
        ->expected(-1) // one or more (an option, not a flag, for given_options)
        ->take_all();
    command.add_option("--tag", "add this tag; repeatable")->take_all();
}

void contacts_event_options(CLI::App& command, VerbArgs&) {
    command.add_option("address", "the contact's address")->required();
    command.add_option("kind", "delivered, open or click")
        ->required()
        ->check(CLI::IsMember({"delivered", "open", "click"}));
    command.add_option("--at", "when, RFC 3339 (default: now)");
    command.add_option("--domain", "the sending domain (opens and clicks count in its histogram)");
}

void contacts_import_options(CLI::App& command, VerbArgs&) {
    command.add_option("file", "the CSV file (header row: address, tags, NAME[:TYPE] ...)")
        ->required();
    command.add_flag("--empty-deletes")->description("an empty cell removes the attribute");
}

void contacts_export_options(CLI::App& command, VerbArgs&) {
    command.add_option("file", "the CSV file to write (replaced when complete)")->required();
}

int run_contacts_set(const Invocation& invocation, std::ostream& out, std::ostream& err) {
    std::string error;
    const auto request = contacts_set_request(invocation.args, error);
    if (!error.empty()) {
        err << "emberctl: " << error << "\n";
        return kExitUsage;
    }
    const auto caller = caller_for(invocation, err);
    if (!caller)
        return kExitConfig;
    const auto call = (*caller)("contacts.set", request);
    if (call.status != AdminCall::Status::Ok)
        return call_failed(call, err);
    const auto printed = invocation.options.json ? Printed{pretty_json(call.result), "", 0}
                                                 : format_contact(call.result);
    out << printed.out;
    err << printed.err;
    return printed.exit_code;
}

namespace {

void show_progress(const json::object& job, bool tty, std::ostream& err) {
    const auto size = int_of(job, "size");
    const auto bytes = int_of(job, "bytes");
    std::string line =
        text_of(job, "kind") == "import"
            ? fmt::format("{} rows read, {} imported, {} skipped", int_of(job, "rows"),
                          int_of(job, "imported"), int_of(job, "skipped"))
            : fmt::format("{} bytes written", bytes);
    if (size > 0)
        line += fmt::format(" ({}%)", std::min<std::int64_t>(100, bytes * 100 / size));
    err << (tty ? "\r" : "") << line << (tty ? "" : "\n") << std::flush;
}

int finish_job(const json::object& job, bool json, std::ostream& out, std::ostream& err) {
    const bool import = text_of(job, "kind") == "import";
    if (const auto* errors = job.if_contains("errors"); errors && errors->is_array())
        for (const auto& e : errors->get_array())
            if (e.is_string())
                err << printable(e.get_string()) << "\n";
    const auto error_count = int_of(job, "error_count");
    const auto* shown = job.if_contains("errors");
    const auto listed =
        shown && shown->is_array() ? static_cast<std::int64_t>(shown->get_array().size()) : 0;
    if (error_count > listed)
        err << fmt::format("... and {} more bad rows\n", error_count - listed);
    const auto* ok = job.if_contains("ok");
    const bool succeeded = ok && ok->is_bool() && ok->get_bool();
    if (!succeeded)
        err << "emberctl: " << text_of(job, "error") << "\n";
    if (json)
        out << pretty_json(job);
    else if (import)
        out << fmt::format("imported {} contacts, skipped {} bad rows ({} rows read)\n",
                           int_of(job, "imported"), int_of(job, "skipped"), int_of(job, "rows"));
    else
        out << fmt::format("exported {} contacts to {}\n", int_of(job, "rows"),
                           text_of(job, "path"));
    return succeeded && error_count == 0 ? kExitOk : kExitDaemonError;
}

} // namespace

int run_contacts_job(const std::string& verb, const json::object& args, bool json,
                     const AdminCaller& call, std::ostream& out, std::ostream& err,
                     const std::function<void()>& wait) {
    const auto started = call(verb, args);
    if (started.status != AdminCall::Status::Ok)
        return call_failed(started, err);
    const auto* id =
        started.result.is_object() ? started.result.get_object().if_contains("job") : nullptr;
    if (id == nullptr || !(id->is_int64() || id->is_uint64())) {
        err << "emberctl: unexpected answer to " << verb << "\n";
        return kExitProtocol;
    }
    const bool tty = &err == &std::cerr && isatty(STDERR_FILENO) != 0;
    for (int polls = 0;; ++polls) {
        const auto state = call("contacts.job", json::object{{"job", *id}});
        if (state.status != AdminCall::Status::Ok)
            return call_failed(state, err);
        if (!state.result.is_object())
            return kExitProtocol;
        const auto& job = state.result.get_object();
        const auto* running = job.if_contains("running");
        if (running == nullptr || !running->is_bool() || !running->get_bool()) {
            if (tty && polls > 0)
                err << "\n";
            return finish_job(job, json, out, err);
        }
        if (tty || polls % 25 == 24) // a line every 5 s when stderr is a file
            show_progress(job, tty, err);
        wait();
    }
}

namespace {

std::string absolute(const std::string& file) {
    std::error_code ec;
    auto path = std::filesystem::absolute(file, ec);
    return ec ? file : path.lexically_normal().string();
}

int run_job(const Invocation& invocation, const std::string& verb, std::ostream& out,
            std::ostream& err) {
    const auto caller = caller_for(invocation, err);
    if (!caller)
        return kExitConfig;
    json::object args;
    const auto file = text_of(invocation.args, "file");
    args["path"] = absolute(file);
    if (verb == "contacts.import") {
        args["name"] = file;
        if (invocation.args.contains("empty_deletes"))
            args["empty_deletes"] = true;
    }
    return run_contacts_job(verb, args, invocation.options.json, *caller, out, err,
                            [] { std::this_thread::sleep_for(kPollInterval); });
}

} // namespace

int run_contacts_import(const Invocation& invocation, std::ostream& out, std::ostream& err) {
    return run_job(invocation, "contacts.import", out, err);
}

int run_contacts_export(const Invocation& invocation, std::ostream& out, std::ostream& err) {
    return run_job(invocation, "contacts.export", out, err);
}

} // namespace ember::daemon::ctl
