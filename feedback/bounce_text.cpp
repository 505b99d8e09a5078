#include "feedback/bounce_text.hpp"

#include "feedback/classify.hpp"

#include "core/assert.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <memory>
#include <utility>

namespace ember::feedback {
namespace {

// More recipient lines than any real report has: past this a message is
// hostile, and reading on would cost quadratic time in merge().
constexpr std::size_t kMaxTextRecipients = 500;
// A recipient's diagnostic and block are a few lines; longer is noise.
constexpr std::size_t kMaxDiagnostic = 4096;

// An addr-spec as bounces write it: dot-atom local part (quoted local
// parts are rare enough in bounces to skip), a domain with at least one dot.
#define EMBER_ADDR R"([A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+)"

std::unique_ptr<re2::RE2> compile(const char* pattern) {
    re2::RE2::Options options;
    options.set_log_errors(false);
    options.set_case_sensitive(false);
    auto re = std::make_unique<re2::RE2>(pattern, options);
    EMBER_ASSERT(re->ok()); // our own patterns: a typo is a bug
    return re;
}

// Lines where the returned message starts (each MTA's own wording).
const re2::RE2& original_marker() {
    static const auto re = compile(
        R"(^\s*(?:[-=_*]+\s*)?(?:original message(?: follows| headers| header)?|original message text|returned message|unsent message follows|message text follows|below this line is a copy of the message|this is a copy of (?:the|your) message|(?:a )?copy of the (?:original )?message(?: header)? (?:follows|is attached|below)|the (?:header|headers) of the original message (?:is|are) following|headers? of the original message|message headers follow|included is a copy of the message header|below is a copy of the original message|original message headers|the original message headers? (?:is|are) included|forwarded message)\b.*$)");
    return *re;
}

const re2::RE2& inline_headers_start() {
    static const auto re = compile(
        R"(^(?:Return-Path:\s*<|Received: (?:from|by) )|^Content-Type:\s*(?:message/rfc822|text/rfc822-headers))");
    return *re;
}

// Summary lines of the returned message (Exchange's "To: ... Subject: ..."),
// never a recipient anchor.
const re2::RE2& header_like() {
    static const auto re = compile(
        R"(^\s*(?:to|from|cc|bcc|subject|sent|date|reply-to|return-path|delivered-to|mail from|x-[a-z0-9-]+|message-id|received|sender|envelope-to|reporting-mta|arrival-date|received-from-mta|remote-mta|original-recipient|final-recipient|action|status|diagnostic-code)\s*:)");
    return *re;
}

// How a recipient line is laid out: which groups hold what.
enum class Shape {
    Path,         // (whole line)(path): Exim's "pipe to |cmd", "save to /file"
    Address,      // (address)
    AddressRest,  // (address)(reason after it)
    RestAddress,  // (reason before it)(address)
    ReplyAddress, // (code)(address)(text): Sendmail's "550 <a@b>... User unknown"
    Sentence,     // (address) somewhere in a sentence; the line is the context
};

struct AnchorPattern {
    std::unique_ptr<re2::RE2> re;
    Shape shape;
};

const std::vector<AnchorPattern>& anchor_patterns() {
    static const auto patterns = [] {
        std::vector<AnchorPattern> p;
        // Exim's local deliveries: "  pipe to |/usr/bin/x", "  save to /var/mail/x"
        p.push_back({compile(R"(^\s+((?:pipe|save) to (\S.*?))\s*$)"), Shape::Path});
        // "  a@b", "<a@b>:", "* a@b", "a@b..."
        p.push_back(
            {compile(R"(^\s*[*>•·-]*\s*<?()" EMBER_ADDR R"()>?\s*(?::|\.\.\.|,|;|\.)?\s*$)"),
             Shape::Address});
        // "<a@b>: host ... said: ...", "<a@b>... User unknown", "<a@b> (reason)"
        p.push_back({compile(R"(^\s*<()" EMBER_ADDR R"()>\s*(?::|\.\.\.|,)?\s*(.+)$)"),
                     Shape::AddressRest});
        // "a@b: Domain does not exist" (OpenSMTPD, Courier)
        p.push_back(
            {compile(R"(^\s*()" EMBER_ADDR R"()\s*(?::|\.\.\.)\s+(.+)$)"), Shape::AddressRest});
        // "a@b [User unknown]", "a@b (reason)"
        p.push_back(
            {compile(R"(^\s*<?()" EMBER_ADDR R"()>?\s+([\[(].*[\])])\s*$)"), Shape::AddressRest});
        // "a@b Invalid Address, ERROR_CODE :550" (Zoho): a reply after the address
        p.push_back(
            {compile(
                 R"(^\s*<?()" EMBER_ADDR
                 R"()>?,?\s+(.*(?:[^0-9.][245][0-9][0-9](?:[^0-9]|$)|[245]\.[0-9]{1,3}\.[0-9]{1,3}).*)$)"),
             Shape::AddressRest});
        // "a@b on Thu, 29 Apr 2010 ..." (Exchange 2003), "a@b<mailto:a@b>" (Office 365)
        p.push_back(
            {compile(R"(^\s*()" EMBER_ADDR R"()\s*(?:<mailto:[^>]*>|\(.*\))?\s*(?:on\s+.+)?$)"),
             Shape::Address});
        // "Invalid final delivery userid: a@b" (IMail): the reason, then the address
        p.push_back({compile(R"(^\s*([^:<>]*[A-Za-z][^:<>]*):\s*<?()" EMBER_ADDR R"()>?\.?\s*$)"),
                     Shape::RestAddress});
        // "550 5.1.1 <a@b>... User unknown", "<<< 550 <a@b>... no such user" (Sendmail)
        p.push_back(
            {compile(
                 R"(^\s*(?:<<<\s*)?([245][0-9][0-9][ -](?:[245]\.[0-9]{1,3}\.[0-9]{1,3}\s+)?)<()" EMBER_ADDR
                 R"()>\.\.\.\s*(.*)$)"),
             Shape::ReplyAddress});
        // Sentences naming the recipient: "could not be delivered to: <a@b>",
        // "There was an error delivering your mail to <a@b>.",
        // "The following recipients returned permanent errors: a@b".
        p.push_back(
            {compile(
                 R"(\b(?:delivered to|delivering your (?:mail|message) to|deliver (?:your message |the mail )?to|delivery to|failed (?:for|to)|recipients?(?:\(s\))?|address(?:es)?(?:\(es\))?|addressee|mailbox|user(?:id)?|message to|unable to deliver to|not reach|undeliverable to|returned to sender from|errors)(?:\s+(?:is|was|are))?(?:\s*[:,]\s*|\s+)<?()" EMBER_ADDR
                 R"()>?)"),
             Shape::Sentence});
        return p;
    }();
    return patterns;
}

struct FormatSignature {
    std::unique_ptr<re2::RE2> re;
    const char* name;
};

const std::vector<FormatSignature>& format_signatures() {
    static const auto table = [] {
        std::vector<FormatSignature> t;
        const std::pair<const char*, const char*> rows[] = {
            {R"(this is the qmail-send program|\(#[45]\.[0-9]+\.[0-9]+\)$)", "qmail"},
            {R"(this is the mail system at host|this is the postfix program)", "postfix"},
            {R"(this message was created automatically by mail delivery software)", "exim"},
            {R"(following addresses had (?:permanent fatal|transient non-fatal) errors|transcript of session follows)",
             "sendmail"},
            {R"(did not reach the following recipient|delivery has failed to these recipients|your message couldn't be delivered|diagnostic information for administrators|generating server:)",
             "exchange"},
            {R"(delivery to the following recipients? failed|google tried to deliver your message|the email account that you tried to reach)",
             "gmail"},
            {R"(sorry, we were unable to deliver your message to the following address)", "yahoo"},
            {R"(running the courier mail server|this is a delivery status notification from)",
             "courier"},
            {R"(this is the mailer-daemon, please do not reply to this e-?mail)", "opensmtpd"},
            {R"(this is the dragonfly mail agent)", "dragonfly"},
            {R"(was not delivered to:|lotus domino|notes\.net)", "domino"},
            {R"(an error occurred while trying to deliver the mail to the following recipients)",
             "amazonworkmail"},
            {R"(could not be delivered to|message could not be delivered|undeliverable|delivery (?:has )?failed|unable to deliver|permanent (?:fatal )?errors?)",
             "text"},
        };
        for (const auto& [pattern, name] : rows)
            t.push_back({compile(pattern), name});
        return t;
    }();
    return table;
}

struct CommandPattern {
    std::unique_ptr<re2::RE2> re;
};

const std::vector<CommandPattern>& command_patterns() {
    static const auto table = [] {
        std::vector<CommandPattern> t;
        for (
            const char* pattern : {
                // Postfix: "(in reply to RCPT TO command)"
                R"(in reply to (?:the )?(rcpt to|mail from|end of data|data|ehlo|helo|lhlo|starttls|auth|bdat)\b)",
                // Exim: "SMTP error from remote mail server after RCPT TO:<...>"
                R"(\bafter (?:pipelined )?(rcpt to|mail from|end of data|data|initial connection|helo|ehlo|lhlo|starttls|auth|bdat)\b)",
                // DragonFly: "did not like our RCPT TO"; qmail: "most progress was RCPT TO
                // response"
                R"((?:did not like our|progress was) (rcpt to|mail from|data|ehlo|helo)\b)",
                // qmail: "does not like recipient", "does not like sender",
                // "Connected to ... but my name was rejected" (HELO), "but sender was rejected"
                R"(does not like (recipient|sender)\b)",
                R"(\bbut (my name|sender|recipient) was rejected)",
                // m-FILTER: "-------SMTP command\nDATA"
                R"(smtp command\s*:?\s*(rcpt to|mail from|data|rcpt|mail)\b)",
                // Yahoo: "[RCPT_TO]"; X3: "SMTP:RCPT host"; X6: "(DATA)"
                R"(\[(rcpt_to|mail_from|data)\])",
                R"(\bsmtp:(rcpt|mail|data)\b)",
                R"(\((rcpt|mail|data)\))",
                // Sendmail's transcript: ">>> RCPT To:<a@b>"
                R"(>>>\s*(rcpt to|mail from|data|ehlo|helo|starttls|quit)\b)",
                R"(\b(?:in response to|during) (?:the )?(rcpt to|mail from|data|ehlo|helo|starttls|connect(?:ion)?)\b)",
            })
            t.push_back({compile(pattern)});
        return t;
    }();
    return table;
}

const re2::RE2& reply_evidence() {
    static const auto re = compile(
        R"((?:^|[\s:(\[<"'#])(?:[245][0-9][0-9](?:[ -]|$)|[245]\.[0-9]{1,3}\.[0-9]{1,3}\b))");
    return *re;
}

// Where in a paragraph the remote reply starts: after "said:" and similar,
// or at the first code followed by a status or text.
const re2::RE2& reply_start() {
    static const auto re = compile(
        R"((?:^|[\s:(\[<"'])([245][0-9][0-9][ -](?:[245]\.[0-9]{1,3}\.[0-9]{1,3}\b|[ -]*[A-Za-z<#(\[])))");
    return *re;
}

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos)
        return {};
    return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) {
        return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    });
    return out;
}

std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        const auto end = std::min(text.find('\n', pos), text.size());
        lines.push_back(text.substr(pos, end - pos));
        if (end == text.size())
            break;
        pos = end + 1;
    }
    return lines;
}

// A bounce forwarded by a person ("> " on every line) reads as the bounce.
std::string unquote(std::string_view text) {
    const auto lines = split_lines(text);
    const auto quoted = std::count_if(lines.begin(), lines.end(),
                                      [](std::string_view l) { return l.starts_with('>'); });
    if (quoted < 5)
        return std::string(text);
    std::string out;
    for (auto line : lines) {
        if (line.starts_with('>')) {
            line.remove_prefix(1);
            if (line.starts_with(' '))
                line.remove_prefix(1);
        }
        out.append(line);
        out += '\n';
    }
    return out;
}

// Index of the first line of the returned message, or lines.size().
std::size_t find_cut(const std::vector<std::string_view>& lines) {
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (re2::RE2::PartialMatch(lines[i], original_marker()))
            return i;
        const bool after_blank = i > 0 && trim(lines[i - 1]).empty();
        if (after_blank && re2::RE2::PartialMatch(lines[i], inline_headers_start()))
            return i;
    }
    return lines.size();
}

struct Anchor {
    std::size_t line = 0;
    std::string address;
    std::string rest;    // the reason on the same line
    std::string context; // a sentence naming the address: read only when nothing else says why
};

bool has_reply(std::string_view text);

bool match_anchor(std::string_view line, const AnchorPattern& p, Anchor& out) {
    std::string a;
    std::string b;
    std::string c;
    switch (p.shape) {
    case Shape::Path:
        if (!re2::RE2::PartialMatch(line, *p.re, &b, &a))
            return false;
        out.address = a.substr(0, a.find(" generated by"));
        out.rest = b;
        return true;
    case Shape::Address:
        if (!re2::RE2::PartialMatch(line, *p.re, &a))
            return false;
        out.address = a;
        return true;
    case Shape::AddressRest:
        if (!re2::RE2::PartialMatch(line, *p.re, &a, &b))
            return false;
        out.address = a;
        out.rest = b;
        return true;
    case Shape::RestAddress:
        if (!re2::RE2::PartialMatch(line, *p.re, &b, &a))
            return false;
        out.address = a;
        out.rest = b;
        return true;
    case Shape::ReplyAddress:
        if (!re2::RE2::PartialMatch(line, *p.re, &c, &a, &b))
            return false;
        out.address = a;
        out.rest = c + b;
        return true;
    case Shape::Sentence: {
        re2::StringPiece at;
        if (!re2::RE2::PartialMatch(line, *p.re, &at))
            return false;
        // An address after a quoted remote reply is the reply's subject
        // (often the sender's address), not a recipient heading.
        const auto before = line.substr(0, static_cast<std::size_t>(at.data() - line.data()));
        if (has_reply(before))
            return false;
        out.address = std::string(at);
        out.context = std::string(trim(line));
        return true;
    }
    }
    return false;
}

bool find_anchor(std::string_view line, Anchor& out) {
    if (re2::RE2::PartialMatch(line, header_like()))
        return false;
    for (const auto& p : anchor_patterns()) {
        if (match_anchor(line, p, out))
            return true;
    }
    return false;
}

// The reporting system's own address, quoted in its report.
bool skip_address(std::string_view address) {
    const auto a = lower(address);
    return a.starts_with("mailer-daemon@") || a.starts_with("mail-daemon@");
}

std::vector<Anchor> find_anchors(const std::vector<std::string_view>& lines) {
    std::vector<Anchor> anchors;
    for (std::size_t i = 0; i < lines.size() && anchors.size() < kMaxTextRecipients; ++i) {
        Anchor a;
        if (!find_anchor(lines[i], a) || skip_address(a.address))
            continue;
        a.line = i;
        anchors.push_back(std::move(a));
    }
    return anchors;
}

std::string join(const std::vector<std::string_view>& lines) {
    std::string out;
    for (const auto line : lines) {
        const auto t = trim(line);
        if (t.empty())
            continue;
        if (!out.empty())
            out += ' ';
        out.append(t);
    }
    return out;
}

bool has_reply(std::string_view text) {
    return re2::RE2::PartialMatch(text, reply_evidence());
}

// How much of the remote server's answer a text holds: 2 a reply code,
// 1 only an enhanced status, 0 nothing.
int evidence(std::string_view text) {
    static const auto code = compile(R"((?:^|[\s:(\[<"'#])[245][0-9][0-9](?:[ -]|$))");
    if (re2::RE2::PartialMatch(text, *code))
        return 2;
    return has_reply(text) ? 1 : 0;
}

// The paragraphs of a block (the anchor's own rest first, joined to the
// paragraph that follows it).
std::vector<std::string> paragraphs(const Anchor& anchor,
                                    const std::vector<std::string_view>& lines, std::size_t end) {
    std::vector<std::string> out;
    std::vector<std::string_view> current;
    if (!trim(anchor.rest).empty())
        current.push_back(anchor.rest);
    for (std::size_t i = anchor.line + 1; i < end; ++i) {
        if (trim(lines[i]).empty()) {
            if (!current.empty())
                out.push_back(join(current));
            current.clear();
            continue;
        }
        current.push_back(lines[i]);
    }
    if (!current.empty())
        out.push_back(join(current));
    if (out.empty() && !anchor.context.empty())
        out.push_back(anchor.context);
    if (out.empty()) {
        // Nothing after the address: the reason was written before it
        // (Lotus Notes: the reason line, then the address).
        auto first = anchor.line;
        while (first > 0 && !trim(lines[first - 1]).empty())
            --first;
        const std::vector<std::string_view> before(
            lines.begin() + static_cast<std::ptrdiff_t>(first),
            lines.begin() + static_cast<std::ptrdiff_t>(anchor.line));
        if (!before.empty())
            out.push_back(join(before));
    }
    return out;
}

std::vector<std::string> region_paragraphs(const std::vector<std::string_view>& lines) {
    std::vector<std::string> out;
    std::vector<std::string_view> current;
    for (const auto line : lines) {
        if (trim(line).empty()) {
            if (!current.empty())
                out.push_back(join(current));
            current.clear();
        } else {
            current.push_back(line);
        }
    }
    if (!current.empty())
        out.push_back(join(current));
    return out;
}

std::string pick_diagnostic(const std::vector<std::string>& paras) {
    int best = 0;
    for (const auto& p : paras)
        best = std::max(best, evidence(p));
    for (const auto& p : paras) {
        if (best == 0 || evidence(p) < best)
            continue;
        re2::StringPiece code;
        if (re2::RE2::PartialMatch(p, reply_start(), &code)) {
            const auto at = static_cast<std::size_t>(code.data() - p.data());
            return p.substr(at);
        }
        return p;
    }
    if (paras.empty())
        return "";
    // "For the following reason:" introduces the paragraph after it.
    if (paras.size() > 1 && paras.front().ends_with(':'))
        return paras[0] + " " + paras[1];
    return paras.front();
}

TextRecipient read_block(const Anchor& anchor, const std::vector<std::string_view>& lines,
                         std::size_t end) {
    const auto paras = paragraphs(anchor, lines, end);
    TextRecipient r;
    r.address = anchor.address;
    r.diagnostic = normalize_text(pick_diagnostic(paras).substr(0, kMaxDiagnostic));
    for (const auto& p : paras) {
        if (r.block.size() >= kMaxDiagnostic)
            break;
        r.block += (r.block.empty() ? "" : " ") + p;
    }
    r.block = normalize_text(r.block.substr(0, kMaxDiagnostic));
    r.command = find_command(r.block);
    return r;
}

// Merges mentions of one address: the first block stays, a later one
// with more of the remote reply replaces its diagnostic. Anchors are
// capped (kMaxTextRecipients), so the scan stays bounded.
void merge(std::vector<TextRecipient>& out, TextRecipient r) {
    const auto key = lower(r.address);
    for (auto& existing : out) {
        if (lower(existing.address) != key)
            continue;
        if (evidence(r.diagnostic) > evidence(existing.diagnostic))
            existing.diagnostic = r.diagnostic;
        if (existing.command == Command::Unknown)
            existing.command = r.command;
        if (existing.block.size() < 4096)
            existing.block += " " + r.block;
        return;
    }
    out.push_back(std::move(r));
}

std::string decode_entity(std::string_view name) {
    static const std::pair<std::string_view, std::string_view> kEntities[] = {
        {"lt", "<"}, {"gt", ">"}, {"amp", "&"}, {"quot", "\""}, {"apos", "'"}, {"nbsp", " "}};
    for (const auto& [n, v] : kEntities) {
        if (name == n)
            return std::string(v);
    }
    if (name.size() > 1 && name[0] == '#') {
        int value = 0;
        for (const char c : name.substr(1)) {
            if (!std::isdigit(static_cast<unsigned char>(c)) || value > 0x10FFFF)
                return "";
            value = value * 10 + (c - '0');
        }
        return value > 0 && value < 128 ? std::string(1, static_cast<char>(value)) : " ";
    }
    return "";
}

} // namespace

std::string detect_format(std::string_view text) {
    for (const auto& sig : format_signatures()) {
        if (re2::RE2::PartialMatch(text, *sig.re))
            return sig.name;
    }
    return "";
}

Command find_command(std::string_view text) {
    for (const auto& p : command_patterns()) {
        std::string word;
        if (!re2::RE2::PartialMatch(text, *p.re, &word))
            continue;
        auto w = lower(word);
        std::replace(w.begin(), w.end(), '_', ' ');
        if (w == "initial connection" || w.starts_with("connect"))
            return Command::Connect;
        if (w == "recipient")
            return Command::Rcpt;
        if (w == "sender")
            return Command::Mail;
        if (w == "my name")
            return Command::Ehlo;
        const auto c = parse_command(w);
        if (c != Command::Unknown)
            return c;
    }
    return Command::Unknown;
}

std::string html_to_text(std::string_view html) {
    static const auto tag = compile(R"(^(</?([a-z][a-z0-9]*)(?:\s[^<>@]*)?/?>))");
    static const auto block = compile(R"(^(?:br|p|div|tr|li|table|h[1-6]|pre|blockquote)$)");
    std::string out;
    out.reserve(html.size());
    for (std::size_t i = 0; i < html.size();) {
        const char c = html[i];
        if (c == '<') {
            re2::StringPiece rest(html.data() + i, html.size() - i);
            std::string name;
            re2::StringPiece whole;
            if (re2::RE2::PartialMatch(rest, *tag, &whole, &name)) {
                if (re2::RE2::FullMatch(name, *block))
                    out += '\n';
                i += whole.size();
                continue;
            }
        } else if (c == '&') {
            const auto semi = html.find(';', i);
            if (semi != std::string_view::npos && semi - i <= 8) {
                const auto decoded = decode_entity(lower(html.substr(i + 1, semi - i - 1)));
                if (!decoded.empty()) {
                    out += decoded;
                    i = semi + 1;
                    continue;
                }
            }
        }
        out += c;
        ++i;
    }
    return out;
}

TextReport read_bounce_text(std::string_view text) {
    TextReport report;
    const auto unquoted = unquote(text);
    const auto lines = split_lines(unquoted);
    const auto cut = find_cut(lines);
    const std::vector<std::string_view> region(lines.begin(),
                                               lines.begin() + static_cast<std::ptrdiff_t>(cut));
    for (const auto line : region) {
        report.region.append(line);
        report.region += '\n';
    }
    for (std::size_t i = cut; i < lines.size(); ++i) {
        report.rest.append(lines[i]);
        report.rest += '\n';
    }
    report.format = detect_format(report.region);
    const auto anchors = find_anchors(region);
    for (std::size_t k = 0; k < anchors.size();) {
        // A block runs to the next anchor that names another address;
        // mentions of the same address inside it belong to it.
        std::size_t next = k + 1;
        while (next < anchors.size() && lower(anchors[next].address) == lower(anchors[k].address))
            ++next;
        const auto end = next < anchors.size() ? anchors[next].line : region.size();
        merge(report.recipients, read_block(anchors[k], region, end));
        k = next;
    }
    if (report.recipients.size() == 1) {
        auto& r = report.recipients.front();
        if (r.command == Command::Unknown)
            r.command = find_command(normalize_text(report.region));
        // One recipient and no reply in its block: the report's reply
        // paragraph, wherever it stands, is about that recipient.
        if (evidence(r.diagnostic) == 0) {
            const auto whole = pick_diagnostic(region_paragraphs(region));
            if (evidence(whole) > 0)
                r.diagnostic = normalize_text(whole);
        }
    }
    return report;
}

} // namespace ember::feedback
