#include "smtp/message_header.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace ember::smtp;

namespace {

// "display|address;" for each mailbox, or "error".
std::string describe(const std::optional<std::vector<Mailbox>>& list) {
    if (!list)
        return "error";
    std::string out;
    for (const auto& m : *list)
        out += m.display_name + "|" + m.address() + ";";
    return out;
}

std::string show(std::string_view s) {
    std::string out;
    for (const char c : s) {
        if (c == '\r')
            out += "\\r";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

HeaderCheck check(const std::string& headers) {
    return check_submission_headers(parse_header_block(headers + "\r\nbody\r\n"));
}

std::string refusal(const HeaderCheck& c) {
    return c.ok ? "ok" : format_reply(c.reply);
}

} // namespace

TEST_CASE("the header block splits into fields and stops at the first empty line") {
    const std::string message =
        "From: a@example.com\r\nSubject: hi: there\r\n\r\nbody\r\n\r\nX: y\r\n";
    const auto block = parse_header_block(message);
    CHECK_FALSE(block.malformed);
    REQUIRE(block.fields.size() == 2);
    CHECK(block.fields[0].name == "From");
    CHECK(block.fields[0].value == " a@example.com");
    CHECK(block.fields[1].name == "Subject");
    CHECK(block.fields[1].value == " hi: there");
    CHECK(message.substr(block.body_offset) == "body\r\n\r\nX: y\r\n");
}

TEST_CASE("folded fields keep their folds raw and unfold to one line") {
    const std::string message =
        "Subject: a\r\n b\r\n\tc\r\nTo: x@example.com,\r\n \r\n y@example.com\r\n\r\n";
    const auto block = parse_header_block(message);
    REQUIRE(block.fields.size() == 2);
    CHECK(show(block.fields[0].value) == show(" a\r\n b\r\n\tc"));
    CHECK(unfold(block.fields[0].value) == " a b\tc");
    CHECK(show(block.fields[1].value) == show(" x@example.com,\r\n \r\n y@example.com"));
    CHECK(block.body_offset == message.size());
}

TEST_CASE("header block edge cases: no body, no headers, LF line ends, obs names") {
    struct Case {
        std::string message;
        std::vector<std::string> names;
        std::vector<std::string> values;
        std::size_t body_offset;
    };
    const Case cases[] = {
        {"From: a@b\r\n", {"From"}, {" a@b"}, 11},
        {"From: a@b", {"From"}, {" a@b"}, 9},
        {"\r\nbody", {}, {}, 2},
        {"", {}, {}, 0},
        {"From: a@b\nSubject: x\n\nbody", {"From", "Subject"}, {" a@b", " x"}, 22},
        {"Subject : obs\r\n\r\n", {"Subject"}, {" obs"}, 17},
        {"Subject\t: obs\r\n\r\n", {"Subject"}, {" obs"}, 17},
        {"X-Empty:\r\n\r\n", {"X-Empty"}, {""}, 12},
        {"X:1\r\nX:2\r\n\r\n", {"X", "X"}, {"1", "2"}, 12},
        {"Date: Sun, 29 Nov 2026 06:45:38 +0000\r\n\r\n",
         {"Date"},
         {" Sun, 29 Nov 2026 06:45:38 +0000"},
         41},
        {"X: a\r\n \r\n\r\n", {"X"}, {" a\r\n "}, 11},
    };
    for (const auto& c : cases) {
        CAPTURE(show(c.message));
        const auto block = parse_header_block(c.message);
        CHECK_FALSE(block.malformed);
        std::vector<std::string> names;
        std::vector<std::string> values;
        for (const auto& f : block.fields) {
            names.push_back(f.name);
            values.push_back(f.value);
        }
        CHECK(names == c.names);
        CHECK(values == c.values);
        CHECK(block.body_offset == c.body_offset);
    }
}

TEST_CASE("a line without a colon, a bad field name or a leading fold is malformed") {
    struct Case {
        std::string message;
        const char* error;
        std::size_t fields;
        std::size_t body_offset;
    };
    const Case cases[] = {
        {"From a@b\r\n\r\n", "line 1: header line without a colon", 0, 0},
        {"Hello world, this is a body\r\n", "line 1: header line without a colon", 0, 0},
        {" folded: first\r\n", "line 1: folded line before the first header field", 0, 0},
        {"From: a@b\r\nGarbage\r\n\r\nbody", "line 2: header line without a colon", 1, 11},
        {"Bad Name: x\r\n", "line 1: invalid header field name", 0, 0},
        {": no name\r\n", "line 1: invalid header field name", 0, 0},
        {"Na\xc3\xa9me: x\r\n", "line 1: invalid header field name", 0, 0},
        {"Na\x01me: x\r\n", "line 1: invalid header field name", 0, 0},
        {"A: 1\r\nB: 2\r\nC 3\r\n", "line 3: header line without a colon", 2, 12},
    };
    for (const auto& c : cases) {
        CAPTURE(show(c.message));
        const auto block = parse_header_block(c.message);
        CHECK(block.malformed);
        CHECK(block.error == c.error);
        CHECK(block.fields.size() == c.fields);
        CHECK(block.body_offset == c.body_offset);
    }
}

TEST_CASE("unfold drops the line end of every fold") {
    CHECK(unfold(" a\r\n b") == " a b");
    CHECK(unfold(" a\n\tb") == " a\tb");
    CHECK(unfold("no fold") == "no fold");
    CHECK(unfold("a\r\n b\r\n  c") == "a b  c");
}

TEST_CASE("find_field is case-insensitive and returns the first") {
    const auto block = parse_header_block("message-id: <1@x>\r\nMESSAGE-ID: <2@x>\r\n\r\n");
    const auto* f = find_field(block, "Message-ID");
    REQUIRE(f != nullptr);
    CHECK(f->value == " <1@x>");
    CHECK(find_field(block, "Date") == nullptr);
}

TEST_CASE("address lists parse name-addr, addr-spec, groups, comments and obs forms") {
    struct Case {
        const char* text;
        const char* want;
    };
    const Case cases[] = {
        {"user@example.com", "|user@example.com;"},
        {"John Doe <john@example.com>", "John Doe|john@example.com;"},
        {"\"Doe, John\" <john@example.com>", "Doe, John|john@example.com;"},
        {"\"Joe Q. Public\" <john.q.public@example.com>",
         "Joe Q. Public|john.q.public@example.com;"},
        {"John Q. Public <jqp@example.com>", "John Q. Public|jqp@example.com;"},
        {"Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>",
         "Mary Smith|mary@x.test;|jdoe@example.org;Who?|one@y.test;"},
        {R"(<boss@nil.test>, "Giant; \"Big\" Box" <sysservices@example.net>)",
         "|boss@nil.test;Giant; \"Big\" Box|sysservices@example.net;"},
        {"A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
         "Ed Jones|c@a.test;|joe@where.test;John|jdoe@one.test;"},
        {"Undisclosed recipients:;", ""},
        {"undisclosed-recipients:;", ""},
        {"Empty: ;, a@b.example", "|a@b.example;"},
        {"Group: a@b.example, c@d.example;, e@f.example",
         "|a@b.example;|c@d.example;|e@f.example;"},
        {"Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", "Pete|pete@silly.test;"},
        {"Chris Jones <c@(Chris's host.)public.example>", "Chris Jones|c@public.example;"},
        {"a@example.com (Ann (the (very) nested) Example)", "|a@example.com;"},
        {"(comment) a@example.com", "|a@example.com;"},
        {"=?UTF-8?B?SsO2cmc=?= <j@example.com>", "=?UTF-8?B?SsO2cmc=?=|j@example.com;"},
        {"=?UTF-8?Q?J=C3=B6rg_(x),?= <j@example.com>", "=?UTF-8?Q?J=C3=B6rg_(x),?=|j@example.com;"},
        {"J\xc3\xb6rg <j\xc3\xb6rg@b\xc3\xbc"
         "cher.example>",
         "J\xc3\xb6rg|j\xc3\xb6rg@b\xc3\xbc"
         "cher.example;"},
        {"\"john doe\"@example.com", "|\"john doe\"@example.com;"},
        {"\"john\r\n doe\"@example.com", "|\"john doe\"@example.com;"},
        {"a@[192.0.2.1\r\n ]", "|a@[192.0.2.1 ];"},
        {"user@[192.0.2.1]", "|user@[192.0.2.1];"},
        {"<@route.example,@b.example:user@example.com>", "|user@example.com;"},
        {"a@b.example, , c@d.example,", "|a@b.example;|c@d.example;"},
        {", a@b.example", "|a@b.example;"},
        {"a@b.example,\r\n c@d.example", "|a@b.example;|c@d.example;"},
        {"John\r\n Doe <j@example.com>", "John Doe|j@example.com;"},
        {"john . doe @ example . com", "|john.doe@example.com;"},
        {"\"\" <a@b.example>", "|a@b.example;"},
        {"Dr. Who <who@tardis.example>", "Dr. Who|who@tardis.example;"},
        {"  <a@b.example>  ", "|a@b.example;"},
    };
    for (const auto& c : cases) {
        CAPTURE(show(c.text));
        CHECK(describe(parse_address_list(c.text)) == c.want);
    }
}

TEST_CASE("garbage addresses are refused") {
    for (const char* text : {
             "",
             "   ",
             "(just a comment)",
             ",",
             ", ,",
             "<<a@b.example>",
             "<a@b.example>>",
             "a@",
             "@b.example",
             "a",
             "<a@b.example",
             "a@b.example>",
             "\"unbalanced <a@b.example>",
             "(unbalanced a@b.example",
             "a@b.example)",
             "a@b.example (open",
             "a@[1.2.3.4",
             "a@1.2.3.4]",
             "a@b.example c@d.example",
             "John <a@b.example> extra",
             "a@b.example.",
             "a@.b.example",
             "a..b@c.example",
             ".a@b.example",
             "a.@b.example",
             "<>",
             "John Doe",
             "John Doe <>",
             "a@b@c.example",
             "Group: a@b.example",
             "Group: a@b.example; c@d.example",
             "Outer: Inner: a@b.example;;",
             "\xff <a@b.example>",
             "a\x01@b.example",
             "\"a\x01\" <a@b.example>",
             "a@b.example\r\nBcc: x@y.example",
             "a@b.example\r\n",
             "john@x.example <john@x.example>",
             "a\\b@c.example",
             "<a@b.example> <c@d.example>",
             ".John <a@b.example>",
             "<a@b.example>, <>",
             "a@b.example;",
             "<a(@b.example>",
         }) {
        CAPTURE(show(text));
        CHECK(describe(parse_address_list(text)) == "error");
    }
}

TEST_CASE("mailbox lists refuse groups") {
    CHECK(describe(parse_mailbox_list("a@b.example, C <c@d.example>")) ==
          "|a@b.example;C|c@d.example;");
    CHECK(describe(parse_mailbox_list("undisclosed-recipients:;")) == "error");
    CHECK(describe(parse_mailbox_list("G: a@b.example;")) == "error");
    CHECK(describe(parse_mailbox_list("")) == "error");
}

TEST_CASE("a well-formed submission passes and reports missing Message-ID and Date") {
    const auto bare =
        check("From: Ann <ann@example.com>\r\nTo: bob@example.com\r\nSubject: hi\r\n");
    CHECK(bare.ok);
    CHECK(bare.reply == Reply{});
    CHECK_FALSE(bare.has_message_id);
    CHECK_FALSE(bare.has_date);
    const auto full = check("From: ann@example.com\r\nMessage-ID: <1@example.com>\r\n"
                            "Date: Sun, 29 Nov 2026 06:45:38 +0000\r\n");
    CHECK(full.ok);
    CHECK(full.has_message_id);
    CHECK(full.has_date);
    const auto lower = check("from: ann@example.com\r\nmessage-id: <1@x>\r\ndate: x\r\n");
    CHECK(lower.ok);
    CHECK(lower.has_message_id);
    CHECK(lower.has_date);
}

TEST_CASE("submission header problems are refused with 550 5.6.0 naming the problem") {
    struct Case {
        std::string headers;
        std::string want;
    };
    const std::string from = "From: ann@example.com\r\n";
    const Case cases[] = {
        {"To: bob@example.com\r\n", "no From: header"},
        {"", "no From: header"},
        {from + "From: eve@example.com\r\n", "more than one From: header"},
        {from + "Subject: a\r\nsubject: b\r\n", "duplicate Subject: header"},
        {from + "Date: a\r\nDATE: b\r\n", "duplicate Date: header"},
        {from + "To: a@b.example\r\nTo: c@d.example\r\n", "duplicate To: header"},
        {from + "Cc: a@b.example\r\nCc: c@d.example\r\n", "duplicate Cc: header"},
        {from + "Bcc:\r\nBcc:\r\n", "duplicate Bcc: header"},
        {from + "Reply-To: a@b.example\r\nReply-To: a@b.example\r\n", "duplicate Reply-To: header"},
        {from + "Sender: a@b.example\r\nSender: a@b.example\r\n", "duplicate Sender: header"},
        {from + "Message-ID: <1@x>\r\nMessage-Id: <2@x>\r\n", "duplicate Message-ID: header"},
        {from + "In-Reply-To: <1@x>\r\nIn-Reply-To: <2@x>\r\n", "duplicate In-Reply-To: header"},
        {from + "References: <1@x>\r\nReferences: <2@x>\r\n", "duplicate References: header"},
        {"From: <<ann@example.com>\r\n", "unparseable From: header"},
        {"From:\r\n", "unparseable From: header"},
        {"From: undisclosed-recipients:;\r\n", "unparseable From: header"},
        {"From: a@b.example, c@d.example\r\n",
         "From: header has several mailboxes but there is no Sender: header"},
        {"From: a@b.example, c@d.example\r\nSender: a@b.example, c@d.example\r\n",
         "unparseable Sender: header"},
        {from + "Sender: <broken\r\n", "unparseable Sender: header"},
        {from + "To: bob@\r\n", "unparseable To: header"},
        {from + "To:\r\n", "unparseable To: header"},
        {from + "Cc: a@b.example c@d.example\r\n", "unparseable Cc: header"},
        {from + "Reply-To: \"open\r\n", "unparseable Reply-To: header"},
        {from + "Bcc: <x\r\n", "unparseable Bcc: header"},
        {from + "Not a header\r\n", "line 2: header line without a colon"},
    };
    for (const auto& c : cases) {
        CAPTURE(show(c.headers));
        CHECK(refusal(check(c.headers)) == "550 5.6.0 Bad message header: " + c.want + "\r\n");
    }
}

TEST_CASE("fields the RFC lets repeat, an empty Bcc and groups are accepted") {
    for (const std::string headers : {
             "From: a@b.example\r\nReceived: x\r\nReceived: y\r\n",
             "From: a@b.example\r\nComments: x\r\nComments: y\r\nKeywords: a\r\nKeywords: b\r\n",
             "From: a@b.example\r\nResent-Date: x\r\nResent-Date: y\r\n",
             "From: a@b.example\r\nBcc:\r\n",
             "From: a@b.example\r\nBcc: \r\n",
             "From: a@b.example\r\nTo: undisclosed-recipients:;\r\n",
             "From: a@b.example, c@d.example\r\nSender: a@b.example\r\n",
             "From: a@b.example (Ann)\r\nTo: A Team: x@y.example, z@y.example;\r\n",
         }) {
        CAPTURE(show(headers));
        CHECK(refusal(check(headers)) == "ok");
    }
}

TEST_CASE("dates format as RFC 5322 date-time with the offset") {
    struct Case {
        std::int64_t t;
        int offset;
        const char* want;
    };
    const Case cases[] = {
        {0, 0, "Thu, 1 Jan 1970 00:00:00 +0000"},
        {-1, 0, "Wed, 31 Dec 1969 23:59:59 +0000"},
        {1795934738, 0, "Sun, 29 Nov 2026 06:45:38 +0000"},
        {1795934738, -360, "Sun, 29 Nov 2026 00:45:38 -0600"},
        {1795934738, 330, "Sun, 29 Nov 2026 12:15:38 +0530"},
        {1795934738, -420, "Sat, 28 Nov 2026 23:45:38 -0700"},
        {1709208000, 0, "Thu, 29 Feb 2024 12:00:00 +0000"},
        {951782400, 0, "Tue, 29 Feb 2000 00:00:00 +0000"},
        {4102444799, 0, "Thu, 31 Dec 2099 23:59:59 +0000"},
        {253402300799, 0, "Fri, 31 Dec 9999 23:59:59 +0000"},
        {-2208988800, 0, "Mon, 1 Jan 1900 00:00:00 +0000"},
        {0, -1439, "Wed, 31 Dec 1969 00:01:00 -2359"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.t);
        CAPTURE(c.offset);
        CHECK(format_rfc5322_date(c.t, c.offset) == c.want);
    }
}
