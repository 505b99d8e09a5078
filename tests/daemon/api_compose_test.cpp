#include "personalize/compose.hpp"

#include "daemon/api_request.hpp"
#include "personalize/merge.hpp"
#include "personalize/transfer.hpp"
#include "smtp/message_header.hpp"

#include <doctest/doctest.h>

#include <string>

namespace personalize = ember::personalize;
namespace smtp = ember::smtp;

namespace {

personalize::ComposeInput input() {
    personalize::ComposeInput in;
    in.from_name = "Shop";
    in.from_address = "news@example.com";
    in.subject = "Hello";
    in.boundary_seed = "SEED";
    return in;
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1))
        ++n;
    return n;
}

bool lines_within(const std::string& text, std::size_t limit) {
    std::size_t start = 0;
    while (start < text.size()) {
        auto end = text.find("\r\n", start);
        if (end == std::string::npos)
            end = text.size();
        if (end - start > limit)
            return false;
        start = end + 2;
    }
    return true;
}

} // namespace

TEST_CASE("a text-only message is one text/plain part, 7bit when ASCII") {
    auto in = input();
    in.text = "Hi there\nsecond line";
    const auto m = personalize::compose(in);
    CHECK(m.starts_with("From: Shop <news@example.com>\r\nSubject: Hello\r\n"));
    CHECK(m.find("MIME-Version: 1.0\r\n") != std::string::npos);
    CHECK(m.find("Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Transfer-Encoding: 7bit\r\n\r\nHi there\r\nsecond line") !=
          std::string::npos);
    const auto header = smtp::parse_header_block(m);
    CHECK_FALSE(header.malformed);
    CHECK(smtp::check_submission_headers(header).ok);
}

TEST_CASE("text and html make multipart/alternative with text first") {
    auto in = input();
    in.text = "plain";
    in.html = "<p>rich</p>";
    const auto m = personalize::compose(in);
    CHECK(m.find("Content-Type: multipart/alternative;\r\n boundary=\"=_alt_SEED\"") !=
          std::string::npos);
    const auto plain = m.find("text/plain");
    const auto html = m.find("text/html");
    CHECK(plain < html);
    CHECK(count(m, "--=_alt_SEED\r\n") == 2);
    CHECK(m.ends_with("--=_alt_SEED--\r\n"));
}

TEST_CASE("attachments make multipart/mixed with base64 parts and RFC 2231 names") {
    auto in = input();
    in.text = "see attached";
    in.html = "<p>see attached</p>";
    in.attachments.push_back({"report.pdf", "application/pdf", std::string(100, '\x01')});
    in.attachments.push_back({"résumé.txt", "text/plain", "hello"});
    const auto m = personalize::compose(in);
    CHECK(m.find("Content-Type: multipart/mixed;\r\n boundary=\"=_mix_SEED\"") !=
          std::string::npos);
    CHECK(m.find("multipart/alternative") > m.find("multipart/mixed"));
    CHECK(m.find("Content-Disposition: attachment;\r\n filename=\"report.pdf\"") !=
          std::string::npos);
    CHECK(m.find("filename*=utf-8''r%C3%A9sum%C3%A9.txt") != std::string::npos);
    CHECK(m.find("Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n") != std::string::npos);
    CHECK(count(m, "--=_mix_SEED\r\n") == 3);
    CHECK(lines_within(m, 78));
}

TEST_CASE("non-ASCII text is quoted-printable and non-ASCII header text RFC 2047-encoded") {
    auto in = input();
    in.from_name = "Café Zoë";
    in.subject = "Grüße aus Köln";
    in.text = "Grüße\n" + std::string(200, 'x');
    in.headers.emplace_back("X-Note", "naïve");
    const auto m = personalize::compose(in);
    for (const char c : m)
        CHECK(static_cast<unsigned char>(c) < 0x80);
    CHECK(m.find("Content-Transfer-Encoding: quoted-printable") != std::string::npos);
    CHECK(m.find("Subject: =?utf-8?") != std::string::npos);
    CHECK(m.find("From: =?utf-8?") != std::string::npos);
    CHECK(m.find("X-Note: =?utf-8?") != std::string::npos);
    CHECK(lines_within(m, 78));
    const auto body = m.substr(m.find("\r\n\r\n") + 4);
    CHECK(personalize::decode_quoted_printable(body) == "Grüße\r\n" + std::string(200, 'x'));
}

TEST_CASE("a composed message with markup and X-Ember-Vars merges per recipient") {
    auto in = input();
    in.subject = "Hi {{ name }}";
    in.text = "Dear {{ name }}, your code is {{ code }}.";
    in.html = "<p>Dear {{ name }}</p>";
    const auto vars = ember::daemon::layered_vars(boost::json::object{{"code", "X1"}},
                                                  boost::json::object{{"name", "Zoë"}});
    const auto m = "X-Ember-Vars: " + ember::daemon::vars_field_value(vars) + "\r\n" +
                   personalize::compose(in);
    auto compiled = personalize::CompiledMessage::compile(m);
    REQUIRE(std::holds_alternative<personalize::CompiledMessage>(compiled));
    const auto& c = std::get<personalize::CompiledMessage>(compiled);
    CHECK(c.personalized());
    personalize::Variables v;
    v.add(c.message_variables());
    auto rendered = c.render(v);
    REQUIRE(std::holds_alternative<std::string>(rendered));
    const auto& out = std::get<std::string>(rendered);
    CHECK(out.find("X-Ember-Vars") == std::string::npos);
    CHECK(out.find("{{") == std::string::npos);
    CHECK(out.find("X1") != std::string::npos);
}
