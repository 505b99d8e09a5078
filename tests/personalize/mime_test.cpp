#include "personalize/mime.hpp"

#include "personalize/transfer.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace ember::personalize;

namespace {

std::string crlf(std::string_view text) {
    return to_crlf(text);
}

std::string_view at(std::string_view text, mime::Span s) {
    return text.substr(s.begin, s.size());
}

} // namespace

TEST_CASE("header fields keep their raw bytes, folds included") {
    const auto msg = crlf("Subject: a\n b\nX-Y :z\n\nbody\n");
    const auto block = mime::parse_header(msg, {0, msg.size()});
    REQUIRE(block.fields.size() == 2);
    CHECK(block.fields[0].name == "Subject");
    CHECK(block.fields[0].value == " a\r\n b");
    CHECK(at(msg, block.fields[0].raw) == "Subject: a\r\n b\r\n");
    CHECK(block.fields[1].name == "X-Y");
    CHECK(block.fields[1].value == "z");
    CHECK(block.has_separator);
    CHECK(at(msg, block.body) == "body\r\n");
}

TEST_CASE("a header block stops at a line that is not a field") {
    const std::string msg = "A: 1\r\nnot a field\r\nmore\r\n";
    const auto block = mime::parse_header(msg, {0, msg.size()});
    CHECK(block.fields.size() == 1);
    CHECK_FALSE(block.has_separator);
    CHECK(at(msg, block.body) == "not a field\r\nmore\r\n");
}

TEST_CASE("Content-Type parameters parse with quotes, comments and their raw spans") {
    const std::string value =
        " Text/HTML (comment) ; Charset=\"ISO-8859-1\";\r\n\tformat=flowed; x";
    const auto ct = mime::parse_content_type(value, 100);
    CHECK(ct.present);
    CHECK(ct.type == "text");
    CHECK(ct.subtype == "html");
    REQUIRE(ct.param("charset") != nullptr);
    CHECK(ct.param("charset")->value == "ISO-8859-1");
    const auto span = ct.param("charset")->raw_value;
    CHECK(value.substr(span.begin - 100, span.size()) == "\"ISO-8859-1\"");
    REQUIRE(ct.param("format") != nullptr);
    CHECK(ct.param("format")->value == "flowed");
    CHECK(ct.param("x") == nullptr);
    CHECK(mime::parse_content_type("garbage", 0).type == "text");
    CHECK_FALSE(mime::parse_content_type("garbage", 0).present);
    CHECK(mime::parse_content_type("multipart/mixed; boundary=----=_Part_1", 0)
              .param("boundary")
              ->value == "----=_Part_1");
}

TEST_CASE("nested multiparts split into parts with preamble and epilogue outside them") {
    const auto msg = crlf("Content-Type: multipart/mixed; boundary=outer\n"
                          "\n"
                          "preamble\n"
                          "--outer\n"
                          "Content-Type: multipart/alternative; boundary=\"in ner\"\n"
                          "\n"
                          "--in ner\n"
                          "Content-Type: text/plain\n"
                          "\n"
                          "plain\n"
                          "--in ner  \n"
                          "Content-Type: text/html\n"
                          "\n"
                          "<p>html</p>\n"
                          "\n"
                          "--in ner--\n"
                          "--outer\n"
                          "Content-Type: application/pdf\n"
                          "Content-Disposition: attachment; filename=a.pdf\n"
                          "Content-Transfer-Encoding: base64\n"
                          "\n"
                          "JVBERi0=\n"
                          "--outer--\n"
                          "epilogue\n");
    const auto root = mime::parse(msg);
    REQUIRE(root.children.size() == 2);
    const auto& alt = root.children[0];
    REQUIRE(alt.children.size() == 2);
    CHECK(alt.children[0].content_type.subtype == "plain");
    CHECK(at(msg, alt.children[0].body) == "plain");
    CHECK(alt.children[1].content_type.subtype == "html");
    CHECK(at(msg, alt.children[1].body) == "<p>html</p>\r\n");
    const auto& pdf = root.children[1];
    CHECK(pdf.attachment);
    CHECK(pdf.encoding == TransferEncoding::Base64);
    CHECK(at(msg, pdf.body) == "JVBERi0=");
    CHECK(msg.substr(pdf.raw.end) == "\r\n--outer--\r\nepilogue\r\n");
    CHECK(msg.substr(root.body.begin, root.children[0].raw.begin - root.body.begin) ==
          "preamble\r\n--outer\r\n");
}

TEST_CASE("a multipart without its close delimiter runs to the end") {
    const auto msg = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\n");
    const auto root = mime::parse(msg);
    REQUIRE(root.children.size() == 2);
    CHECK(at(msg, root.children[1].body) == "two\r\n");
}

TEST_CASE("boundaries must start a line and be followed by blanks or the line end") {
    const auto msg =
        crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx --b\n--bb\n--b--\n");
    const auto root = mime::parse(msg);
    REQUIRE(root.children.size() == 1);
    CHECK(at(msg, root.children[0].body) == "x --b\r\n--bb");
}

TEST_CASE("opaque entities: no boundary, message/rfc822, too deep, too many parts") {
    const auto no_boundary = crlf("Content-Type: multipart/mixed; boundary=zz\n\nno parts\n");
    CHECK(mime::parse(no_boundary).children.empty());

    const auto rfc822 = crlf("Content-Type: message/rfc822\n\nContent-Type: multipart/mixed; "
                             "boundary=b\n\n--b\n\nx\n--b--\n");
    CHECK(mime::parse(rfc822).children.empty());

    std::string deep = "Content-Type: multipart/mixed; boundary=b0\r\n\r\n";
    std::string close;
    for (int i = 1; i <= 20; ++i) {
        deep += "--b" + std::to_string(i - 1) + "\r\nContent-Type: multipart/mixed; boundary=b" +
                std::to_string(i) + "\r\n\r\n";
        close = "--b" + std::to_string(i - 1) + "--\r\n" + close;
    }
    deep += close;
    const auto root = mime::parse(deep, {4, 1000});
    std::size_t depth = 0;
    for (const auto* e = &root; !e->children.empty(); e = &e->children[0])
        ++depth;
    CHECK(depth == 4);

    std::string many = "Content-Type: multipart/mixed; boundary=b\r\n\r\n";
    for (int i = 0; i < 20; ++i)
        many += "--b\r\n\r\nx\r\n";
    many += "--b--\r\n";
    CHECK(mime::parse(many, {16, 10}).children.empty());
    CHECK(mime::parse(many, {16, 21}).children.size() == 20);
}
