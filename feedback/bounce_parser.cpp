#include "feedback/bounce_parser.hpp"

#include "feedback/arf.hpp"
#include "feedback/bounce_text.hpp"
#include "feedback/dsn.hpp"
#include "feedback/mime.hpp"
#include "feedback/ses_notification.hpp"

#include "core/assert.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <memory>

namespace ember::feedback {
namespace {

std::unique_ptr<re2::RE2> compile(const char* pattern) {
    re2::RE2::Options options;
    options.set_log_errors(false);
    options.set_case_sensitive(false);
    auto re = std::make_unique<re2::RE2>(pattern, options);
    EMBER_ASSERT(re->ok()); // our own patterns: a typo is a bug
    return re;
}

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) {
        return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    });
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return lower(a) == lower(b);
}

struct Message;
std::optional<BounceReport> attached_bounce(const Message& m, const Rules& rules, int depth);
BounceReport parse_at_depth(std::string_view message, const Rules& rules, int depth);

// What the parts of one message are, once.
struct Message {
    mime::Entity top;
    std::vector<mime::Part> parts;
    std::string human; // the text parts for people, HTML reduced
    TextReport text;   // read_bounce_text(human)
};

bool is_dsn_part(const mime::Part& p) {
    return p.mime_type == "message/delivery-status" ||
           p.mime_type == "message/global-delivery-status";
}

bool is_original_part(const mime::Part& p) {
    return p.mime_type == "message/rfc822" || p.mime_type == "message/global" ||
           p.mime_type == "text/rfc822-headers" || p.mime_type == "message/rfc822-headers" ||
           p.mime_type == "message/global-headers";
}

// The text written for people: text/* leaves that are not the returned
// message; the preamble only when there is nothing else.
std::string human_text(const std::vector<mime::Part>& parts) {
    std::string out;
    std::string preambles;
    // multipart/alternative: the plain text says what the HTML says.
    const bool has_plain = std::any_of(parts.begin(), parts.end(), [](const mime::Part& p) {
        return p.mime_type == "text/plain" && !p.preamble && !p.body.empty();
    });
    for (const auto& p : parts) {
        if (is_dsn_part(p) || is_original_part(p) || !p.mime_type.starts_with("text/"))
            continue;
        if (has_plain && p.mime_type == "text/html")
            continue;
        if (p.headers.get("Content-Disposition").starts_with("attachment") && !out.empty())
            continue;
        auto body = p.mime_type == "text/html" ? html_to_text(p.body) : p.body;
        auto& into = p.preamble ? preambles : out;
        into += body;
        into += "\n\n";
    }
    return out.empty() ? preambles : out;
}

// "Delayed Mail (still being retried)", Exim's "has not yet been
// delivered", "Delivery Status Notification (Delay)": a warning, not a
// failure.
bool says_delayed(const Message& m) {
    static const auto subject = compile(
        R"(delayed|delay\)|still being retried|warning: message|not yet (?:been )?delivered|delivery status notification \(delay\))");
    static const auto body = compile(
        R"(has not yet been delivered|delivery attempts will continue|will (?:continue to )?(?:try|retry) (?:to deliver|delivering)|still trying to deliver|is being retried|this is a warning message only|no action is required on your part)");
    const auto subj = mime::decode_words(m.top.headers.get("Subject"));
    return re2::RE2::PartialMatch(subj, *subject) || re2::RE2::PartialMatch(m.text.region, *body);
}

// From the mail system itself: MAILER-DAEMON, postmaster, "Mail Delivery
// Subsystem" and the like.
bool from_mail_system(const mime::Headers& h) {
    static const auto sender = compile(
        R"(mailer-daemon|post_?master|mail delivery|mail administrator|mailer daemon|mail-daemon|bounce|daemon@)");
    return re2::RE2::PartialMatch(h.get("From"), *sender);
}

// Signs a message is a delivery report whatever its body says.
bool strong_bounce_signs(const Message& m) {
    const auto& h = m.top.headers;
    const auto type = mime::parse_content_type(h.get("Content-Type"));
    return h.has("X-Failed-Recipients") || from_mail_system(h) ||
           (type.mime_type() == "multipart/report" &&
            lower(type.param("report-type")) == "delivery-status");
}

// Weaker signs, enough to read the text for recipients: the null return
// path, a subject that says what bounces say, a layout we recognise.
bool looks_like_bounce(const Message& m) {
    static const auto subject = compile(
        R"(undeliver|delivery (?:status|failure|failed|notification|problem|report|error)|failure notice|returned mail|mail delivery|not (?:be )?delivered|returning message|nondeliverable|error sending|mail system error|mail failure|non remis|unzustellbar|non recapitabile|no entregado|\bbounced?\b)");
    static const auto null_path = compile(R"(^\s*<\s*>\s*$)");
    const auto& h = m.top.headers;
    return strong_bounce_signs(m) || re2::RE2::PartialMatch(h.get("Return-Path"), *null_path) ||
           re2::RE2::PartialMatch(mime::decode_words(h.get("Subject")), *subject) ||
           !detect_format(m.text.region).empty();
}

bool looks_like_autoreply(const Message& m) {
    static const auto subject = compile(
        R"(^\s*(?:auto(?:matic)?[ -]?(?:reply|response|answer)|auto:|autoreply|out of (?:the )?office|vacation|abwesenheit|r[ée]ponse automatique|absence|fuera de la oficina|risposta automatica|automatisch(?:e)? antwort|respuesta autom[aá]tica))");
    const auto& h = m.top.headers;
    const auto auto_submitted = lower(h.get("Auto-Submitted"));
    if (auto_submitted.starts_with("auto-replied"))
        return true;
    if (h.has("X-Autoreply") || h.has("X-Autorespond") ||
        lower(h.get("Precedence")) == "auto_reply")
        return true;
    return re2::RE2::PartialMatch(mime::decode_words(h.get("Subject")), *subject);
}

// How much a status says: 0 for x.0.0, 1 for x.y.0 or x.0.z, 2 for x.y.z.
int specificity(std::string_view status) {
    const auto first = status.find('.');
    const auto second = status.find('.', first + 1);
    if (first == std::string_view::npos || second == std::string_view::npos)
        return 0;
    const auto subject = status.substr(first + 1, second - first - 1);
    const auto detail = status.substr(second + 1);
    return (subject != "0" ? 1 : 0) + (detail != "0" ? 1 : 0);
}

// "5.0.0" says less than the "550 5.1.1" in the diagnostic: take the more
// precise one of the same class (Sisimai does the same).
std::string best_status(std::string_view reported, std::string_view diagnostic) {
    const auto found = find_status(diagnostic);
    if (reported.empty())
        return found;
    if (!found.empty() && found[0] == reported[0] && specificity(found) > specificity(reported))
        return found;
    return std::string(reported);
}

// Statuses that say only the class and subject (x.0.0, x.4.0, x.5.0, ...).
bool vague_status(std::string_view status) {
    return status.ends_with(".0");
}

void classify_recipient(BouncedRecipient& r, const Rules& rules) {
    const auto& a = r.action;
    if (a == "delivered" || a == "relayed" || a == "expanded" || a == "deliverable") {
        r.classification =
            classify(250, r.status.empty() ? "2.0.0" : r.status, r.diagnostic, r.command, rules);
        return;
    }
    const bool local_program = r.diagnostic_type.starts_with("x-unix");
    r.classification =
        classify(r.reply_code, r.status, local_program ? "X-Unix; " + r.diagnostic : r.diagnostic,
                 r.command, rules);
    // Sisimai's fallbacks when no text rule spoke (no rule at all, or only
    // a vague status like x.0.0 or x.4.0): a local delivery program's
    // failure (diagnostic type X-Unix, RFC 3464 2.3.6) is a mailer error;
    // a delay report without a cause is an expiry to come.
    auto& c = r.classification;
    const bool undecided = c.reason == Reason::OnHold || c.reason == Reason::Undefined;
    if (c.by_text || !(undecided || vague_status(c.status)))
        return;
    if (local_program)
        c.reason = Reason::MailerError;
    else if (a == "delayed")
        c.reason = Reason::Expired;
    else
        return;
    c.hard = false;
    if (c.status_synthesized)
        c.status = standard_status(c.reason, c.status.empty() ? '5' : c.status[0]);
}

const TextRecipient* match_text(const TextReport& text, const DsnRecipient& d) {
    for (const auto& t : text.recipients) {
        if (iequals(t.address, d.final_recipient) ||
            (!d.original_recipient.empty() && iequals(t.address, d.original_recipient)))
            return &t;
    }
    return nullptr;
}

// Amazon SES writes its own words around the remote reply, which it
// quotes: "5.1.0 - Unknown address error 550-'5.7.1 ... Access denied'
// (delivery attempts: 0)". The quoted reply is what the receiver said.
std::string unwrap_quoted_reply(std::string text) {
    static const auto quoted =
        compile(R"(^[245]\.[0-9]{1,3}\.[0-9]{1,3} - [^']*?\b([245][0-9][0-9])[ -]'(.*)')");
    std::string code;
    std::string reply;
    if (re2::RE2::PartialMatch(text, *quoted, &code, &reply))
        return code + " " + reply;
    return text;
}

BouncedRecipient from_dsn(const DsnRecipient& d, const TextReport& text, std::size_t dsn_count) {
    BouncedRecipient r;
    r.recipient = d.final_recipient.empty() ? d.original_recipient : d.final_recipient;
    r.original_recipient = d.original_recipient;
    r.action = d.action;
    r.diagnostic = unwrap_quoted_reply(normalize_text(d.diagnostic));
    r.diagnostic_type = d.diagnostic_type;
    r.remote_mta = d.remote_mta;
    const auto* t = match_text(text, d);
    if (t == nullptr && dsn_count == 1 && text.recipients.size() == 1)
        t = &text.recipients.front();
    if (t != nullptr) {
        r.command = t->command;
        if (r.diagnostic.empty())
            r.diagnostic = t->diagnostic;
    }
    // Nothing names the cause but the report itself: read all of it.
    if (r.diagnostic.empty() && dsn_count == 1 && text.recipients.empty())
        r.diagnostic = normalize_text(text.region).substr(0, 2000);
    if (r.command == Command::Unknown)
        r.command = find_command(r.diagnostic);
    if (r.command == Command::Unknown && dsn_count == 1)
        r.command = find_command(normalize_text(text.region));
    r.status = best_status(d.status, r.diagnostic);
    // A local program's exit status ("X-Unix; 255") is not a reply code.
    if (!r.diagnostic_type.starts_with("x-"))
        r.reply_code = find_reply_code(r.diagnostic);
    return r;
}

std::vector<DsnRecipient> dsn_recipients(const Message& m) {
    std::vector<DsnRecipient> out;
    for (const auto& p : m.parts) {
        if (!is_dsn_part(p))
            continue;
        auto status = parse_delivery_status(p.body);
        for (auto& r : status.recipients)
            out.push_back(std::move(r));
    }
    if (!out.empty())
        return out;
    // Some MTAs write the RFC 3464 fields into the text part instead.
    static const auto fields = compile(R"((?m)^(?:Final-Recipient|Original-Recipient)\s*:)");
    static const auto first =
        compile(R"((?m)^((?:Reporting-MTA|Action|Final-Recipient|Original-Recipient)\s*:))");
    re2::StringPiece at;
    const auto& region = m.text.region;
    if (re2::RE2::PartialMatch(region, *first, &at) && re2::RE2::PartialMatch(region, *fields)) {
        const auto from = static_cast<std::size_t>(at.data() - region.data());
        return parse_delivery_status(std::string_view(region).substr(from)).recipients;
    }
    return out;
}

OriginalMessage find_original(const Message& m) {
    for (const auto& p : m.parts) {
        if (p.mime_type == "message/rfc822" || p.mime_type == "message/global")
            return original_from_headers(mime::parse_entity(p.body).headers);
        if (is_original_part(p))
            return original_from_headers(mime::parse_headers(p.body));
    }
    // Inline: the returned message follows the marker line.
    const std::string_view rest = m.text.rest;
    static const auto field = compile(R"((?m)^([A-Za-z][A-Za-z0-9-]*:\s))");
    re2::StringPiece at;
    if (!re2::RE2::PartialMatch(rest, *field, &at))
        return {};
    return original_from_headers(
        mime::parse_entity(rest.substr(static_cast<std::size_t>(at.data() - rest.data()))).headers);
}

std::vector<std::string> split_addresses(std::string_view list) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos <= list.size()) {
        const auto end = std::min(list.find(',', pos), list.size());
        const auto address = first_address(list.substr(pos, end - pos));
        if (!address.empty())
            out.push_back(address);
        pos = end + 1;
    }
    return out;
}

// Exim's X-Failed-Recipients names exactly the failed ones: when the text
// mentions more addresses, keep those it names.
void filter_by_failed_header(const Message& m, std::vector<TextRecipient>& recipients) {
    const auto failed = split_addresses(m.top.headers.get("X-Failed-Recipients"));
    if (failed.empty())
        return;
    std::vector<TextRecipient> kept;
    for (const auto& r : recipients) {
        const bool named = std::any_of(failed.begin(), failed.end(),
                                       [&](const std::string& f) { return iequals(f, r.address); });
        if (named)
            kept.push_back(r);
    }
    if (!kept.empty())
        recipients = std::move(kept);
}

// The bounce's own From (the reporting system) is not a failed recipient,
// and neither is its To (the sender it returns to, quoted in the report)
// when the report names anyone else.
void drop_own_addresses(const Message& m, std::vector<TextRecipient>& recipients) {
    const auto from = first_address(m.top.headers.get("From"));
    std::erase_if(recipients, [&](const TextRecipient& r) { return iequals(r.address, from); });
    const auto to = first_address(m.top.headers.get("To"));
    const auto is_to = [&](const TextRecipient& r) {
        return iequals(r.address, to);
    };
    if (!to.empty() && std::any_of(recipients.begin(), recipients.end(),
                                   [&](const TextRecipient& r) { return !is_to(r); }))
        std::erase_if(recipients, is_to);
}

std::vector<BouncedRecipient> from_text(const Message& m) {
    auto found = m.text.recipients;
    drop_own_addresses(m, found);
    filter_by_failed_header(m, found);
    const std::string action = says_delayed(m) ? "delayed" : "failed";
    std::vector<BouncedRecipient> out;
    for (const auto& t : found) {
        BouncedRecipient r;
        r.recipient = t.address;
        r.action = action;
        r.diagnostic = t.diagnostic;
        // The reason stood apart from the address: read the whole report.
        if (r.diagnostic.empty() && found.size() == 1)
            r.diagnostic = normalize_text(m.text.region).substr(0, 2000);
        r.command = t.command;
        r.status = find_status(r.diagnostic);
        r.reply_code = find_reply_code(r.diagnostic);
        out.push_back(std::move(r));
    }
    return out;
}

// No recipient line found in a message that is a bounce: the failed
// recipients from X-Failed-Recipients or the returned message's To, the
// whole report as the diagnostic.
std::vector<BouncedRecipient> from_headers(const Message& m, const OriginalMessage& original) {
    auto addresses = split_addresses(m.top.headers.get("X-Failed-Recipients"));
    if (addresses.empty() && !first_address(original.to).empty())
        addresses.push_back(first_address(original.to));
    std::vector<BouncedRecipient> out;
    const auto diagnostic = normalize_text(m.text.region).substr(0, 2000);
    for (const auto& a : addresses) {
        BouncedRecipient r;
        r.recipient = a;
        r.action = says_delayed(m) ? "delayed" : "failed";
        r.diagnostic = diagnostic;
        r.command = find_command(diagnostic);
        r.status = find_status(diagnostic);
        r.reply_code = find_reply_code(diagnostic);
        out.push_back(std::move(r));
    }
    return out;
}

BounceReport feedback_report(const FeedbackReport& fb) {
    BounceReport report;
    report.kind = BounceKind::Feedback;
    report.format = fb.format;
    report.feedback_type = fb.feedback_type;
    report.original = fb.original;
    auto recipients = fb.recipients();
    if (recipients.empty())
        recipients.emplace_back(); // a complaint about someone we cannot name
    for (auto& address : recipients) {
        BouncedRecipient r;
        r.recipient = std::move(address);
        r.action = "failed";
        r.classification.reason = Reason::Feedback;
        r.classification.rule = "feedback report";
        report.recipients.push_back(std::move(r));
    }
    return report;
}

std::optional<BounceReport> ses_report(const Message& m, const Rules& rules) {
    if (!m.top.body.starts_with("{") &&
        m.top.body.find("\"notificationType\"") == std::string_view::npos &&
        m.top.body.find("\"Type\" : \"Notification\"") == std::string_view::npos)
        return std::nullopt;
    const auto n = parse_ses_notification(m.top.body);
    if (!n || n->type == SesNotification::Type::Complaint)
        return std::nullopt;
    BounceReport report;
    report.kind = BounceKind::Bounce;
    report.format = "ses-json";
    report.original = n->original;
    for (const auto& s : n->recipients) {
        BouncedRecipient r;
        r.recipient = s.address;
        r.action = s.action.empty() ? "failed" : lower(s.action);
        const auto semi = s.diagnostic.find(';');
        r.diagnostic_type = semi == std::string::npos ? "" : lower(s.diagnostic.substr(0, semi));
        r.diagnostic = normalize_text(
            semi == std::string::npos || semi > 16 ? s.diagnostic : s.diagnostic.substr(semi + 1));
        r.status = best_status(s.status, r.diagnostic);
        r.reply_code = find_reply_code(r.diagnostic);
        classify_recipient(r, rules);
        report.recipients.push_back(std::move(r));
    }
    return report;
}

BounceReport autoreply_report(const Message& m, const OriginalMessage& original) {
    BounceReport report;
    report.kind = BounceKind::AutoReply;
    report.format = "autoreply";
    report.original = original;
    BouncedRecipient r;
    r.recipient = first_address(m.top.headers.get("From"));
    r.action = "autoreplied";
    r.diagnostic = normalize_text(m.text.region).substr(0, 500);
    r.classification.reason = Reason::Vacation;
    r.classification.rule = "autoreply";
    report.recipients.push_back(std::move(r));
    return report;
}

} // namespace

std::string_view bounce_kind_name(BounceKind kind) {
    switch (kind) {
    case BounceKind::Bounce:
        return "bounce";
    case BounceKind::AutoReply:
        return "autoreply";
    case BounceKind::Feedback:
        return "feedback";
    case BounceKind::NotBounce:
        break;
    }
    return "not-bounce";
}

BounceReport parse_bounce(std::string_view message, const Rules& rules) {
    return parse_at_depth(message, rules, 0);
}

namespace {

std::optional<BounceReport> attached_bounce(const Message& m, const Rules& rules, int depth) {
    for (const auto& p : m.parts) {
        if (p.mime_type != "message/rfc822")
            continue;
        auto inner = parse_at_depth(p.body, rules, depth + 1);
        if (inner.kind == BounceKind::Bounce)
            return inner;
    }
    return std::nullopt;
}

// Who failed, before classification: the RFC 3464 report's recipients,
// else the text's, else (a report we could not read) the headers' guess.
BounceReport read_recipients(const Message& m, const Rules& rules, int depth) {
    BounceReport report;
    report.original = find_original(m);
    const auto dsn = dsn_recipients(m);
    // An autoreply also comes from the null sender and may quote the
    // message: decide it first, unless the message says it is a report.
    if (dsn.empty() && !strong_bounce_signs(m) && looks_like_autoreply(m))
        return autoreply_report(m, report.original);
    if (!dsn.empty()) {
        report.format = "rfc3464";
        for (const auto& d : dsn)
            report.recipients.push_back(from_dsn(d, m.text, dsn.size()));
    } else if (looks_like_bounce(m)) {
        report.format = m.text.format.empty() ? "text" : m.text.format;
        report.recipients = from_text(m);
        // A bounce forwarded as an attachment: read the attached one.
        if (report.recipients.empty() && depth < 1) {
            if (auto inner = attached_bounce(m, rules, depth))
                return *inner;
        }
        if (report.recipients.empty())
            report.recipients = from_headers(m, report.original);
    }
    if (report.recipients.empty())
        report.format.clear();
    else
        report.kind = BounceKind::Bounce;
    return report;
}

BounceReport parse_at_depth(std::string_view message, const Rules& rules, int depth) {
    message = message.substr(0, std::min(message.size(), kMaxBounceSize));
    if (auto fb = parse_feedback(message))
        return feedback_report(*fb);
    const auto text = mime::normalize_newlines(message);
    Message m;
    m.top = mime::parse_entity(text);
    m.parts = mime::leaves(m.top);
    m.human = human_text(m.parts);
    m.text = read_bounce_text(m.human);
    if (auto ses = ses_report(m, rules))
        return *ses;
    auto report = read_recipients(m, rules, depth);
    if (report.kind == BounceKind::Bounce) {
        for (auto& r : report.recipients)
            classify_recipient(r, rules);
    }
    return report;
}

} // namespace

BounceReport parse_bounce(std::string_view message) {
    return parse_bounce(message, Rules::builtin());
}

} // namespace ember::feedback
