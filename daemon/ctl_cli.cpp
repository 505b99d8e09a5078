#include "daemon/ctl_cli.hpp"

#include "core/diagnostics.hpp"
#include "daemon/config.hpp"
#include "daemon/ctl_ab.hpp"
#include "daemon/ctl_api.hpp"
#include "daemon/ctl_client.hpp"
#include "daemon/ctl_contacts.hpp"
#include "daemon/ctl_feedback.hpp"
#include "daemon/ctl_offline.hpp"
#include "daemon/ctl_report.hpp"
#include "daemon/ctl_warmup.hpp"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <ostream>
#include <sstream>

namespace ember::daemon::ctl {

namespace json = boost::json;

namespace {

// --- option declarations and requests, one function per verb ---

void no_options(CLI::App&, VerbArgs&) {}

json::object no_args(const VerbArgs&) {
    return {};
}

void list_options(CLI::App& command, VerbArgs& args) {
    command.add_option("--domain", args.domain, "only messages with a recipient at this domain");
    command.add_option("--state", args.state, "only messages with a recipient in this state")
        ->check(CLI::IsMember({"queued", "deferred", "delivered", "failed", "suppressed"}));
    command.add_option("--limit", args.limit, "at most this many messages (default 100)")
        ->check(CLI::Range(1, 10000));
}

json::object list_args(const VerbArgs& args) {
    json::object request;
    if (!args.domain.empty())
        request["domain"] = args.domain;
    if (!args.state.empty())
        request["state"] = args.state;
    if (args.limit > 0)
        request["limit"] = args.limit;
    return request;
}

void id_option(CLI::App& command, VerbArgs& args) {
    command.add_option("id", args.id, "queue id")->required();
}

json::object id_args(const VerbArgs& args) {
    return json::object{{"id", args.id}};
}

// --- verbs whose arguments are their options (Verb::request is null) ---
//
// Their options bind to nothing: after parsing, every option given becomes
// one argument named by its long name ("--dns" -> "dns", "--dry-run" ->
// "dry_run") or positional name: a flag as true, an option as its string,
// a repeated option as an array of strings; the words a verb that allows
// extras did not recognise become "words". So a verb with new options needs
// no new VerbArgs member.

void retry_options(CLI::App& command, VerbArgs&) {
    auto* id = command.add_option("id", "queue id: the pending recipients of this message");
    auto* domain = command.add_option("--domain", "every pending recipient at this destination");
    auto* all = command.add_flag("--all")->description("every pending recipient in the queue");
    id->excludes(domain)->excludes(all);
    domain->excludes(all);
    // Never guess a default: a bare `queue retry` must not mean "everything".
    command.callback([id, domain, all] {
        if (id->count() + domain->count() + all->count() == 0)
            throw CLI::RequiredError("one of ID, --domain or --all");
    });
}

void keygen_options(CLI::App& command, VerbArgs&) {
    command.add_option("--domain", "the signing domain (d=)")->required();
    command
        .add_option("--selector", "the selector (s=): the key's DNS name is "
                                  "SELECTOR._domainkey.DOMAIN")
        ->required();
    command.add_option("--algorithm", "rsa-sha256 (default) or ed25519-sha256")
        ->check(CLI::IsMember({"rsa-sha256", "ed25519-sha256"}));
    command.add_option("--bits", "RSA modulus size, 2048 (default) to 4096")
        ->check(CLI::Range(2048, 4096));
    command.add_option("--out", "the private key file to create (default "
                                "/etc/ember/dkim/DOMAIN.SELECTOR.pem); never overwritten");
}

void spf_options(CLI::App& command, VerbArgs&) {
    command.add_option("--dns", "ask only this DNS server, HOST:PORT (default: resolv.conf)");
    command.add_option("ip", "the client address to check")->required();
    command.add_option("mailfrom", "the MAIL FROM address; \"<>\" checks the HELO name")
        ->required();
    command.add_option("helo", "the HELO name");
}

void check_domain_options(CLI::App& command, VerbArgs&) {
    command.add_option("--dns", "ask only this DNS server, HOST:PORT (default: [dns] servers)");
    command.add_option("domain", "the From: domain to check")->required();
}

// `classify` hands every word after it to feedback::classify_command, which
// has its own options and help; global options must come before the verb
// (only --json is understood after it, by classify itself).
void classify_options(CLI::App& command, VerbArgs&) {
    command.allow_extras();
    command.fallthrough(false);
    command.set_help_flag();
}

// --- warm-up (daemon/warmup_verbs.hpp, daemon/ctl_warmup.hpp) ---

void warmup_status_options(CLI::App& command, VerbArgs&) {
    command.add_option("domain", "only this sending domain");
}

void warmup_target_options(CLI::App& command, VerbArgs&) {
    command.add_option("domain", "the sending domain")->required();
    command.add_option("provider", "only this provider (default: the whole domain)");
}

void warmup_set_day_options(CLI::App& command, VerbArgs&) {
    command.add_option("domain", "the sending domain")->required();
    command.add_option("day", "the ramp day to be at from now on (1 = the first)")
        ->required()
        ->check(CLI::PositiveNumber);
}

void warmup_explain_options(CLI::App& command, VerbArgs&) {
    command.add_option("domain", "the sending domain")->required();
    command.add_option("recipient", "a recipient address or domain")->required();
    command.add_option("--mx", "assume this MX host (default: the one learned, if any)");
}

void warmup_advance_options(CLI::App& command, VerbArgs&) {
    command.add_option("days", "days to move the warm-up clock forward")
        ->required()
        ->check(CLI::Range(1, 3660));
}

void warmup_simulate_options(CLI::App& command, VerbArgs&) {
    command.add_option("file", "the candidate warmup.toml")->required();
    command.add_option("--from-events", "replay this delivery event log (JSON lines)");
    command.add_option("--days", "days to simulate (default 30; a replay: the whole log)");
    command.add_option("--daily-volume", "recipients a day for a provider, PROVIDER=N; repeatable")
        ->take_all();
    command.add_option("--domain", "the sending domain of a synthetic volume (default: the "
                                   "first [[sender]])");
    command.add_option("--first-day", "the first simulated day, YYYY-MM-DD");
}

json::object given_options(const CLI::App& command) {
    json::object args;
    for (const CLI::Option* option : command.get_options()) {
        if (option->count() == 0 || option == command.get_help_ptr())
            continue;
        std::string name = option->get_single_name();
        std::replace(name.begin(), name.end(), '-', '_');
        const auto& results = option->results();
        if (option->get_expected_min() == 0)
            args[name] = true;
        else if (results.size() == 1)
            args[name] = results.front();
        else
            args[name] = json::array(results.begin(), results.end());
    }
    if (command.get_allow_extras()) {
        const auto words = command.remaining();
        args["words"] = json::array(words.begin(), words.end());
    }
    return args;
}

const std::map<std::string, std::string, std::less<>> kGroups{
    {"queue", "inspect and manage the queue"},
    {"dkim", "DKIM keys (offline)"},
    {"api-key", "keys of the HTTP injection API (offline)"},
    {"warmup", "warm-up: ramp status, pause and resume, explain, dry runs"},
    {"suppress", "the suppression list: add, remove, list, check, import, export"},
    {"contacts", "contacts: attributes, tags, engagement; CSV import and export"},
    {"ab", "A/B tests: cells, counts and the decision"},
};

// Finds or creates the subcommand for each leading word of `words`.
CLI::App* command_for(CLI::App& app, std::string_view words,
                      std::map<std::string, CLI::App*, std::less<>>& made, std::string_view help) {
    CLI::App* parent = &app;
    std::string path;
    std::istringstream split{std::string(words)};
    for (std::string word; split >> word;) {
        path += (path.empty() ? "" : " ") + word;
        if (auto it = made.find(path); it != made.end()) {
            parent = it->second;
            continue;
        }
        const bool leaf = path == words;
        auto group = kGroups.find(path);
        const std::string text =
            leaf ? std::string(help) : (group != kGroups.end() ? group->second : std::string());
        parent = parent->add_subcommand(word, text);
        if (!leaf)
            parent->require_subcommand(1);
        made.emplace(path, parent);
    }
    return parent;
}

} // namespace

const std::vector<Verb>& verbs() {
    static const std::vector<Verb> table{
        {"status", "status", "show the daemon's version, listeners, sessions and queue", no_options,
         no_args, format_status, nullptr},
        {"reload", "reload", "re-read the configuration; exit 1 if the daemon kept the old one",
         no_options, no_args, format_reload, nullptr},
        {"queue summary", "queue.summary", "recipients per state and per destination domain",
         no_options, no_args, format_queue_summary, nullptr},
        {"queue list", "queue.list", "list queued messages", list_options, list_args,
         format_queue_list, nullptr},
        {"queue show", "queue.show", "show one message: envelope, recipients, header", id_option,
         id_args, format_queue_show, nullptr},
        {"queue delete", "queue.delete", "delete one message and all its recipients", id_option,
         id_args, format_queue_delete, nullptr},
        {"queue retry", "queue.retry",
         "retry now: one message's, a destination's or all pending recipients", retry_options,
         nullptr, format_queue_retry, nullptr},
        {"queue bounce", "queue.bounce",
         "fail one message's pending recipients and send the sender a DSN", id_option, id_args,
         format_queue_bounce, nullptr},
        {"domains", "domains", "destinations: pending, in flight, connections, last reply",
         no_options, no_args, format_domains, nullptr},
        {"warmup status", "warmup.status",
         "per sending domain and provider: ramp day, sent/cap, rate, backoff, guardrails",
         warmup_status_options, nullptr, format_warmup_status, nullptr},
        {"warmup pause", "warmup.pause", "stop sending from a domain (or to one provider)",
         warmup_target_options, nullptr, format_warmup_message, nullptr},
        {"warmup resume", "warmup.resume",
         "lift a pause or suspension of a domain (or of one provider)", warmup_target_options,
         nullptr, format_warmup_message, nullptr},
        {"warmup set-day", "warmup.set_day", "move a domain's ramp to day N",
         warmup_set_day_options, nullptr, format_warmup_message, nullptr},
        {"warmup explain", "warmup.explain",
         "which provider, schedule and rules apply to a recipient, and why mail waits",
         warmup_explain_options, nullptr, format_warmup_explain, nullptr},
        {"warmup advance", "warmup.advance",
         "move the warm-up clock forward (tests; needs [warmup] allow_clock_advance)",
         warmup_advance_options, nullptr, format_warmup_advance, nullptr},
        // Feedback (daemon/ctl_feedback.hpp, daemon/feedback_verbs.hpp).
        {"suppress add", "suppress.add", "stop mailing an address (globally or for a domain)",
         suppress_add_options, nullptr, format_suppress_change, nullptr},
        {"suppress remove", "suppress.remove", "mail an address again", suppress_remove_options,
         nullptr, format_suppress_change, nullptr},
        {"suppress list", "suppress.list", "list suppressed addresses", suppress_list_options,
         nullptr, format_suppress_list, nullptr},
        {"suppress check", "suppress.check", "is an address suppressed, and why",
         suppress_check_options, nullptr, format_suppress_check, nullptr},
        {"suppress import", "", "add addresses from CSV (a file or stdin)", suppress_import_options,
         nullptr, nullptr, run_suppress_import},
        {"suppress export", "", "print the suppression list as CSV", suppress_export_options,
         nullptr, nullptr, run_suppress_export},
        // Campaign reports (daemon/ctl_report.hpp, daemon/campaign_report.hpp).
        {"report", "",
         "per campaign: delivered, bounces by reason, complaints, opens, clicks, "
         "rates, A/B lift",
         report_options, nullptr, nullptr, run_report},
        {"compliance", "compliance",
         "bulk-sender rules per sending domain: measured, pass or fail, and why",
         compliance_options, nullptr, format_compliance, nullptr},
        // Contacts (daemon/ctl_contacts.hpp, daemon/contacts_verbs.hpp).
        {"contacts get", "contacts.get", "show a contact: attributes, tags, engagement",
         contacts_address_options, nullptr, format_contact, nullptr},
        {"contacts set", "", "set a contact's attributes (NAME[:TYPE]=VALUE) and add tags",
         contacts_set_options, nullptr, nullptr, run_contacts_set},
        {"contacts delete", "contacts.delete", "delete a contact and its engagement",
         contacts_address_options, nullptr, format_contact_change, nullptr},
        {"contacts event", "contacts.event",
         "record a delivery, open or click for a contact (history from elsewhere)",
         contacts_event_options, nullptr, format_contact_change, nullptr},
        {"contacts import", "", "import contacts from CSV (the daemon reads FILE)",
         contacts_import_options, nullptr, nullptr, run_contacts_import},
        {"contacts export", "", "export contacts as CSV (the daemon writes FILE)",
         contacts_export_options, nullptr, nullptr, run_contacts_export},
        // A/B tests (daemon/ctl_ab.hpp, daemon/ab_verbs.hpp).
        {"ab status", "ab.status", "an A/B test: cells, counts, rates and the decision",
         ab_status_options, nullptr, format_ab_status, nullptr},
        {"ab list", "ab.list", "every A/B test, newest first", ab_list_options, nullptr,
         format_ab_list, nullptr},
        // Offline: no daemon, no socket.
        {"api-key new", "", "make an HTTP API key: print the token and its [[api_key]] block",
         api_key_new_options, nullptr, nullptr, run_api_key_new},
        {"dkim keygen", "", "make a DKIM key; print its DNS record and [[dkim]] entry",
         keygen_options, nullptr, nullptr, run_dkim_keygen},
        {"spf", "", "evaluate SPF (RFC 7208) for an IP and a MAIL FROM", spf_options, nullptr,
         nullptr, run_spf},
        {"check-domain", "",
         "check a From: domain's SPF, DKIM and DMARC records against the config",
         check_domain_options, nullptr, nullptr, run_check_domain},
        {"classify", "", "classify an SMTP reply or a bounce message", classify_options, nullptr,
         nullptr, run_classify},
        {"warmup simulate", "",
         "dry-run a candidate warmup.toml over an event log or a daily volume",
         warmup_simulate_options, nullptr, nullptr, run_warmup_simulate},
    };
    return table;
}

ParseResult parse_command_line(const std::vector<std::string>& argv) {
    CLI::App app{"emberctl: control a running emberd over its admin socket", "emberctl"};
    app.require_subcommand(1);
    app.fallthrough(); // global options may follow the verb: `emberctl queue list --json`
    Options options;
    VerbArgs args;
    app.add_option("-s,--socket", options.socket,
                   fmt::format("admin socket (default: ${}, else {})", kSocketEnv, kDefaultSocket));
    app.add_option("-c,--config", options.config,
                   "read the socket path from [admin] socket; check-domain's keys and addresses");
    app.add_flag("--json", options.json, "print the result as JSON");
    std::map<std::string, CLI::App*, std::less<>> made;
    std::vector<std::pair<const Verb*, CLI::App*>> leaves;
    for (const auto& verb : verbs()) {
        auto* command = command_for(app, verb.words, made, verb.help);
        verb.define(*command, args);
        leaves.emplace_back(&verb, command);
    }

    std::vector<const char*> raw;
    for (const auto& arg : argv)
        raw.push_back(arg.c_str());
    ParseResult result;
    try {
        app.parse(static_cast<int>(raw.size()), raw.data());
    } catch (const CLI::ParseError& e) {
        std::ostringstream out, err;
        result.exit_code = app.exit(e, out, err) == 0 ? kExitOk : kExitUsage;
        result.output = out.str() + err.str();
        return result;
    }
    for (const auto& [verb, command] : leaves) {
        if (command->parsed())
            result.invocation = Invocation{
                options, verb, verb->request ? verb->request(args) : given_options(*command)};
    }
    if (!result.invocation) { // unreachable while every group requires a subcommand
        result.exit_code = kExitUsage;
        result.output = "emberctl: no verb given; see emberctl --help\n";
    }
    return result;
}

std::string resolve_socket(const Options& options, const char* env_socket, std::string& error) {
    if (!options.socket.empty())
        return options.socket;
    if (!options.config.empty()) {
        core::Diagnostics diag;
        const auto config = load_config(options.config, diag);
        if (!config) {
            error = diag.to_string();
            return "";
        }
        return config->admin.socket;
    }
    if (env_socket && *env_socket)
        return env_socket;
    return kDefaultSocket;
}

namespace {

int print(const Printed& printed, std::ostream& out, std::ostream& err) {
    out << printed.out;
    err << printed.err;
    return printed.exit_code;
}

int run_daemon_verb(const Invocation& invocation, std::ostream& out, std::ostream& err) {
    std::string error;
    const auto socket = resolve_socket(invocation.options, std::getenv(kSocketEnv), error);
    if (socket.empty()) {
        err << error << (error.ends_with('\n') ? "" : "\n");
        return kExitConfig;
    }
    const auto& verb = *invocation.verb;
    auto call = call_admin(socket, verb.admin_verb, invocation.args, kTimeout);
    switch (call.status) {
    case AdminCall::Status::Unavailable:
        err << "emberctl: " << call.error << "\n";
        return kExitUnavailable;
    case AdminCall::Status::Protocol:
        err << "emberctl: " << socket << ": " << call.error << "\n";
        return kExitProtocol;
    case AdminCall::Status::DaemonError:
        err << "emberctl: " << call.error << "\n";
        return kExitDaemonError;
    case AdminCall::Status::Ok:
        break;
    }
    Printed printed = verb.print(call.result);
    if (invocation.options.json) // the verb's exit status, the result as JSON only
        printed = Printed{pretty_json(call.result), printed.exit_code == 0 ? "" : printed.err,
                          printed.exit_code};
    return print(printed, out, err);
}

} // namespace

int run(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
    auto parsed = parse_command_line(argv);
    if (!parsed.invocation) {
        (parsed.exit_code == kExitOk ? out : err) << parsed.output;
        return parsed.exit_code;
    }
    const auto& invocation = *parsed.invocation;
    if (invocation.verb->offline)
        return invocation.verb->offline(invocation, out, err);
    return run_daemon_verb(invocation, out, err);
}

int call_failed(const AdminCall& call, std::ostream& err) {
    err << "emberctl: " << call.error << "\n";
    switch (call.status) {
    case AdminCall::Status::Unavailable:
        return kExitUnavailable;
    case AdminCall::Status::Protocol:
        return kExitProtocol;
    default:
        return kExitDaemonError;
    }
}

} // namespace ember::daemon::ctl
