#include "smtp/dsn.hpp"

#include "smtp/address.hpp"
#include "smtp/command.hpp"
#include "smtp/message_header.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <utility>

namespace ember::smtp {

namespace {

constexpr std::string_view kCrlf = "\r\n";
constexpr std::size_t kFoldWidth = 78; // RFC 5322 2.1.1: SHOULD
constexpr std::size_t kTextWidth = 76;
constexpr std::size_t kMaxLine = 998;     // RFC 5322 2.1.1: MUST, without CRLF
constexpr std::size_t kBoundaryBase = 56; // RFC 2046 5.1.1: 70 with the ".N=" suffix

bool is_utf8_continuation(char c) {
    return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

bool is_graphic(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7F;
}

bool is_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// Text from outside (remote replies, envelope values) for one header field
// or text line: control characters (CR and LF above all: they would start a
// new header line or end the header block) become spaces, runs of spaces
// collapse. Non-ASCII octets stay only in a report that may carry UTF-8 and
// only if the text is valid UTF-8; otherwise each becomes '?'.
std::string clean_text(std::string_view text, bool allow_utf8) {
    const bool keep_utf8 = allow_utf8 && is_valid_utf8(text);
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7F) {
            if (!out.empty() && out.back() != ' ')
                out += ' ';
        } else {
            out += u >= 0x80 && !keep_utf8 ? '?' : c;
        }
    }
    if (!out.empty() && out.back() == ' ')
        out.pop_back();
    return out;
}

// Keeps letters, digits and `extra`; anything else becomes '-'. For the
// pieces of our own identifiers (host, queue id) that must be a dot-atom.
std::string token(std::string_view text, std::string_view extra) {
    std::string out;
    for (const char c : text)
        out += is_alnum(c) || extra.find(c) != std::string_view::npos ? c : '-';
    return out;
}

// How much of `word` fits in `room` octets without splitting a UTF-8 sequence.
std::size_t cut_point(std::string_view word, std::size_t room) {
    auto cut = std::min(room, word.size());
    while (cut > 0 && cut < word.size() && is_utf8_continuation(word[cut]))
        --cut;
    return cut == 0 ? std::min(room, word.size()) : cut;
}

// Appends `text` as lines of at most `width` octets where its words allow,
// each break replacing one space with CRLF + indent. With indent " " that is
// RFC 5322 2.2.3 folding: unfolding gives the text back. A word that would
// take a line past 998 octets is cut, the one case where unfolding adds a
// space; no line is ever longer, whatever the input.
void append_wrapped(std::string& out, std::string_view text, std::size_t width,
                    std::string_view indent) {
    std::size_t column = 0;
    bool first = true;
    while (true) {
        const auto space = text.find(' ');
        auto word = text.substr(0, space);
        if (!first) {
            // Never break before an empty word: a line of only WSP is not a fold.
            const bool brk =
                (!word.empty() && column + 1 + word.size() > width) || column + 1 > kMaxLine;
            out += brk ? fmt::format("{}{}", kCrlf, indent) : std::string(" ");
            column = brk ? indent.size() : column + 1;
        }
        while (column + word.size() > kMaxLine) {
            const auto cut = cut_point(word, kMaxLine - column);
            out += word.substr(0, cut);
            out += kCrlf;
            out += indent;
            column = indent.size();
            word.remove_prefix(cut);
        }
        out += word;
        column += word.size();
        first = false;
        if (space == std::string_view::npos)
            break;
        text.remove_prefix(space + 1);
    }
    out += kCrlf;
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
    append_wrapped(out, fmt::format("{}: {}", name, value), kFoldWidth, " ");
}

void append_paragraph(std::string& out, std::string_view text) {
    append_wrapped(out, text, kTextWidth, "");
    out += kCrlf;
}

// "3 days", "1 hour": the largest unit that fits, rounded down.
std::string human_duration(std::int64_t seconds) {
    static constexpr std::array<std::pair<std::int64_t, std::string_view>, 4> kUnits{
        {{86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}}};
    for (const auto& [size, name] : kUnits) {
        if (seconds >= size || size == 1) {
            const auto n = seconds / size;
            return fmt::format("{} {}{}", n, name, n == 1 ? "" : "s");
        }
    }
    return {};
}

// ---- what the report knows --------------------------------------------------

struct Context {
    const DsnInput& in;
    std::string host;    // the reporting MTA as a dot-atom
    bool global = false; // an address is not ASCII: RFC 6533 types, UTF-8 text allowed
};

bool has_utf8_address(const DsnInput& in) {
    if (!is_ascii(in.original_sender))
        return true;
    return std::any_of(in.recipients.begin(), in.recipients.end(), [](const DsnRecipient& r) {
        return !is_ascii(r.final_recipient) || !is_ascii(r.original_recipient);
    });
}

Context make_context(const DsnInput& in) {
    auto host = token(in.reporting_mta, ".-");
    return Context{in, host.empty() ? std::string("localhost") : std::move(host),
                   has_utf8_address(in)};
}

// ---- the returned content (third part) --------------------------------------

enum class Returned : std::uint8_t { Full, Headers, Nothing };

struct ReturnPlan {
    Returned what = Returned::Nothing;
    std::string_view text;    // what the part carries
    bool utf8_header = false; // RFC 6532 header fields: message/global types
    std::string note;         // why less than asked is returned, for the first part
};

// Where the header block ends: the start of the first empty line (its
// CRLF, or LF for tolerance), or the end of a message that has no body.
std::size_t header_end(std::string_view message) {
    std::size_t pos = 0;
    while (pos < message.size()) {
        if (message[pos] == '\n' || message.substr(pos, 2) == kCrlf)
            return pos;
        const auto nl = message.find('\n', pos);
        if (nl == std::string_view::npos)
            break;
        pos = nl + 1;
    }
    return message.size();
}

// Whether SMTP can carry the text verbatim inside our message: CRLF line
// ends only, no NUL, no line over 998 octets (RFC 5321 4.5.3.1.6, RFC 5322
// 2.1.1). A BDAT message need not satisfy this.
bool lines_fit(std::string_view text) {
    std::size_t line = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\0' || c == '\n')
            return false; // a LF not after CR (the CRLF case skips it below)
        if (c == '\r') {
            if (i + 1 == text.size() || text[i + 1] != '\n')
                return false;
            ++i;
            line = 0;
        } else if (++line > kMaxLine) {
            return false;
        }
    }
    return true;
}

ReturnPlan plan_return(const DsnInput& in) {
    const auto message = in.original_message;
    const auto headers = message.substr(0, header_end(message));
    const bool utf8_header = !is_ascii(headers);
    std::string note;
    // RFC 3461 4.3: FULL asks for the message in a "failed" DSN only.
    if (in.kind == DsnKind::Failure && in.ret == core::DsnRet::Full) {
        if (message.size() > in.max_returned_size)
            note = fmt::format("Your message is larger than {} octets, so only its header "
                               "is returned.",
                               in.max_returned_size);
        else if (!lines_fit(message))
            note = "Your message has lines that mail cannot carry (over 998 octets, or bare "
                   "CR or LF), so only its header is returned.";
        else
            return ReturnPlan{Returned::Full, message, utf8_header, {}};
    }
    if (headers.size() > in.max_returned_size || !lines_fit(headers))
        return ReturnPlan{Returned::Nothing,
                          {},
                          false,
                          "The header of your message is not returned: it is too large or has "
                          "lines that mail cannot carry."};
    return ReturnPlan{Returned::Headers, headers, utf8_header, std::move(note)};
}

std::string returned_part(const Context& c, const ReturnPlan& plan) {
    const bool full = plan.what == Returned::Full;
    const std::string_view undelivered = c.in.kind == DsnKind::Failure ? "Undelivered " : "";
    std::string out;
    append_field(out, "Content-Description",
                 fmt::format("{}{}", undelivered, full ? "Message" : "Message Headers"));
    // RFC 6532 3.7 message/global, RFC 6533 6 message/global-headers.
    if (full)
        append_field(out, "Content-Type", plan.utf8_header ? "message/global" : "message/rfc822");
    else
        append_field(out, "Content-Type",
                     plan.utf8_header ? "message/global-headers" : "text/rfc822-headers");
    if (!is_ascii(plan.text)) // RFC 2046 5.2.1: message/* is 7bit, 8bit or binary
        append_field(out, "Content-Transfer-Encoding", "8bit");
    out += kCrlf;
    out += plan.text;
    return out;
}

// ---- the human-readable part ------------------------------------------------

std::string postmaster_name(const Context& c) {
    auto name = clean_text(c.in.postmaster, c.global);
    return name.find('@') == std::string::npos ? name : fmt::format("<{}>", name);
}

std::string_view attached(Returned what) {
    switch (what) {
    case Returned::Full:
        return " It's attached below.";
    case Returned::Headers:
        return " Its header is attached below.";
    case Returned::Nothing:
        break;
    }
    return "";
}

void append_failure_intro(std::string& out, const ReturnPlan& plan) {
    append_paragraph(out, fmt::format("I'm sorry to have to inform you that your message could "
                                      "not be delivered to one or more recipients.{}",
                                      attached(plan.what)));
}

void append_delay_intro(std::string& out, const Context& c) {
    out += "####################################################################\r\n"
           "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n"
           "####################################################################\r\n\r\n";
    const auto age = c.in.now_unix - c.in.arrival_unix;
    std::string text = c.in.arrival_unix > 0 && age > 0
                           ? fmt::format("Your message could not be delivered for more than {}.",
                                         human_duration(age))
                           : std::string("Your message could not be delivered yet.");
    std::int64_t until = 0;
    for (const auto& r : c.in.recipients)
        until = std::max(until, r.will_retry_until_unix);
    if (c.in.arrival_unix > 0 && until > c.in.arrival_unix)
        text += fmt::format(" It will be retried until it is {} old.",
                            human_duration(until - c.in.arrival_unix));
    append_paragraph(out, text);
}

// "<a@b>: host mx[192.0.2.1] said: 550 5.1.1 ..." (Postfix's form); an
// expired recipient says how long ember tried.
std::string recipient_line(const Context& c, const DsnRecipient& r) {
    auto reason = clean_text(r.outcome.summary(), c.global);
    if (c.in.kind == DsnKind::Failure && r.outcome.kind != core::OutcomeKind::Failed &&
        c.in.arrival_unix > 0 && c.in.now_unix > c.in.arrival_unix)
        reason = fmt::format("gave up after {} in the queue; last error: {}",
                             human_duration(c.in.now_unix - c.in.arrival_unix), reason);
    return fmt::format("<{}>: {}", clean_text(r.final_recipient, c.global), reason);
}

std::string human_part(const Context& c, const ReturnPlan& plan) {
    std::string body;
    append_paragraph(body, fmt::format("This is the mail system at host {}.", c.host));
    if (c.in.kind == DsnKind::Failure)
        append_failure_intro(body, plan);
    else
        append_delay_intro(body, c);
    if (!plan.note.empty())
        append_paragraph(body, plan.note);
    append_paragraph(
        body, fmt::format("For further assistance, please send mail to {}.", postmaster_name(c)));
    append_paragraph(body, "If you do so, please include this problem report. You can delete "
                           "your own text from the attached returned message.");
    body += "                   The mail system\r\n\r\n";
    for (const auto& r : c.in.recipients) {
        append_wrapped(body, recipient_line(c, r), kTextWidth, "    ");
        body += kCrlf;
    }
    const bool utf8 = !is_ascii(body);
    std::string out;
    append_field(out, "Content-Description", "Notification");
    append_field(out, "Content-Type",
                 utf8 ? "text/plain; charset=utf-8" : "text/plain; charset=us-ascii");
    if (utf8)
        append_field(out, "Content-Transfer-Encoding", "8bit");
    return out + std::string(kCrlf) + body;
}

// ---- the machine-readable part (RFC 3464 2.2, 2.3) ---------------------------

// RFC 3463 2: class "." subject "." detail, class 2, 4 or 5, 1-3 digits each.
bool is_status_code(std::string_view s) {
    if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return false;
    const auto dot = s.find('.', 2);
    if (dot == std::string_view::npos)
        return false;
    const auto digits = [](std::string_view d) {
        return !d.empty() && d.size() <= 3 &&
               std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    return digits(s.substr(2, dot - 2)) && digits(s.substr(dot + 1));
}

// The outcome's enhanced code, or (none, or garbage from a remote server)
// X.0.0 with the class of its reply code or, lacking one, of its kind.
std::string status_code(const core::Outcome& o) {
    if (is_status_code(o.enhanced))
        return o.enhanced;
    if (o.code >= 400 && o.code < 600)
        return fmt::format("{}.0.0", o.code / 100);
    return o.kind == core::OutcomeKind::Failed ? "5.0.0" : "4.0.0";
}

// RFC 6533 3: a non-ASCII address is of type utf-8 (sent as is in
// message/global-delivery-status).
std::string typed_address(std::string_view type, std::string_view address, bool global) {
    auto clean = clean_text(address, global);
    const bool utf8 = !is_ascii(clean);
    return fmt::format("{}; {}", utf8 ? "utf-8" : token(type, "-"), clean);
}

// ORCPT as stored ("addr-type;address"), carried unchanged (RFC 3461 4.2).
std::string original_recipient(std::string_view orcpt, bool global) {
    const auto semi = orcpt.find(';');
    if (semi == std::string_view::npos)
        return typed_address("rfc822", orcpt, global);
    return typed_address(ascii_lower(clean_text(orcpt.substr(0, semi), false)),
                         orcpt.substr(semi + 1), global);
}

// RFC 3464 2.2.1: the envelope id exactly as given. RFC 3461 4.4 allows
// only printable ASCII; anything else (or spaces, which folding could not
// keep exact) is written in its xtext form, which the sender can decode.
std::string envid_value(std::string_view envid) {
    if (std::all_of(envid.begin(), envid.end(), is_graphic) && envid.size() <= 100)
        return std::string(envid);
    return xtext_encode(envid.substr(0, 100));
}

bool is_remote(const core::Outcome& o) {
    return !o.local && !o.remote_host.empty() && o.code != 0;
}

// "smtp; 550 5.1.1 text" for what a remote server said (RFC 3464 2.3.6);
// ember's own synthesized failures (DNS, connect, TLS, expiry) are typed
// "X-Ember", as Postfix types its own "X-Postfix".
std::string diagnostic(const core::Outcome& o, bool global) {
    if (!is_remote(o))
        return fmt::format("X-Ember; {}", clean_text(o.summary(), global));
    std::string reply = std::to_string(o.code);
    if (!o.enhanced.empty())
        reply += " " + o.enhanced;
    if (!o.text.empty())
        reply += " " + o.text;
    return fmt::format("smtp; {}", clean_text(reply, global));
}

std::string recipient_fields(const Context& c, const DsnRecipient& r) {
    std::string out;
    if (!r.original_recipient.empty())
        append_field(out, "Original-Recipient", original_recipient(r.original_recipient, c.global));
    append_field(out, "Final-Recipient", typed_address("rfc822", r.final_recipient, c.global));
    append_field(out, "Action", c.in.kind == DsnKind::Failure ? "failed" : "delayed");
    append_field(out, "Status", status_code(r.outcome));
    if (is_remote(r.outcome))
        append_field(out, "Remote-MTA",
                     fmt::format("dns; {}", clean_text(r.outcome.remote_host, false)));
    append_field(out, "Diagnostic-Code", diagnostic(r.outcome, c.global));
    if (r.last_attempt_unix > 0)
        append_field(out, "Last-Attempt-Date", format_rfc5322_date(r.last_attempt_unix));
    if (c.in.kind == DsnKind::Delay && r.will_retry_until_unix > 0)
        append_field(out, "Will-Retry-Until", format_rfc5322_date(r.will_retry_until_unix));
    return out;
}

// RFC 3464 2.2, in its order; the queue id as an extension field so the
// sender can quote it to us.
std::string message_fields(const Context& c) {
    std::string out;
    if (!c.in.envid.empty())
        append_field(out, "Original-Envelope-Id", envid_value(c.in.envid));
    append_field(out, "Reporting-MTA", fmt::format("dns; {}", c.host));
    if (c.in.arrival_unix > 0)
        append_field(out, "Arrival-Date", format_rfc5322_date(c.in.arrival_unix));
    if (!c.in.queue_id.empty())
        append_field(out, "X-Ember-Queue-ID", clean_text(c.in.queue_id, false));
    return out;
}

std::string status_part(const Context& c) {
    std::string body = message_fields(c);
    for (const auto& r : c.in.recipients) {
        body += kCrlf;
        body += recipient_fields(c, r);
    }
    std::string out;
    append_field(out, "Content-Description", "Delivery report");
    append_field(out, "Content-Type",
                 c.global ? "message/global-delivery-status" : "message/delivery-status");
    if (!is_ascii(body))
        append_field(out, "Content-Transfer-Encoding", "8bit");
    return out + std::string(kCrlf) + body;
}

// ---- assembly ---------------------------------------------------------------

bool is_bchar(char c) {
    return is_alnum(c) || std::string_view("'()+_,-./:=?").find(c) != std::string_view::npos;
}

// Postfix's form, queue id "." time "/" host, in bchars (RFC 2046 5.1.1).
std::string boundary_base(const Context& c) {
    std::string out;
    for (const char ch : fmt::format("{}.{}/{}", c.in.queue_id, c.in.now_unix, c.host)) {
        if (out.size() == kBoundaryBase)
            break;
        out += is_bchar(ch) ? ch : '_';
    }
    return out;
}

// N when `rest` starts with ".N=", the form of our suffixed boundaries.
std::optional<std::uint64_t> boundary_suffix(std::string_view rest) {
    if (rest.empty() || rest.front() != '.')
        return std::nullopt;
    std::uint64_t n = 0;
    std::size_t i = 1;
    for (; i < rest.size() && i < 12 && rest[i] >= '0' && rest[i] <= '9'; ++i)
        n = n * 10 + static_cast<std::uint64_t>(rest[i] - '0');
    if (i == 1 || i >= rest.size() || rest[i] != '=')
        return std::nullopt;
    return n;
}

// A boundary that occurs in no part (RFC 2046 5.1.1), even as a prefix: the
// base when it is absent, else base ".N=" with the smallest N no occurrence
// of the base continues into. One pass, so hostile content costs linear time.
std::string choose_boundary(const std::string& base, const std::vector<std::string>& parts) {
    const auto needle = "--" + base;
    bool seen = false;
    std::vector<std::uint64_t> taken;
    for (const auto& part : parts) {
        for (auto pos = part.find(needle); pos != std::string::npos;
             pos = part.find(needle, pos + 1)) {
            seen = true;
            if (const auto n = boundary_suffix(std::string_view(part).substr(pos + needle.size())))
                taken.push_back(*n);
        }
    }
    if (!seen)
        return base;
    std::sort(taken.begin(), taken.end());
    std::uint64_t n = 0;
    for (const auto t : taken)
        n += t == n ? 1 : 0;
    return fmt::format("{}.{}=", base, n);
}

// The original's Message-ID when it is a plain msg-id, for threading
// (In-Reply-To, References: RFC 5322 3.6.4), as Postfix does.
std::optional<std::string> original_message_id(std::string_view message) {
    const auto block = parse_header_block(message.substr(0, header_end(message)));
    const auto* field = find_field(block, "Message-ID");
    if (field == nullptr)
        return std::nullopt;
    auto id = clean_text(unfold(field->value), false);
    if (id.size() < 3 || id.size() > 250 || id.front() != '<' || id.back() != '>' ||
        !std::all_of(id.begin(), id.end(), is_graphic))
        return std::nullopt;
    return id;
}

std::string top_headers(const Context& c, std::string_view boundary, bool eight_bit) {
    const bool failure = c.in.kind == DsnKind::Failure;
    const auto queue_id = token(c.in.queue_id, "-_");
    std::string out;
    append_field(out, "From", fmt::format("Mail Delivery System <MAILER-DAEMON@{}>", c.host));
    append_field(out, "To", fmt::format("<{}>", clean_text(c.in.original_sender, true)));
    append_field(out, "Subject",
                 failure ? "Undelivered Mail Returned to Sender"
                         : "Delayed Mail (still being retried)");
    append_field(out, "Date", format_rfc5322_date(c.in.now_unix));
    append_field(out, "Message-ID",
                 fmt::format("<{}.{}.{}@{}>", queue_id.empty() ? "0" : queue_id,
                             failure ? "dsn" : "delay", c.in.now_unix, c.host));
    if (const auto id = original_message_id(c.in.original_message)) {
        append_field(out, "In-Reply-To", *id);
        append_field(out, "References", *id);
    }
    append_field(out, "Auto-Submitted", "auto-replied"); // RFC 3834 5
    append_field(out, "MIME-Version", "1.0");
    // RFC 6522 3, RFC 6533 6: the global report type goes with the global status part.
    append_field(out, "Content-Type",
                 fmt::format("multipart/report; report-type={}; boundary=\"{}\"",
                             c.global ? "global-delivery-status" : "delivery-status", boundary));
    append_field(out, "Content-Transfer-Encoding", eight_bit ? "8bit" : "7bit");
    return out;
}

} // namespace

std::optional<Dsn> build_dsn(const DsnInput& input) {
    if (input.original_sender.empty() || input.recipients.empty())
        return std::nullopt;
    const auto c = make_context(input);
    const auto plan = plan_return(input);
    std::vector<std::string> parts{human_part(c, plan), status_part(c)};
    if (plan.what != Returned::Nothing)
        parts.push_back(returned_part(c, plan));
    const auto boundary = choose_boundary(boundary_base(c), parts);
    const bool eight_bit =
        std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return !is_ascii(p); });

    Dsn dsn;
    dsn.recipient = input.original_sender;
    dsn.content = top_headers(c, boundary, eight_bit);
    dsn.content += "\r\nThis is a MIME-encapsulated message.\r\n";
    for (const auto& part : parts)
        dsn.content += fmt::format("\r\n--{}\r\n{}", boundary, part);
    dsn.content += fmt::format("\r\n--{}--\r\n", boundary);
    dsn.body = eight_bit ? core::BodyType::EightBitMime : core::BodyType::SevenBit;
    dsn.smtputf8 = !is_ascii(input.original_sender);
    return dsn;
}

} // namespace ember::smtp
