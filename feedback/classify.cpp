#include "feedback/classify.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <optional>
#include <utility>

namespace ember::feedback {
namespace {

constexpr std::size_t kMaxClassifiedText = 16 * 1024;

// RFC 3463 2: class.subject.detail, subject and detail 1 to 3 digits.
const re2::RE2& status_syntax() {
    static const re2::RE2 re(R"([245]\.[0-9]{1,3}\.[0-9]{1,3})");
    return re;
}

// A code and/or status at the very start: "550 5.1.1 ...", "550-5.1.1", "5.1.1 ...".
const re2::RE2& leading_reply() {
    static const re2::RE2 re(
        R"(^\s*(?:([245][0-9][0-9])[ -])?\s*([245]\.[0-9]{1,3}\.[0-9]{1,3})?)");
    return re;
}

// A code standing alone somewhere in a sentence, followed by a status or by
// text: "... said: 550 5.1.1 ...", "(550 No such user)".
const re2::RE2& embedded_code() {
    static const re2::RE2 re(
        R"((?:^|[\s:(\[<"'])([245][0-9][0-9])(?:[ -][245]\.[0-9]{1,3}\.[0-9]{1,3}|[ -]+[A-Za-z<#(']))");
    return re;
}

const re2::RE2& embedded_status() {
    static const re2::RE2 re(
        R"((?:^|[^0-9.])([245]\.[0-9]{1,3}\.[0-9]{1,3})(?:[^0-9.]|\.\s|\.$|$))");
    return re;
}

constexpr std::array<std::pair<Reason, std::string_view>, 30> kStandard{{
    {Reason::UserUnknown, "1.1"},     {Reason::HostUnknown, "1.2"},
    {Reason::HasMoved, "1.6"},        {Reason::NotAccept, "1.10"},
    {Reason::MailboxFull, "2.2"},     {Reason::ExceedLimit, "2.3"},
    {Reason::EmailTooLarge, "3.4"},   {Reason::Suspend, "2.1"},
    {Reason::Filtered, "2.0"},        {Reason::Rejected, "7.1"},
    {Reason::Blocked, "7.1"},         {Reason::SpamDetected, "7.1"},
    {Reason::VirusDetected, "7.1"},   {Reason::PolicyViolation, "7.1"},
    {Reason::AuthFailure, "7.26"},    {Reason::RequirePtr, "7.25"},
    {Reason::BadReputation, "7.1"},   {Reason::RateLimited, "7.0"},
    {Reason::TooManyConn, "4.5"},     {Reason::SecurityError, "7.0"},
    {Reason::NoRelaying, "7.1"},      {Reason::SyntaxError, "5.2"},
    {Reason::ContentError, "6.0"},    {Reason::MailerError, "3.0"},
    {Reason::NetworkError, "4.0"},    {Reason::SystemError, "3.0"},
    {Reason::SystemFull, "3.1"},      {Reason::Expired, "4.7"},
    {Reason::NotCompliantRfc, "6.0"}, {Reason::FailedStartTls, "7.10"},
}};

bool is_status(std::string_view text) {
    return re2::RE2::FullMatch(text, status_syntax());
}

struct Reply {
    int code = 0;
    std::string status;
};

// Code and status from the arguments, else from the text.
Reply reply_facts(int code, std::string_view enhanced, std::string_view text) {
    Reply out;
    out.code = code >= 200 && code <= 599 ? code : 0;
    if (is_status(enhanced))
        out.status = std::string(enhanced);
    std::string lead_code;
    std::string lead_status;
    if (re2::RE2::PartialMatch(text, leading_reply(), &lead_code, &lead_status)) {
        if (out.code == 0 && !lead_code.empty())
            out.code = std::stoi(lead_code);
        if (out.status.empty())
            out.status = lead_status;
    }
    if (out.code == 0)
        out.code = find_reply_code(text);
    if (out.status.empty())
        out.status = find_status(text);
    // A status whose class contradicts the code is a quoted one, not ours.
    if (out.code != 0 && !out.status.empty() && out.status[0] != '0' + out.code / 100)
        out.status.clear();
    return out;
}

// A multi-line reply joined into one line repeats its code on every line
// ("550-5.1.1 The email account ... 550-5.1.1 double-checking ..."): those
// repeats go, so patterns see the sentence whole. One pass, linear.
std::string strip_continuations(const std::string& text, int code) {
    if (code == 0)
        return text;
    static const re2::RE2 leading_status(R"(^([245]\.[0-9]{1,3}\.[0-9]{1,3}) )");
    const auto c = std::to_string(code);
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        const bool at_word = i > 0 && text[i - 1] == ' ';
        const auto rest = std::string_view(text).substr(i);
        if (at_word && rest.size() > c.size() && rest.starts_with(c) &&
            (rest[c.size()] == '-' || rest[c.size()] == ' ')) {
            auto skip = c.size() + 1;
            std::string status;
            if (re2::RE2::PartialMatch(rest.substr(skip), leading_status, &status))
                skip += status.size() + 1;
            i += skip;
            continue;
        }
        out += text[i++];
    }
    return out;
}

} // namespace

int find_reply_code(std::string_view text) {
    std::string code;
    if (re2::RE2::PartialMatch(text, embedded_code(), &code))
        return std::stoi(code);
    return 0;
}

std::string find_status(std::string_view text) {
    std::string status;
    if (re2::RE2::PartialMatch(text, embedded_status(), &status))
        return status;
    return "";
}

std::string standard_status(Reason reason, char cls) {
    if (reason == Reason::Delivered)
        return "2.0.0";
    if (reason == Reason::OnHold || reason == Reason::Undefined)
        return std::string(1, cls) + ".0.0";
    for (const auto& [r, code] : kStandard) {
        if (r == reason)
            return std::string(1, cls) + "." + std::string(code);
    }
    return "";
}

Classification classify(int code, std::string_view enhanced, std::string_view text,
                        const Rules& rules) {
    return classify(code, enhanced, text, Command::Unknown, rules);
}

Classification classify(int code, std::string_view enhanced, std::string_view text, Command command,
                        const Rules& rules) {
    // A reply is a few lines (RFC 5321 4.5.3.1.5: 512 octets each); what
    // goes past kMaxClassifiedText is noise, and would only cost time.
    auto normalized = normalize_text(text.substr(0, std::min(text.size(), kMaxClassifiedText)));
    const auto reply = reply_facts(code, enhanced, normalized);
    normalized = strip_continuations(normalized, reply.code);
    Classification out;
    out.status = reply.status;
    std::optional<bool> forced_hard;
    if (reply.code / 100 == 2 || out.status.starts_with('2')) {
        out.reason = Reason::Delivered;
    } else if (const auto* rule = rules.match({reply.code, reply.status, normalized, command})) {
        out.reason = rule->reason;
        out.rule = rule->origin;
        out.by_text = !rule->pattern.empty();
        forced_hard = rule->hard;
    } else {
        out.reason = normalized.empty() ? Reason::Undefined : Reason::OnHold;
    }
    const bool transient = reply.code / 100 == 4 || out.status.starts_with('4');
    out.hard = forced_hard.value_or(default_hard(out.reason, transient));
    if (out.status.empty()) {
        out.status = standard_status(out.reason, transient ? '4' : '5');
        out.status_synthesized = !out.status.empty();
    }
    return out;
}

Classification classify(const core::Outcome& outcome, const Rules& rules) {
    return classify(outcome.code, outcome.enhanced, outcome.text, parse_command(outcome.command),
                    rules);
}

} // namespace ember::feedback
