#include "feedback/classify_command.hpp"

#include "feedback/bounce_parser.hpp"
#include "feedback/classify.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <fstream>
#include <iterator>
#include <optional>

namespace ember::feedback {
namespace {

namespace json = boost::json;

constexpr int kExitNothing = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNoInput = 66; // EX_NOINPUT
constexpr int kExitConfig = 78;  // EX_CONFIG

struct Options {
    std::optional<std::string> reply;
    std::string command;
    std::string file; // "" or "-": stdin
    std::vector<std::string> rules_files;
    bool builtin = true;
    bool json = false;
    bool help = false;
};

// Returns an error message, or "" when the arguments parse.
std::string parse_args(const std::vector<std::string>& args, Options& o) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        const bool has_value = i + 1 < args.size();
        if (a == "--reply" || a == "--command" || a == "--rules") {
            if (!has_value)
                return a + " needs a value";
            const auto& v = args[++i];
            if (a == "--reply")
                o.reply = v;
            else if (a == "--command")
                o.command = v;
            else
                o.rules_files.push_back(v);
        } else if (a == "--json") {
            o.json = true;
        } else if (a == "--no-builtin-rules") {
            o.builtin = false;
        } else if (a == "--help" || a == "-h") {
            o.help = true;
        } else if (a != "-" && a.starts_with("-")) {
            return "unknown option " + a;
        } else if (!o.file.empty()) {
            return "one message at a time: " + o.file + " and " + a;
        } else {
            o.file = a;
        }
    }
    if (o.reply && !o.file.empty())
        return "--reply and a message file exclude each other";
    if (!o.command.empty() && parse_command(o.command) == Command::Unknown)
        return "unknown command " + o.command +
               ": want CONN, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA";
    return "";
}

std::string line(std::string_view recipient, const Classification& c, std::string_view diag) {
    std::string out(recipient.empty() ? "-" : recipient);
    out += '\t';
    out += reason_name(c.reason);
    out += c.hard ? "\thard\t" : "\tsoft\t";
    out += c.status.empty() ? "-" : c.status;
    out += '\t';
    out += normalize_text(diag);
    out += '\n';
    return out;
}

json::object classification_json(const Classification& c) {
    return {{"reason", reason_name(c.reason)},
            {"hard", c.hard},
            {"status", c.status},
            {"status_synthesized", c.status_synthesized},
            {"rule", c.rule}};
}

CommandOutput run_reply(const Options& o, const Rules& rules) {
    const auto c = classify(0, "", *o.reply, parse_command(o.command), rules);
    if (!o.json)
        return {0, line("", c, *o.reply), ""};
    auto object = classification_json(c);
    object["reply"] = normalize_text(*o.reply);
    return {0, json::serialize(object) + "\n", ""};
}

json::object report_json(const BounceReport& report) {
    json::array recipients;
    for (const auto& r : report.recipients) {
        auto object = classification_json(r.classification);
        object["recipient"] = r.recipient;
        object["original_recipient"] = r.original_recipient;
        object["action"] = r.action;
        object["reported_status"] = r.status;
        object["reply_code"] = r.reply_code;
        object["command"] = command_name(r.command);
        object["remote_mta"] = r.remote_mta;
        object["diagnostic"] = r.diagnostic;
        recipients.push_back(std::move(object));
    }
    const auto& o = report.original;
    return {{"kind", bounce_kind_name(report.kind)},
            {"format", report.format},
            {"feedback_type", report.feedback_type},
            {"original",
             {{"message_id", o.message_id},
              {"ember_id", o.ember_id},
              {"return_path", o.return_path},
              {"from", o.from},
              {"to", o.to},
              {"subject", o.subject}}},
            {"recipients", std::move(recipients)}};
}

CommandOutput run_message(const Options& o, const Rules& rules,
                          const std::function<std::string()>& read_stdin) {
    std::string message;
    if (o.file.empty() || o.file == "-") {
        message = read_stdin();
    } else {
        std::ifstream in(o.file, std::ios::binary);
        if (!in)
            return {kExitNoInput, "", "emberctl classify: cannot read " + o.file + "\n"};
        message.assign(std::istreambuf_iterator<char>(in), {});
    }
    const auto report = parse_bounce(message, rules);
    CommandOutput out;
    if (o.json)
        out.out = json::serialize(report_json(report)) + "\n";
    else
        for (const auto& r : report.recipients)
            out.out += line(r.recipient, r.classification, r.diagnostic);
    if (report.kind == BounceKind::NotBounce) {
        out.exit_code = kExitNothing;
        out.err = "emberctl classify: not a bounce, autoreply or complaint report\n";
    }
    return out;
}

} // namespace

std::string classify_usage() {
    return "usage: emberctl classify --reply 'CODE X.Y.Z TEXT' [--command RCPT] [options]\n"
           "       emberctl classify [FILE|-] [options]\n"
           "options:\n"
           "  --rules FILE         also read these rules (they win over the built-in ones)\n"
           "  --no-builtin-rules   use only the --rules files\n"
           "  --json               one JSON object instead of tab-separated lines\n"
           "output: recipient<TAB>reason<TAB>hard|soft<TAB>status<TAB>diagnostic\n";
}

CommandOutput classify_command(const std::vector<std::string>& args,
                               const std::function<std::string()>& read_stdin) {
    Options o;
    if (const auto error = parse_args(args, o); !error.empty())
        return {kExitUsage, "", "emberctl classify: " + error + "\n" + classify_usage()};
    if (o.help)
        return {0, classify_usage(), ""};
    core::Diagnostics diag;
    const auto rules = Rules::load(o.rules_files, diag, o.builtin);
    if (!diag.empty())
        return {kExitConfig, "", diag.to_string()};
    if (o.reply)
        return run_reply(o, rules);
    return run_message(o, rules, read_stdin);
}

} // namespace ember::feedback
