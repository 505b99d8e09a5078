#include "feedback/mime.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace ember::feedback::mime;

TEST_CASE("CRLF and lone CR line ends become LF") {
    CHECK(normalize_newlines("a\r\nb\rc\nd") == "a\nb\nc\nd");
    CHECK(normalize_newlines("\r\r\n") == "\n\n");
}

TEST_CASE("header fields are unfolded and looked up case-insensitively") {
    const auto h = parse_headers("Subject: one\n two\nX-Empty:\nDiagnostic-Code : smtp; 550\n"
                                 "not a field\nsubject: second\n");
    CHECK(h.get("SUBJECT") == "one two");
    CHECK(h.get("x-empty") == "");
    CHECK(h.has("X-Empty"));
    CHECK(h.get("Diagnostic-Code") == "smtp; 550");
    CHECK(h.get_all("Subject").size() == 2);
    CHECK(h.get("Missing") == "");
}

TEST_CASE("an entity splits at the first empty line; an mbox From line is skipped") {
    const auto e = parse_entity("From MAILER-DAEMON Thu Apr 29 2010\nTo: a@b\n\nbody\n\nmore");
    CHECK(e.headers.get("To") == "a@b");
    CHECK(e.body == "body\n\nmore");
    const auto bare = parse_entity("just text\nno headers");
    CHECK(bare.headers.fields.empty());
    CHECK(bare.body == "just text\nno headers");
}

TEST_CASE("Content-Type parameters parse quoted and unquoted, names lowered") {
    const auto t = parse_content_type(
        "Multipart/Report; report-type=delivery-status;\n BOUNDARY=\"a;b c\"; charset=utf-8");
    CHECK(t.mime_type() == "multipart/report");
    CHECK(t.param("report-type") == "delivery-status");
    CHECK(t.param("boundary") == "a;b c");
    CHECK(t.param("charset") == "utf-8");
    CHECK(parse_content_type("").mime_type() == "text/plain");
    CHECK(parse_content_type("garbage").mime_type() == "text/plain");
}

TEST_CASE("multipart bodies split at their boundary lines only") {
    const std::string body = "preamble\n--b\nA: 1\n\none\n--bb\nnot a boundary\n--b\n\ntwo\n--b--\n"
                             "epilogue";
    const auto parts = split_multipart(body, "b");
    REQUIRE(parts.size() == 2);
    CHECK(parts[0] == "A: 1\n\none\n--bb\nnot a boundary");
    CHECK(parts[1] == "\ntwo");
    // An unterminated last part runs to the end.
    const auto open = split_multipart("--x\n\nlast line", "x");
    REQUIRE(open.size() == 1);
    CHECK(open[0] == "\nlast line");
    CHECK(split_multipart("no boundary here", "x").empty());
}

TEST_CASE("quoted-printable and base64 decode, tolerating junk") {
    CHECK(decode_quoted_printable("caf=C3=A9 soft=\nbreak =ZZ end=") ==
          "caf\xc3\xa9 softbreak =ZZ end");
    CHECK(decode_base64("aGVs\nbG8=") == "hello");
    CHECK(decode_base64("aGV!!sbG8") == "hello");
    CHECK(decode_transfer("aGVsbG8=", " BASE64 ") == "hello");
    CHECK(decode_transfer("a=3Db", "7bit") == "a=3Db");
}

TEST_CASE("RFC 2047 encoded words decode, and the space between two of them goes") {
    CHECK(decode_words("=?UTF-8?B?44Gr44KD44KT?=") == "\xe3\x81\xab\xe3\x82\x83\xe3\x82\x93");
    CHECK(decode_words("=?iso-8859-1?Q?Delivery_Status_Notification_=28Failure=29?=") ==
          "Delivery Status Notification (Failure)");
    CHECK(decode_words("=?a?Q?x?= =?a?Q?y?= z") == "xy z");
    CHECK(decode_words("plain =?broken") == "plain =?broken");
}

TEST_CASE("the MIME tree flattens to leaves; the returned message is one leaf") {
    const std::string message = "Content-Type: multipart/report; boundary=outer\n\n"
                                "This is a multi-part message in MIME format.\n"
                                "--outer\n"
                                "Content-Type: multipart/alternative; boundary=inner\n\n"
                                "--inner\nContent-Type: text/plain\n"
                                "Content-Transfer-Encoding: quoted-printable\n\nhi=21\n"
                                "--inner\nContent-Type: text/html\n\n<p>hi</p>\n--inner--\n"
                                "--outer\nContent-Type: message/delivery-status\n\nAction: failed\n"
                                "--outer\nContent-Type: message/rfc822\n\n"
                                "Content-Type: multipart/mixed; boundary=x\n\n--x\n\nnot read\n"
                                "--outer--\n";
    const auto parts = leaves(parse_entity(message));
    REQUIRE(parts.size() == 5);
    CHECK(parts[0].preamble);
    CHECK(parts[1].mime_type == "text/plain");
    CHECK(parts[1].body == "hi!");
    CHECK(parts[2].mime_type == "text/html");
    CHECK(parts[3].mime_type == "message/delivery-status");
    CHECK(parts[4].mime_type == "message/rfc822");
    CHECK(parts[4].body.find("not read") != std::string::npos);
}

TEST_CASE("nesting deeper than the limit stops being split, it is not followed") {
    std::string message;
    for (std::size_t depth = 0; depth < 3 * kMaxDepth; ++depth)
        message += "Content-Type: multipart/mixed; boundary=b" + std::to_string(depth) + "\n\n--b" +
                   std::to_string(depth) + "\n";
    message += "\nleaf\n";
    const auto parts = leaves(parse_entity(message));
    REQUIRE(!parts.empty());
    for (const auto& p : parts)
        CHECK(p.depth <= kMaxDepth);
}
