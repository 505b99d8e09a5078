#include "smtp/command.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace ember::smtp;
using ember::core::BodyType;
using ember::core::DsnRet;

namespace {

// "code enhanced" of an error reply, or "ok".
template <typename T> std::string outcome(const std::variant<T, Reply>& result) {
    if (const auto* r = std::get_if<Reply>(&result))
        return std::to_string(r->code) + " " + r->enhanced;
    return "ok";
}

const std::string local64(64, 'l');
// 63 + 1 + 63 + 1 + 63 + 1 + 55 + 5 = 252 octets: "<a@" + it + ">" is 256.
const std::string domain252 = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                              std::string(63, 'c') + "." + std::string(55, 'd') + ".test";

} // namespace

TEST_CASE("command verbs are case-insensitive and args follow one space, trimmed") {
    struct Case {
        const char* line;
        Verb verb;
        const char* args;
    };
    const Case cases[] = {
        {"MAIL FROM:<a@b.example>", Verb::Mail, "FROM:<a@b.example>"},
        {"mail from:<a@b.example> SIZE=5", Verb::Mail, "from:<a@b.example> SIZE=5"},
        {"RCPT TO:<a@b.example>", Verb::Rcpt, "TO:<a@b.example>"},
        {"EHLO client.example  ", Verb::Ehlo, "client.example"},
        {"helo client.example", Verb::Helo, "client.example"},
        {"QUIT", Verb::Quit, ""},
        {"quit \t ", Verb::Quit, ""},
        {"DATA\t", Verb::Data, ""},
        {"BDAT 100 LAST", Verb::Bdat, "100 LAST"},
        {"RSET", Verb::Rset, ""},
        {"NOOP anything at all", Verb::Noop, "anything at all"},
        {"VRFY user", Verb::Vrfy, "user"},
        {"EXPN list", Verb::Expn, "list"},
        {"HELP", Verb::Help, ""},
        {"StartTLS", Verb::StartTls, ""},
        {"AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", Verb::Auth, "PLAIN dGVzdAB0ZXN0AHRlc3Q="},
        {"MAIL  FROM:<a@b.example>", Verb::Mail, " FROM:<a@b.example>"},
        {"MAILFROM:<a@b.example>", Verb::Unknown, ""},
        {"XYZZY plugh", Verb::Unknown, "plugh"},
        {" MAIL FROM:<a@b.example>", Verb::Unknown, "MAIL FROM:<a@b.example>"},
        {"", Verb::Unknown, ""},
    };
    for (const auto& c : cases) {
        CAPTURE(c.line);
        const auto cmd = parse_command(c.line);
        CHECK(cmd.verb == c.verb);
        CHECK(cmd.args == c.args);
        CHECK_FALSE(cmd.http_like);
    }
}

TEST_CASE("HTTP request lines are unknown commands flagged as HTTP-like") {
    for (const char* line :
         {"GET / HTTP/1.1", "POST /submit HTTP/1.0", "CONNECT mx.example:25 HTTP/1.1",
          "HEAD / HTTP/1.1", "get /", "OPTIONS * HTTP/1.1", "PUT /x HTTP/1.1"}) {
        CAPTURE(line);
        const auto cmd = parse_command(line);
        CHECK(cmd.verb == Verb::Unknown);
        CHECK(cmd.http_like);
    }
}

TEST_CASE("verb names are the wire verbs") {
    CHECK(verb_name(Verb::Rcpt) == "RCPT");
    CHECK(verb_name(Verb::StartTls) == "STARTTLS");
    CHECK(verb_name(Verb::Unknown) == "unknown");
}

TEST_CASE("MAIL FROM accepts the reverse-path forms real clients send") {
    struct Case {
        std::string args;
        std::string address;
    };
    const Case cases[] = {
        {"FROM:<user@example.com>", "user@example.com"},
        {"from:<user@example.com>", "user@example.com"},
        {"From: <user@example.com>", "user@example.com"},
        {"FROM:<>", ""},
        {"FROM:<@a.example,@b.example:user@c.example>", "user@c.example"},
        {"FROM:<@a.example:user@c.example>", "user@c.example"},
        {"FROM:<\"john doe\"@example.com>", "\"john doe\"@example.com"},
        {R"(FROM:<"a>b\"c"@example.com>)", R"("a>b\"c"@example.com)"},
        {"FROM:<\"\"@example.com>", "\"\"@example.com"},
        {"FROM:<user@[192.0.2.1]>", "user@[192.0.2.1]"},
        {"FROM:<user@[IPv6:2001:db8::1]>", "user@[IPv6:2001:db8::1]"},
        {"FROM:<user@[ipv6:::ffff:192.0.2.1]>", "user@[ipv6:::ffff:192.0.2.1]"},
        {"FROM:<a.b+tag!#$%&'*/=?^_`{|}~-@sub-1.example.com>",
         "a.b+tag!#$%&'*/=?^_`{|}~-@sub-1.example.com"},
        {"FROM:<u@localhost>", "u@localhost"},
        {"FROM:<" + local64 + "@x.test>", local64 + "@x.test"},
        {"FROM:<a@" + domain252 + ">", "a@" + domain252},
        {"FROM:<\xc3\xbcser@ex\xc3\xa4mple.de> SMTPUTF8", "\xc3\xbcser@ex\xc3\xa4mple.de"},
        {"FROM:<\"\xe7\x94\xb0 \xe4\xb8\xad\"@example.jp> SMTPUTF8",
         "\"\xe7\x94\xb0 \xe4\xb8\xad\"@example.jp"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.args);
        const auto result = parse_mail_from(c.args);
        REQUIRE(outcome(result) == "ok");
        CHECK(std::get<MailFrom>(result).address == c.address);
    }
}

TEST_CASE("MAIL FROM parameters are parsed case-insensitively and decoded") {
    const auto result = parse_mail_from("FROM:<u@example.com>  body=8bitmime SMTPUTF8 Ret=HDRS "
                                        "ENVID=QQ+2B12+3D AUTH=user+40example.com SIZE=12345");
    REQUIRE(outcome(result) == "ok");
    const auto& m = std::get<MailFrom>(result);
    CHECK(m.address == "u@example.com");
    CHECK(m.body == BodyType::EightBitMime);
    CHECK(m.smtputf8);
    CHECK(m.ret == DsnRet::Headers);
    CHECK(m.envid == "QQ+12=");
    CHECK(m.auth_param == "user@example.com");
    REQUIRE(m.size.has_value());
    CHECK(*m.size == 12345);

    const auto plain = std::get<MailFrom>(parse_mail_from("FROM:<u@example.com>"));
    CHECK(plain.body == BodyType::Unspecified);
    CHECK_FALSE(plain.smtputf8);
    CHECK(plain.ret == DsnRet::Unspecified);
    CHECK(plain.envid.empty());
    CHECK(plain.auth_param.empty());
    CHECK_FALSE(plain.size.has_value());

    const auto other = std::get<MailFrom>(
        parse_mail_from("FROM:<> BODY=7BIT RET=full AUTH=<> SIZE=18446744073709551615"));
    CHECK(other.body == BodyType::SevenBit);
    CHECK(other.ret == DsnRet::Full);
    CHECK(other.auth_param == "<>");
    CHECK(*other.size == 18446744073709551615ull);
    CHECK(std::get<MailFrom>(parse_mail_from("FROM:<> SIZE=0")).size == 0u);
}

TEST_CASE("MAIL FROM errors come back as the exact reply to send") {
    struct Case {
        std::string args;
        const char* want;
    };
    const Case cases[] = {
        // General syntax: 501 5.5.4.
        {"", "501 5.5.4"},
        {"FROM:", "501 5.5.4"},
        {"FROM:user@example.com", "501 5.5.4"},
        {"FROM:<user@example.com", "501 5.5.4"},
        {"FROM:  <user@example.com>", "501 5.5.4"},
        {"FROM <user@example.com>", "501 5.5.4"},
        {"TO:<user@example.com>", "501 5.5.4"},
        {"FROM:<u@example.com>SIZE=1", "501 5.5.4"},
        {"FROM:<u@example.com>>", "501 5.5.4"},
        {"FROM:<\"unclosed@example.com>", "501 5.5.4"},
        // Bad sender address syntax: 501 5.1.7.
        {"FROM:<user>", "501 5.1.7"},
        {"FROM:<postmaster>", "501 5.1.7"},
        {"FROM:<user@>", "501 5.1.7"},
        {"FROM:<@example.com>", "501 5.1.7"},
        {"FROM:<@a.example:>", "501 5.1.7"},
        {"FROM:<@a.example,:u@example.com>", "501 5.1.7"},
        {"FROM:<@a.example,@:u@example.com>", "501 5.1.7"},
        {"FROM:<@-bad.example:u@example.com>", "501 5.1.7"},
        {"FROM:<a.example:u@example.com>", "501 5.1.7"},
        {"FROM:<u@-example.com>", "501 5.1.7"},
        {"FROM:<u@example-.com>", "501 5.1.7"},
        {"FROM:<u@example..com>", "501 5.1.7"},
        {"FROM:<u@example.com.>", "501 5.1.7"},
        {"FROM:<u@.example.com>", "501 5.1.7"},
        {"FROM:<u@exa_mple.com>", "501 5.1.7"},
        {"FROM:<.u@example.com>", "501 5.1.7"},
        {"FROM:<u.@example.com>", "501 5.1.7"},
        {"FROM:<u..v@example.com>", "501 5.1.7"},
        {"FROM:<u v@example.com>", "501 5.1.7"},
        {"FROM:<u(x)@example.com>", "501 5.1.7"},
        {"FROM:<u@@example.com>", "501 5.1.7"},
        {"FROM:<\"a\"b@example.com>", "501 5.1.7"},
        {"FROM:<\"a\\\x01\"@example.com>", "501 5.1.7"},
        {"FROM:<u@[300.1.1.1]>", "501 5.1.7"},
        {"FROM:<u@[1.2.3]>", "501 5.1.7"},
        {"FROM:<u@[1.2.3.4.5]>", "501 5.1.7"},
        {"FROM:<u@[0001.2.3.4]>", "501 5.1.7"},
        {"FROM:<u@[IPv6:zz::1]>", "501 5.1.7"},
        {"FROM:<u@[IPv6:1.2.3.4]>", "501 5.1.7"},
        {"FROM:<u@[IPv6:1:2:3:4:5:6:7:8:9]>", "501 5.1.7"},
        {"FROM:<u@[x-tag:whatever]>", "501 5.1.7"},
        {"FROM:<u@[]>", "501 5.1.7"},
        {"FROM:<" + local64 + "l@x.test>", "501 5.1.7"},
        {"FROM:<u@" + std::string(64, 'a') + ".test>", "501 5.1.7"},
        {"FROM:<\xff@example.com> SMTPUTF8", "501 5.1.7"},
        {"FROM:<\xc3@example.com> SMTPUTF8", "501 5.1.7"},
        // Non-ASCII without SMTPUTF8: 553 5.6.7 (RFC 6531 3.5).
        {"FROM:<\xc3\xbcser@example.com>", "553 5.6.7"},
        {"FROM:<user@ex\xc3\xa4mple.de>", "553 5.6.7"},
        {"FROM:<\xff@example.com>", "553 5.6.7"},
        // Parameters.
        {"FROM:<u@example.com> FOO=bar", "555 5.5.4"},
        {"FROM:<u@example.com> NOTIFY=NEVER", "555 5.5.4"},
        {"FROM:<u@example.com> ORCPT=rfc822;a@b", "555 5.5.4"},
        {"FROM:<u@example.com> BODY=BINARYMIME", "555 5.5.4"},
        {"FROM:<u@example.com> SIZE=1 SIZE=2", "501 5.5.4"},
        {"FROM:<u@example.com> size=1 SIZE=1", "501 5.5.4"},
        {"FROM:<u@example.com> SMTPUTF8 smtputf8", "501 5.5.4"},
        {"FROM:<u@example.com> SIZE=abc", "501 5.5.4"},
        {"FROM:<u@example.com> SIZE=", "501 5.5.4"},
        {"FROM:<u@example.com> SIZE", "501 5.5.4"},
        {"FROM:<u@example.com> SIZE=-1", "501 5.5.4"},
        {"FROM:<u@example.com> SIZE=+1", "501 5.5.4"},
        {"FROM:<u@example.com> SIZE=18446744073709551616", "501 5.5.4"},
        {"FROM:<u@example.com> SIZE=000000000000000000001", "501 5.5.4"},
        {"FROM:<u@example.com> BODY=8BIT", "501 5.5.4"},
        {"FROM:<u@example.com> BODY", "501 5.5.4"},
        {"FROM:<u@example.com> SMTPUTF8=yes", "501 5.5.4"},
        {"FROM:<u@example.com> RET=ALL", "501 5.5.4"},
        {"FROM:<u@example.com> RET", "501 5.5.4"},
        {"FROM:<u@example.com> ENVID", "501 5.5.4"},
        {"FROM:<u@example.com> ENVID=a+2", "501 5.5.4"},
        {"FROM:<u@example.com> ENVID=a+ZZ", "501 5.5.4"},
        {"FROM:<u@example.com> ENVID=a+0Db", "501 5.5.4"},
        {"FROM:<u@example.com> ENVID=a=b", "501 5.5.4"},
        {"FROM:<u@example.com> ENVID=" + std::string(101, 'e'), "501 5.5.4"},
        {"FROM:<u@example.com> ENVID=\xc3\xa9 SMTPUTF8", "501 5.5.4"},
        {"FROM:<u@example.com> AUTH=+0D+0ABcc:x", "501 5.5.4"},
        {"FROM:<u@example.com> AUTH", "501 5.5.4"},
        {"FROM:<u@example.com> -SIZE=1", "501 5.5.4"},
        {"FROM:<u@example.com> SI_ZE=1", "501 5.5.4"},
        {"FROM:<u@example.com> =1", "501 5.5.4"},
        {"FROM:<u@example.com> SIZE=1\x01", "501 5.5.4"},
        {"FROM:<u@example.com> X=\xff", "501 5.5.4"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.args);
        CHECK(outcome(parse_mail_from(c.args)) == c.want);
    }
}

TEST_CASE("the 256-octet path limit counts the angle brackets") {
    // local 64 + "@" + domain 189 + "<>" = 256 octets: the limit exactly.
    const std::string domain189 =
        std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(56, 'c') + ".test";
    REQUIRE(domain189.size() == 189);
    CHECK(outcome(parse_mail_from("FROM:<" + local64 + "@" + domain189 + ">")) == "ok");
    const auto over = parse_mail_from("FROM:<" + local64 + "@" + domain189 + "x>");
    REQUIRE(outcome(over) == "501 5.1.7");
    CHECK(format_reply(std::get<Reply>(over)) ==
          "501 5.1.7 Bad sender address syntax: path longer than 256 octets\r\n");
    CHECK(outcome(parse_rcpt_to("TO:<" + local64 + "@" + domain189 + "x>", {})) == "501 5.1.3");
}

TEST_CASE("MAIL FROM error replies name the problem") {
    struct Case {
        std::string args;
        const char* wire;
    };
    const Case cases[] = {
        {"FROM:user@example.com", "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"},
        {"FROM:<u@example.com> XFOO=1", "555 5.5.4 Unsupported option: XFOO\r\n"},
        {"FROM:<u@example.com> SIZE=1 size=2", "501 5.5.4 Duplicate option: size\r\n"},
        {"FROM:<u@example.com> BODY=BINARYMIME", "555 5.5.4 BODY=BINARYMIME is not supported\r\n"},
        {"FROM:<" + local64 + "x@example.com>",
         "501 5.1.7 Bad sender address syntax: local part longer than 64 octets\r\n"},
        {"FROM:<user>", "501 5.1.7 Bad sender address syntax: missing @domain\r\n"},
        {"FROM:<\xc3\xbc@example.com>", "553 5.6.7 Non-ASCII sender address requires SMTPUTF8\r\n"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.args);
        const auto result = parse_mail_from(c.args);
        REQUIRE(std::holds_alternative<Reply>(result));
        CHECK(format_reply(std::get<Reply>(result)) == c.wire);
    }
}

TEST_CASE("an unknown option's name is echoed at most 64 characters long") {
    const auto result = parse_mail_from("FROM:<u@example.com> " + std::string(300, 'X'));
    REQUIRE(outcome(result) == "555 5.5.4");
    CHECK(std::get<Reply>(result).lines.front() == "Unsupported option: " + std::string(64, 'X'));
}

TEST_CASE("ENVID takes up to 100 characters of xtext") {
    const auto ok = parse_mail_from("FROM:<> ENVID=" + std::string(100, 'e'));
    REQUIRE(outcome(ok) == "ok");
    CHECK(std::get<MailFrom>(ok).envid == std::string(100, 'e'));
}

TEST_CASE("RCPT TO accepts forward-paths, postmaster and DSN parameters") {
    struct Case {
        std::string args;
        bool smtputf8;
        std::string address;
        bool postmaster_only;
        std::uint8_t notify;
        std::string orcpt;
    };
    using namespace ember::core;
    const Case cases[] = {
        {"TO:<user@example.com>", false, "user@example.com", false, 0, ""},
        {"to: <user@example.com>", false, "user@example.com", false, 0, ""},
        {"TO:<postmaster>", false, "postmaster", true, 0, ""},
        {"TO:<PostMaster>", false, "PostMaster", true, 0, ""},
        {"TO:<postmaster@example.com>", false, "postmaster@example.com", false, 0, ""},
        {"TO:<@hop.example:user@example.com>", false, "user@example.com", false, 0, ""},
        {"TO:<u@example.com> NOTIFY=SUCCESS,FAILURE,DELAY", false, "u@example.com", false,
         kNotifySuccess | kNotifyFailure | kNotifyDelay, ""},
        {"TO:<u@example.com> notify=never", false, "u@example.com", false, kNotifyNever, ""},
        {"TO:<u@example.com> NOTIFY=delay,Failure", false, "u@example.com", false,
         kNotifyDelay | kNotifyFailure, ""},
        {"TO:<u@example.com> ORCPT=rfc822;user+40example.com", false, "u@example.com", false, 0,
         "rfc822;user@example.com"},
        {"TO:<u@example.com> ORCPT=RFC822;a+2Bb+20c@example.com NOTIFY=FAILURE", false,
         "u@example.com", false, kNotifyFailure, "rfc822;a+b c@example.com"},
        {"TO:<u@example.com> ORCPT=utf-8;\\x{E9}t\\x{E9}@example.com", false, "u@example.com",
         false, 0, "utf-8;\xc3\xa9t\xc3\xa9@example.com"},
        {"TO:<u@example.com> ORCPT=UTF-8;\\x{1F600}@example.com", false, "u@example.com", false, 0,
         "utf-8;\xf0\x9f\x98\x80@example.com"},
        {"TO:<u@example.com> ORCPT=utf-8;\xc3\xa9@example.com", true, "u@example.com", false, 0,
         "utf-8;\xc3\xa9@example.com"},
        {"TO:<\xc3\xa9@ex\xc3\xa4mple.de>", true, "\xc3\xa9@ex\xc3\xa4mple.de", false, 0, ""},
    };
    for (const auto& c : cases) {
        CAPTURE(c.args);
        const auto result = parse_rcpt_to(c.args, ParseOptions{c.smtputf8});
        REQUIRE(outcome(result) == "ok");
        const auto& r = std::get<RcptTo>(result);
        CHECK(r.spec.address == c.address);
        CHECK(r.postmaster_only == c.postmaster_only);
        CHECK(r.spec.notify == c.notify);
        CHECK(r.spec.orcpt == c.orcpt);
    }
}

TEST_CASE("RCPT TO errors come back as the exact reply to send") {
    struct Case {
        std::string args;
        bool smtputf8;
        const char* want;
    };
    const Case cases[] = {
        {"", false, "501 5.5.4"},
        {"TO:user@example.com", false, "501 5.5.4"},
        {"FROM:<user@example.com>", false, "501 5.5.4"},
        {"TO:<user@example.com", false, "501 5.5.4"},
        {"TO:<>", false, "501 5.1.3"},
        {"TO:<user>", false, "501 5.1.3"},
        {"TO:<postmaster@>", false, "501 5.1.3"},
        {"TO:<user@exa mple.com>", false, "501 5.1.3"},
        {"TO:<@a:@b:user@example.com>", false, "501 5.1.3"},
        {"TO:<" + local64 + "x@example.com>", false, "501 5.1.3"},
        {"TO:<\xc3\xa9@example.com>", false, "553 5.6.7"},
        {"TO:<\xc3\xa9@example.com> SMTPUTF8", false, "555 5.5.4"},
        {"TO:<\xc3(@example.com>", true, "501 5.1.3"},
        {"TO:<u@example.com> SIZE=10", false, "555 5.5.4"},
        {"TO:<u@example.com> XFOO", false, "555 5.5.4"},
        {"TO:<u@example.com> NOTIFY=NEVER NOTIFY=NEVER", false, "501 5.5.4"},
        {"TO:<u@example.com> NOTIFY=NEVER,SUCCESS", false, "501 5.5.4"},
        {"TO:<u@example.com> NOTIFY=FAILURE,NEVER", false, "501 5.5.4"},
        {"TO:<u@example.com> NOTIFY=", false, "501 5.5.4"},
        {"TO:<u@example.com> NOTIFY", false, "501 5.5.4"},
        {"TO:<u@example.com> NOTIFY=SOMETIMES", false, "501 5.5.4"},
        {"TO:<u@example.com> NOTIFY=SUCCESS,,DELAY", false, "501 5.5.4"},
        {"TO:<u@example.com> NOTIFY=SUCCESS,", false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT", false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT=rfc822", false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT=rfc822;", false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT=x400;abc", false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT=;a@b", false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT=rfc822;a+0Db@example.com", false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT=rfc822;a+C3+A9@example.com", false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT=rfc822;a+", false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT=rfc822;" + std::string(494, 'o'), false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT=utf-8;a+b@example.com", false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT=utf-8;\\x{D800}@example.com", false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT=utf-8;\\x{110000}@example.com", false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT=utf-8;\\x{0}@example.com", false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT=utf-8;\\x{A}@example.com", false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT=utf-8;\\x{0A}@example.com", false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT=utf-8;\\x{E9@example.com", false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT=utf-8;\\y{E9}@example.com", false, "501 5.5.4"},
        {"TO:<u@example.com> ORCPT=utf-8;\xc3\xa9@example.com", false, "501 5.5.4"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.args);
        CHECK(outcome(parse_rcpt_to(c.args, ParseOptions{c.smtputf8})) == c.want);
    }
}

TEST_CASE("RCPT TO error replies name the recipient") {
    const auto result = parse_rcpt_to("TO:<>", {});
    REQUIRE(std::holds_alternative<Reply>(result));
    CHECK(format_reply(std::get<Reply>(result)) ==
          "501 5.1.3 Bad recipient address syntax: empty address\r\n");
    const auto utf8 = parse_rcpt_to("TO:<\xc3\xa9@example.com>", {});
    CHECK(format_reply(std::get<Reply>(utf8)) ==
          "553 5.6.7 Non-ASCII recipient address requires SMTPUTF8\r\n");
    const auto syntax = parse_rcpt_to("TO:", {});
    CHECK(format_reply(std::get<Reply>(syntax)) == "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
}

TEST_CASE("ORCPT takes up to 500 characters") {
    const std::string value = "rfc822;" + std::string(480, 'o') + "@example.com"; // 499
    const auto result = parse_rcpt_to("TO:<u@example.com> ORCPT=" + value, {});
    REQUIRE(outcome(result) == "ok");
    CHECK(std::get<RcptTo>(result).spec.orcpt == value);
}

TEST_CASE("xtext decodes +XX and refuses malformed text") {
    struct Case {
        const char* xtext;
        const char* decoded;
    };
    const Case good[] = {{"", ""},
                         {"abc", "abc"},
                         {"a+2Bb+3Dc", "a+b=c"},
                         {"+2b+3d", "+="},
                         {"user+40example.com", "user@example.com"},
                         {"!~", "!~"}};
    for (const auto& c : good) {
        CAPTURE(c.xtext);
        const auto got = xtext_decode(c.xtext);
        REQUIRE(got.has_value());
        CHECK(*got == c.decoded);
    }
    for (const char* bad :
         {"+", "+2", "a+2", "+ZZ", "+G0", "a=b", "a b", "\x7f", "\xc3\xa9", "\t"}) {
        CAPTURE(bad);
        CHECK_FALSE(xtext_decode(bad).has_value());
    }
}

TEST_CASE("xtext encodes what xchar cannot carry and round-trips every octet") {
    CHECK(xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d");
    CHECK(xtext_encode("\x01\xc3\xa9") == "+01+C3+A9");
    std::string all;
    for (int i = 0; i < 256; ++i)
        all += static_cast<char>(i);
    const auto encoded = xtext_encode(all);
    const auto decoded = xtext_decode(encoded);
    REQUIRE(decoded.has_value());
    CHECK(*decoded == all);
}
