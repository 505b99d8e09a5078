#pragma once
// SMTP command lines (RFC 5321 4.1) and the MAIL FROM / RCPT TO arguments
// with the ESMTP parameters ember advertises: SIZE (RFC 1870), BODY (RFC 6152),
// SMTPUTF8 (RFC 6531), RET/ENVID/NOTIFY/ORCPT (RFC 3461), AUTH (RFC 4954 5).
// Syntax only: relay, size and recipient policy are the session's. A parse
// error comes back as the exact Reply to send. Pure functions, thread-safe.

#include "core/envelope.hpp"
#include "smtp/reply.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace ember::smtp {

enum class Verb {
    Helo,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    Bdat,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    Auth,
    Unknown
};

struct Command {
    Verb verb = Verb::Unknown;
    // The text after the verb and one space, trailing spaces and tabs trimmed.
    std::string args;
    // The verb is an HTTP method (GET, POST, CONNECT, ...): an HTTP proxy or
    // a browser is abusing the port; Postfix drops such clients at once.
    bool http_like = false;
};

// line is one command line without its CRLF. The verb is case-insensitive and
// ends at the first SP ("MAIL FROM:<a>" is verb Mail, args "FROM:<a>").
[[nodiscard]] Command parse_command(std::string_view line);
// "MAIL", "RCPT", ... for logs ("in reply to RCPT TO command"); "unknown".
[[nodiscard]] std::string_view verb_name(Verb verb);

struct MailFrom {
    std::string address; // the reverse-path without brackets or route; empty = <>
    core::BodyType body = core::BodyType::Unspecified;
    bool smtputf8 = false;
    core::DsnRet ret = core::DsnRet::Unspecified;
    std::string envid;                 // xtext decoded; empty if absent
    std::optional<std::uint64_t> size; // SIZE= as declared
    std::string auth_param;            // AUTH= xtext decoded ("<>" kept); empty if absent
};

struct RcptTo {
    core::RecipientSpec spec;
    bool postmaster_only = false; // "<postmaster>" without a domain (RFC 5321 4.1.1.3)
};

struct ParseOptions {
    bool smtputf8 = false; // the transaction's MAIL command declared SMTPUTF8
};

// args is Command::args of a MAIL command ("FROM:<a@b> SIZE=10").
[[nodiscard]] std::variant<MailFrom, Reply> parse_mail_from(std::string_view args);
// args is Command::args of a RCPT command ("TO:<a@b> NOTIFY=NEVER").
[[nodiscard]] std::variant<RcptTo, Reply> parse_rcpt_to(std::string_view args,
                                                        const ParseOptions& options);

// RFC 3461 4 xtext: "+" followed by two hex digits stands for one octet; the
// other characters are "!" to "~" except "+" and "=". Decoding accepts
// lower-case hex too (be liberal); encoding writes upper-case.
// nullopt on malformed xtext.
[[nodiscard]] std::optional<std::string> xtext_decode(std::string_view xtext);
[[nodiscard]] std::string xtext_encode(std::string_view text);

} // namespace ember::smtp
