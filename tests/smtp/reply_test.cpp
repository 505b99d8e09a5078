#include "smtp/reply.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace ember::smtp;

namespace {

// Everything a parser run produced, as one comparable, printable string.
std::string describe(ReplyParser& parser) {
    std::string out;
    while (auto r = parser.next()) {
        out += std::to_string(r->code) + "[" + r->enhanced + "]";
        for (const auto& line : r->lines)
            out += "{" + line + "}";
        out += ";";
    }
    if (parser.has_error())
        out += "error:" + parser.error();
    if (parser.has_pending_input())
        out += "pending";
    return out;
}

std::string parse_whole(std::string_view input) {
    ReplyParser parser;
    parser.feed(input);
    return describe(parser);
}

// Feeds input in two pieces cut at i, and also byte by byte: every way of
// splitting must give what one feed gives.
void check_every_split(std::string_view input) {
    CAPTURE(input);
    const auto want = parse_whole(input);
    for (std::size_t i = 0; i <= input.size(); ++i) {
        CAPTURE(i);
        ReplyParser parser;
        parser.feed(input.substr(0, i));
        parser.feed(input.substr(i));
        CHECK(describe(parser) == want);
    }
    ReplyParser bytewise;
    for (const char c : input)
        bytewise.feed(std::string_view(&c, 1));
    CHECK(describe(bytewise) == want);
}

} // namespace

TEST_CASE("make_reply splits text into lines and ignores one trailing newline") {
    const auto r = make_reply(250, "2.0.0", "first\nsecond\r\nthird\n");
    CHECK(r.code == 250);
    CHECK(r.enhanced == "2.0.0");
    CHECK(r.lines == std::vector<std::string>{"first", "second", "third"});
    CHECK(make_reply(221, "", "").lines == std::vector<std::string>{""});
    CHECK(make_reply(250, "", "a\n\nb").lines == std::vector<std::string>{"a", "", "b"});
}

TEST_CASE("replies format with CRLF, dash continuation and the enhanced code on every line") {
    struct Case {
        Reply reply;
        const char* wire;
    };
    const Case cases[] = {
        {make_reply(250, "2.0.0", "Ok"), "250 2.0.0 Ok\r\n"},
        {make_reply(354, "", "End data with <CR><LF>.<CR><LF>"),
         "354 End data with <CR><LF>.<CR><LF>\r\n"},
        {make_reply(550, "5.7.1", "Relay denied\nSee the policy"),
         "550-5.7.1 Relay denied\r\n550 5.7.1 See the policy\r\n"},
        {make_reply(250, "", "mx.example\nPIPELINING\nSIZE 1000"),
         "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"},
        {make_reply(250, "2.0.0", ""), "250 2.0.0\r\n"},
        {make_reply(250, "", ""), "250\r\n"},
        {make_reply(250, "", "\nlast"), "250-\r\n250 last\r\n"},
        {make_reply(451, "4.3.0", "a\n\nb"), "451-4.3.0 a\r\n451-4.3.0\r\n451 4.3.0 b\r\n"},
        {Reply{421, "4.4.2", {}}, "421 4.4.2\r\n"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.wire);
        CHECK(format_reply(c.reply) == c.wire);
    }
}

TEST_CASE("control characters in reply text cannot forge a second reply line") {
    const Reply r{550, "5.1.1", {"<evil\r\n250 ok>", std::string("nul\0here", 8)}};
    CHECK(format_reply(r) == "550-5.1.1 <evil  250 ok>\r\n550 5.1.1 nul here\r\n");
    CHECK(format_reply(Reply{250, "", {"tab\tstays"}}) == "250 tab\tstays\r\n");
}

TEST_CASE("reply_summary is one line for logs") {
    CHECK(reply_summary(make_reply(550, "5.1.1", "No such user\nhere")) ==
          "550 5.1.1 No such user here");
    CHECK(reply_summary(make_reply(221, "", "Bye")) == "221 Bye");
    CHECK(reply_summary(Reply{250, "", {"a\r\nb"}}) == "250 a  b");
}

TEST_CASE("reply classes follow the first digit") {
    struct Case {
        int code;
        bool positive, transient, permanent;
    };
    const Case cases[] = {{220, true, false, false}, {354, true, false, false},
                          {421, false, true, false}, {450, false, true, false},
                          {554, false, false, true}, {599, false, false, true},
                          {199, false, false, false}};
    for (const auto& c : cases) {
        CAPTURE(c.code);
        CHECK(is_positive(c.code) == c.positive);
        CHECK(is_transient(c.code) == c.transient);
        CHECK(is_permanent(c.code) == c.permanent);
        CHECK(is_positive(Reply{c.code, "", {""}}) == c.positive);
        CHECK(is_transient(Reply{c.code, "", {""}}) == c.transient);
        CHECK(is_permanent(Reply{c.code, "", {""}}) == c.permanent);
    }
}

TEST_CASE("the reply parser reads single, multi-line and pipelined replies") {
    struct Case {
        const char* input;
        const char* want;
    };
    const Case cases[] = {
        {"220 mx.example ESMTP\r\n", "220[]{mx.example ESMTP};"},
        {"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
         "250[]{mx.example}{PIPELINING}{8BITMIME};"},
        {"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n",
         "250[2.1.0]{Ok};250[2.1.5]{Ok};354[]{Go ahead};"},
        {"550-5.7.1 Relay\r\n550-5.7.1 denied\r\n550 5.7.1 here\r\n",
         "550[5.7.1]{Relay}{denied}{here};"},
        {"250\r\n", "250[]{};"},
        {"250 \r\n", "250[]{};"},
        {"250-\r\n250 \r\n", "250[]{}{};"},
        {"250 2.0.0\r\n", "250[2.0.0]{};"},
        {"451 4.7.1  two spaces\r\n", "451[4.7.1]{ two spaces};"},
        // The enhanced code's class must match the reply's first digit.
        {"250 5.0.0 odd\r\n", "250[]{5.0.0 odd};"},
        {"354 3.0.0 no class 3\r\n", "354[]{3.0.0 no class 3};"},
        // Not status codes: four digits, missing detail, glued text.
        {"250 2.1234.0 x\r\n", "250[]{2.1234.0 x};"},
        {"250 2.1. x\r\n", "250[]{2.1. x};"},
        {"250 2.1.0x\r\n", "250[]{2.1.0x};"},
        {"250 2.0.0.1 x\r\n", "250[]{2.0.0.1 x};"},
        {"554 5.7.1000 x\r\n", "554[]{5.7.1000 x};"},
        {"421 4.4.2 Bye\r\n", "421[4.4.2]{Bye};"},
        // A line with a different code than the first is left as text.
        {"250-2.0.0 a\r\n250 2.1.0 b\r\n", "250[2.0.0]{a}{2.1.0 b};"},
        // Bare LF line ends from a sloppy server are tolerated.
        {"250-a\n250 b\n", "250[]{a}{b};"},
        // Incomplete input stays pending.
        {"250-a\r\n250 b", "pending"},
        {"250-a\r\n", "pending"},
        {"", ""},
    };
    for (const auto& c : cases) {
        CAPTURE(c.input);
        CHECK(parse_whole(c.input) == c.want);
        check_every_split(c.input);
    }
}

TEST_CASE("malformed reply lines put the parser in an error state instead of guessing") {
    struct Case {
        const char* input;
        const char* want;
    };
    const Case cases[] = {
        {"abc Hello\r\n", "error:reply does not start with a three-digit code"},
        {"25 short\r\n", "error:reply does not start with a three-digit code"},
        {"\r\n", "error:reply does not start with a three-digit code"},
        {"2a0 x\r\n", "error:reply does not start with a three-digit code"},
        {"250x\r\n", "error:no space or dash after the reply code"},
        {"250_ok\r\n", "error:no space or dash after the reply code"},
        {"250-a\r\n251 b\r\n", "error:lines of one reply carry different codes"},
        {"250-a\r\n550 b\r\n", "error:lines of one reply carry different codes"},
        {"150 x\r\n", "error:reply code outside 2xx-5xx"},
        {"650 x\r\n", "error:reply code outside 2xx-5xx"},
        // Replies before the bad line are kept; nothing after it is read.
        {"250 ok\r\nHTTP/1.1 400\r\n250 more\r\n",
         "250[]{ok};error:reply does not start with a three-digit code"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.input);
        CHECK(parse_whole(c.input) == c.want);
        check_every_split(c.input);
    }
}

TEST_CASE("a reply line over 2048 octets is an error, even before its line end arrives") {
    const std::string text_2046 = "250 " + std::string(2042, 'x'); // 2046 + CRLF = 2048
    CHECK(parse_whole(text_2046 + "\r\n") == "250[]{" + std::string(2042, 'x') + "};");
    CHECK(parse_whole(text_2046 + "x\r\n") == "error:reply line longer than 2048 octets");

    ReplyParser endless;
    for (int i = 0; i < 100; ++i)
        endless.feed(std::string(100, 'y'));
    CHECK(endless.has_error());
    CHECK_FALSE(endless.has_pending_input());

    ReplyParser exact; // 2048 octets without LF can no longer end in time
    exact.feed(std::string(2047, '2'));
    CHECK_FALSE(exact.has_error());
    exact.feed("2");
    CHECK(exact.has_error());
}

TEST_CASE("bytes after the STARTTLS 220 show up as pending input") {
    ReplyParser clean;
    clean.feed("220 2.0.0 Ready to start TLS\r\n");
    CHECK(clean.has_pending_input()); // the 220 itself, not taken yet
    CHECK(clean.next().has_value());
    CHECK_FALSE(clean.has_pending_input());
    ReplyParser injected;
    injected.feed("220 2.0.0 Ready to start TLS\r\n250 forged");
    CHECK(injected.next().has_value());
    CHECK(injected.has_pending_input());
    ReplyParser whole; // a complete forged reply in the same packet counts too
    whole.feed("220 2.0.0 Ready to start TLS\r\n250 forged\r\n");
    CHECK(whole.next().has_value());
    CHECK(whole.has_pending_input());
}

TEST_CASE("formatted replies parse back to the same reply") {
    const Reply replies[] = {
        make_reply(250, "2.0.0", "Ok: queued as 1234"),
        make_reply(550, "5.7.1", "one\ntwo\nthree"),
        make_reply(250, "", "mx.example\nPIPELINING\nSMTPUTF8"),
        make_reply(451, "4.3.0", ""),
        make_reply(221, "", "Bye"),
    };
    for (const auto& r : replies) {
        const auto wire = format_reply(r);
        CAPTURE(wire);
        ReplyParser parser;
        parser.feed(wire);
        const auto got = parser.next();
        REQUIRE(got.has_value());
        CHECK(*got == r);
        CHECK_FALSE(parser.next().has_value());
    }
}
