#include "smtp/command.hpp"

#include "smtp/address.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <vector>

namespace ember::smtp {

namespace {

struct VerbName {
    std::string_view name;
    Verb verb;
};

constexpr std::array<VerbName, 14> kVerbs{{{"HELO", Verb::Helo},
                                           {"EHLO", Verb::Ehlo},
                                           {"MAIL", Verb::Mail},
                                           {"RCPT", Verb::Rcpt},
                                           {"DATA", Verb::Data},
                                           {"BDAT", Verb::Bdat},
                                           {"RSET", Verb::Rset},
                                           {"NOOP", Verb::Noop},
                                           {"QUIT", Verb::Quit},
                                           {"VRFY", Verb::Vrfy},
                                           {"EXPN", Verb::Expn},
                                           {"HELP", Verb::Help},
                                           {"STARTTLS", Verb::StartTls},
                                           {"AUTH", Verb::Auth}}};

// Postfix's smtpd_forbidden_commands (CONNECT, GET, POST) and the other HTTP
// methods: the first line an HTTP client or proxy sends.
constexpr std::array<std::string_view, 9> kHttpMethods{
    "GET", "POST", "CONNECT", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"};

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && ascii_lower(a) == ascii_lower(b);
}

bool istarts_with(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

bool is_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool has_control(std::string_view text) {
    for (const char c : text) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

// Which command a path belongs to: its error codes and texts differ.
struct PathKind {
    std::string_view syntax;   // RFC 5321 4.1.1.2/3 command syntax for 501 5.5.4
    std::string_view enhanced; // bad address syntax: 5.1.7 sender, 5.1.3 recipient
    std::string_view role;     // "sender" or "recipient"
};
constexpr PathKind kMailPath{"Syntax: MAIL FROM:<address>", "5.1.7", "sender"};
constexpr PathKind kRcptPath{"Syntax: RCPT TO:<address>", "5.1.3", "recipient"};

// An AUTH= mailbox is a path's worth of xtext, each octet at worst "+XX".
constexpr std::size_t kMaxAuthParam = 3 * kMaxPath;
// RFC 3461 4.2: the ORCPT value is at most 500 characters.
constexpr std::size_t kMaxOrcpt = 500;

Reply param_error(std::string_view text) {
    return make_reply(501, "5.5.4", text);
}

struct Param {
    std::string_view keyword;
    std::optional<std::string_view> value;
};

struct SplitArgs {
    std::string_view path;   // between the angle brackets
    std::string_view params; // after the path, leading spaces removed
};

// "FROM:<path> params": the prefix is case-insensitive, one optional space may
// follow the colon (many clients send it). The closing '>' is found outside
// any quoted local part, which may itself hold '>'.
std::optional<SplitArgs> split_args(std::string_view args, std::string_view prefix) {
    if (!istarts_with(args, prefix))
        return std::nullopt;
    args.remove_prefix(prefix.size());
    if (!args.empty() && args.front() == ' ')
        args.remove_prefix(1);
    if (args.empty() || args.front() != '<')
        return std::nullopt;
    bool quoted = false;
    for (std::size_t i = 1; i < args.size(); ++i) {
        if (quoted && args[i] == '\\') {
            ++i;
        } else if (args[i] == '"') {
            quoted = !quoted;
        } else if (args[i] == '>' && !quoted) {
            auto rest = args.substr(i + 1);
            if (!rest.empty() && rest.front() != ' ')
                return std::nullopt;
            rest.remove_prefix(std::min(rest.find_first_not_of(' '), rest.size()));
            return SplitArgs{args.substr(1, i - 1), rest};
        }
    }
    return std::nullopt;
}

bool is_esmtp_keyword(std::string_view kw) {
    if (kw.empty() || !is_alnum(kw.front()))
        return false;
    for (const char c : kw) {
        if (!is_alnum(c) && c != '-')
            return false;
    }
    return true;
}

// esmtp-value = 1*(%d33-60 / %d62-126), plus UTF8-non-ascii (RFC 6531 4.3);
// whether non-ASCII may stand in a given parameter is that parameter's rule.
bool is_esmtp_value(std::string_view value) {
    for (const char c : value) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 33 || u == '=' || u == 127)
            return false;
    }
    return !value.empty() && is_valid_utf8(value);
}

// Params are separated by one or more spaces (RFC 5321 says one; extra
// spaces hurt nobody). Keywords are compared case-insensitively.
std::variant<std::vector<Param>, Reply> split_params(std::string_view text) {
    std::vector<Param> params;
    while (!text.empty()) {
        const auto sp = text.find(' ');
        const auto token = text.substr(0, sp);
        text = sp == std::string_view::npos ? std::string_view() : text.substr(sp + 1);
        if (token.empty())
            continue;
        const auto eq = token.find('=');
        Param p{token.substr(0, eq), std::nullopt};
        if (eq != std::string_view::npos)
            p.value = token.substr(eq + 1);
        if (!is_esmtp_keyword(p.keyword) || (p.value && !is_esmtp_value(*p.value)))
            return param_error("Bad parameter syntax");
        for (const auto& seen : params) {
            if (iequals(seen.keyword, p.keyword))
                return param_error(fmt::format("Duplicate option: {:.64}", p.keyword));
        }
        params.push_back(p);
    }
    return params;
}

Reply unsupported(std::string_view keyword) {
    return make_reply(555, "5.5.4", fmt::format("Unsupported option: {:.64}", keyword));
}

// The mailbox of a path, its source route dropped (RFC 5321 4.1.2 A-d-l,
// 3.6.1: accepted and ignored), or nullopt when the route is malformed.
std::optional<std::string_view> strip_route(std::string_view path, bool utf8) {
    if (path.empty() || path.front() != '@')
        return path;
    const auto colon = path.find(':');
    if (colon == std::string_view::npos)
        return std::nullopt;
    auto route = path.substr(0, colon);
    while (!route.empty()) {
        const auto comma = route.find(',');
        const auto at_domain = route.substr(0, comma);
        if (at_domain.size() < 2 || at_domain.front() != '@' ||
            !is_valid_domain(at_domain.substr(1), utf8))
            return std::nullopt;
        route = comma == std::string_view::npos ? std::string_view() : route.substr(comma + 1);
        if (comma != std::string_view::npos && route.empty())
            return std::nullopt;
    }
    return path.substr(colon + 1);
}

// Checks a non-null path and returns its mailbox, or the reply to send.
std::variant<std::string, Reply> check_path(std::string_view path, bool utf8,
                                            const PathKind& kind) {
    const auto bad = [&](std::string_view why) {
        return make_reply(501, kind.enhanced,
                          fmt::format("Bad {} address syntax: {}", kind.role, why));
    };
    if (path.size() + 2 > kMaxPath)
        return bad("path longer than 256 octets"); // RFC 5321 4.5.3.1.3, 4.5.3.1.10
    if (!utf8 && !is_ascii(path))                  // RFC 6531 3.5
        return make_reply(553, "5.6.7",
                          fmt::format("Non-ASCII {} address requires SMTPUTF8", kind.role));
    const auto mailbox = strip_route(path, utf8);
    if (!mailbox)
        return bad("bad source route");
    if (const auto why = mailbox_problem(*mailbox, utf8); !why.empty())
        return bad(why);
    return std::string(*mailbox);
}

std::optional<std::uint64_t> parse_size(std::string_view digits) {
    if (digits.empty() || digits.size() > 20)
        return std::nullopt;
    std::uint64_t value = 0;
    const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc{} || ptr != digits.data() + digits.size())
        return std::nullopt; // not all digits, or over 2^64-1
    return value;
}

// A decoded xtext value that goes into a DSN header later (ENVID, AUTH, ORCPT):
// control characters there would let a client forge header lines.
std::optional<std::string> decode_printable(std::optional<std::string_view> value,
                                            std::size_t max_encoded) {
    if (!value || value->size() > max_encoded)
        return std::nullopt;
    auto decoded = xtext_decode(*value);
    if (!decoded || has_control(*decoded))
        return std::nullopt;
    return decoded;
}

std::optional<Reply> apply_body(MailFrom& mail, std::optional<std::string_view> value) {
    const auto v = ascii_lower(value.value_or(""));
    if (v == "7bit")
        mail.body = core::BodyType::SevenBit;
    else if (v == "8bitmime")
        mail.body = core::BodyType::EightBitMime;
    else if (v == "binarymime") // RFC 3030: only with CHUNKING + BINARYMIME advertised
        return make_reply(555, "5.5.4", "BODY=BINARYMIME is not supported");
    else
        return param_error("Bad BODY option");
    return std::nullopt;
}

std::optional<Reply> apply_ret(MailFrom& mail, std::optional<std::string_view> value) {
    const auto v = ascii_lower(value.value_or(""));
    if (v == "full")
        mail.ret = core::DsnRet::Full;
    else if (v == "hdrs")
        mail.ret = core::DsnRet::Headers;
    else
        return param_error("Bad RET option");
    return std::nullopt;
}

std::optional<Reply> apply_mail_param(MailFrom& mail, const Param& p) {
    const auto kw = ascii_lower(p.keyword);
    if (kw == "size") {
        mail.size = parse_size(p.value.value_or(""));
        return mail.size ? std::nullopt : std::optional(param_error("Bad SIZE option"));
    }
    if (kw == "body")
        return apply_body(mail, p.value);
    if (kw == "smtputf8") {
        mail.smtputf8 = true;
        return p.value ? std::optional(param_error("SMTPUTF8 takes no value")) : std::nullopt;
    }
    if (kw == "ret")
        return apply_ret(mail, p.value);
    if (kw == "envid") { // RFC 3461 4.4: 1 to 100 characters of xtext
        auto v = decode_printable(p.value, 100);
        mail.envid = v.value_or("");
        return v ? std::nullopt : std::optional(param_error("Bad ENVID option"));
    }
    if (kw == "auth") { // RFC 4954 5: an xtext mailbox or "<>"
        auto v = decode_printable(p.value, kMaxAuthParam);
        mail.auth_param = v.value_or("");
        return v ? std::nullopt : std::optional(param_error("Bad AUTH option"));
    }
    return unsupported(p.keyword);
}

std::optional<std::uint8_t> parse_notify(std::string_view list) {
    std::uint8_t flags = 0;
    while (true) {
        const auto comma = list.find(',');
        const auto item = ascii_lower(list.substr(0, comma));
        if (item == "never")
            flags |= core::kNotifyNever;
        else if (item == "success")
            flags |= core::kNotifySuccess;
        else if (item == "failure")
            flags |= core::kNotifyFailure;
        else if (item == "delay")
            flags |= core::kNotifyDelay;
        else
            return std::nullopt;
        if (comma == std::string_view::npos)
            break;
        list.remove_prefix(comma + 1);
    }
    // RFC 3461 4.1: NEVER stands alone.
    if ((flags & core::kNotifyNever) != 0 && flags != core::kNotifyNever)
        return std::nullopt;
    return flags;
}

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// "\x{HEX}" at the start of text (RFC 6533 3 EmbeddedUnicodeChar): appends the
// code point and returns the length consumed, 0 when malformed.
std::size_t take_embedded_char(std::string_view text, std::string& out) {
    if (text.size() < 5 || text.substr(0, 3) != "\\x{")
        return 0;
    const auto close = text.find('}', 3);
    const auto hex = text.substr(3, close == std::string_view::npos ? 0 : close - 3);
    std::uint32_t cp = 0;
    const auto [ptr, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), cp, 16);
    if (hex.size() < 2 || hex.size() > 6 || ec != std::errc{} || ptr != hex.data() + hex.size() ||
        cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    append_utf8(out, cp);
    return close + 1;
}

// RFC 6533 3 utf-8-addr-xtext / utf-8-addr-unitext: QCHAR (printable ASCII
// but "+", "=" and backslash), "\x{HEX}", and raw UTF-8 only under SMTPUTF8.
std::optional<std::string> decode_utf8_addr(std::string_view text, bool utf8) {
    std::string out;
    while (!text.empty()) {
        const auto u = static_cast<unsigned char>(text.front());
        if (u == '\\') {
            const auto n = take_embedded_char(text, out);
            if (n == 0)
                return std::nullopt;
            text.remove_prefix(n);
            continue;
        }
        if ((u >= 0x80 && !utf8) || (u < 0x80 && (u < 33 || u > 126 || u == '+' || u == '=')))
            return std::nullopt;
        out += text.front();
        text.remove_prefix(1);
    }
    if (out.empty() || !is_valid_utf8(out) || has_control(out))
        return std::nullopt;
    return out;
}

// ORCPT=addr-type;value, stored as "addr-type;decoded" with the type lowercased.
// RFC 3461 4.2: an rfc822 address is printable US-ASCII once decoded.
std::optional<std::string> parse_orcpt(std::optional<std::string_view> value, bool utf8) {
    if (!value || value->size() > kMaxOrcpt)
        return std::nullopt;
    const auto semi = value->find(';');
    if (semi == std::string_view::npos)
        return std::nullopt;
    const auto type = ascii_lower(value->substr(0, semi));
    const auto encoded = value->substr(semi + 1);
    std::optional<std::string> address;
    if (type == "rfc822") {
        address = decode_printable(encoded, kMaxOrcpt);
        if (address && (address->empty() || !is_ascii(*address)))
            address.reset();
    } else if (type == "utf-8") {
        address = decode_utf8_addr(encoded, utf8);
    }
    if (!address)
        return std::nullopt;
    return type + ';' + *address;
}

std::optional<Reply> apply_rcpt_param(RcptTo& rcpt, const Param& p, const ParseOptions& options) {
    const auto kw = ascii_lower(p.keyword);
    if (kw == "notify") {
        const auto flags = parse_notify(p.value.value_or(""));
        rcpt.spec.notify = flags.value_or(0);
        return flags ? std::nullopt : std::optional(param_error("Bad NOTIFY option"));
    }
    if (kw == "orcpt") {
        auto orcpt = parse_orcpt(p.value, options.smtputf8);
        rcpt.spec.orcpt = orcpt.value_or("");
        return orcpt ? std::nullopt : std::optional(param_error("Bad ORCPT option"));
    }
    return unsupported(p.keyword);
}

} // namespace

Command parse_command(std::string_view line) {
    line.remove_suffix(line.size() - (line.find_last_not_of(" \t") + 1));
    const auto sp = line.find(' ');
    const auto verb = line.substr(0, sp);
    Command cmd;
    if (sp != std::string_view::npos)
        cmd.args = line.substr(sp + 1);
    for (const auto& v : kVerbs) {
        if (iequals(verb, v.name)) {
            cmd.verb = v.verb;
            return cmd;
        }
    }
    for (const auto method : kHttpMethods)
        cmd.http_like = cmd.http_like || iequals(verb, method);
    return cmd;
}

std::string_view verb_name(Verb verb) {
    for (const auto& v : kVerbs) {
        if (v.verb == verb)
            return v.name;
    }
    return "unknown";
}

std::variant<MailFrom, Reply> parse_mail_from(std::string_view args) {
    const auto split = split_args(args, "FROM:");
    if (!split)
        return make_reply(501, "5.5.4", kMailPath.syntax);
    auto params = split_params(split->params);
    if (auto* error = std::get_if<Reply>(&params))
        return std::move(*error);
    MailFrom mail;
    for (const auto& p : std::get<std::vector<Param>>(params)) {
        if (auto error = apply_mail_param(mail, p))
            return std::move(*error);
    }
    if (split->path.empty())
        return mail; // the null reverse-path <> (RFC 5321 4.5.5)
    auto address = check_path(split->path, mail.smtputf8, kMailPath);
    if (auto* error = std::get_if<Reply>(&address))
        return std::move(*error);
    mail.address = std::move(std::get<std::string>(address));
    return mail;
}

std::variant<RcptTo, Reply> parse_rcpt_to(std::string_view args, const ParseOptions& options) {
    const auto split = split_args(args, "TO:");
    if (!split)
        return make_reply(501, "5.5.4", kRcptPath.syntax);
    auto params = split_params(split->params);
    if (auto* error = std::get_if<Reply>(&params))
        return std::move(*error);
    RcptTo rcpt;
    for (const auto& p : std::get<std::vector<Param>>(params)) {
        if (auto error = apply_rcpt_param(rcpt, p, options))
            return std::move(*error);
    }
    // RFC 5321 4.1.1.3: "<Postmaster>" without a domain, case-insensitive.
    if (iequals(split->path, "postmaster")) {
        rcpt.spec.address = split->path;
        rcpt.postmaster_only = true;
        return rcpt;
    }
    if (split->path.empty())
        return make_reply(501, kRcptPath.enhanced, "Bad recipient address syntax: empty address");
    auto address = check_path(split->path, options.smtputf8, kRcptPath);
    if (auto* error = std::get_if<Reply>(&address))
        return std::move(*error);
    rcpt.spec.address = std::move(std::get<std::string>(address));
    return rcpt;
}

std::optional<std::string> xtext_decode(std::string_view xtext) {
    std::string out;
    out.reserve(xtext.size());
    for (std::size_t i = 0; i < xtext.size(); ++i) {
        const auto u = static_cast<unsigned char>(xtext[i]);
        if (u == '+') {
            if (i + 2 >= xtext.size() || !is_hex(xtext[i + 1]) || !is_hex(xtext[i + 2]))
                return std::nullopt;
            unsigned byte = 0;
            (void)std::from_chars(xtext.data() + i + 1, xtext.data() + i + 3, byte, 16);
            out += static_cast<char>(byte);
            i += 2;
        } else if (u >= 33 && u <= 126 && u != '=') {
            out += xtext[i];
        } else {
            return std::nullopt;
        }
    }
    return out;
}

std::string xtext_encode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 33 && u <= 126 && u != '+' && u != '=')
            out += c;
        else
            out += fmt::format("+{:02X}", u);
    }
    return out;
}

} // namespace ember::smtp
