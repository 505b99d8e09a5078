#include "auth/dkim_canon.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using ember::auth::DkimCanon;
namespace dkim = ember::auth::dkim;

namespace {

std::string header(DkimCanon canon, std::string_view raw) {
    std::string out;
    dkim::canonicalize_header(canon, raw, out);
    return out;
}

std::string b64(const dkim::Sha256& h) {
    return dkim::base64(h.data(), h.size());
}

} // namespace

TEST_CASE("relaxed header canonicalization follows the RFC 6376 3.4.5 example") {
    CHECK(header(DkimCanon::Relaxed, "A: X") == "a:X");
    CHECK(header(DkimCanon::Relaxed, "B : Y\t\r\n\tZ  ") == "b:Y Z");
}

TEST_CASE("simple header canonicalization keeps the field byte for byte") {
    CHECK(header(DkimCanon::Simple, "B : Y\t\r\n\tZ  ") == "B : Y\t\r\n\tZ  ");
}

TEST_CASE("relaxed header canonicalization unfolds, squeezes and trims every value") {
    struct Case {
        std::string raw;
        std::string want;
    };
    const std::vector<Case> cases{
        {"Subject:   lots   of\t\tspace   ", "subject:lots of space"},
        {"To: a@example.org,\r\n b@example.org,\r\n\t c@example.org", "to:a@example.org, "
                                                                      "b@example.org, "
                                                                      "c@example.org"},
        {"X-Empty:", "x-empty:"},
        {"X-Empty:   \r\n\t ", "x-empty:"},
        {"From: J\xc3\xb6ran <j\xc3\xb6ran@example.com>",
         "from:J\xc3\xb6ran <j\xc3\xb6ran@example.com>"},
        {"MIME-Version:1.0", "mime-version:1.0"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.raw);
        const auto got = header(DkimCanon::Relaxed, c.raw);
        CAPTURE(got);
        CHECK(got == c.want);
    }
}

TEST_CASE("body canonicalization follows RFC 6376 3.4.5 and its edge cases") {
    struct Case {
        std::string body;
        std::string simple;
        std::string relaxed;
    };
    const std::vector<Case> cases{
        {" C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n", " C\r\nD E\r\n"},
        {"", "\r\n", ""},
        {"\r\n", "\r\n", ""},
        {"\r\n\r\n\r\n", "\r\n", ""},
        {"no final line end", "no final line end\r\n", "no final line end\r\n"},
        {"text\r\n  \r\n\t\r\n", "text\r\n  \r\n\t\r\n", "text\r\n"},
        {"a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n"},
        {".\r\n..dots\r\n.\r\n", ".\r\n..dots\r\n.\r\n", ".\r\n..dots\r\n.\r\n"},
        {"caf\xc3\xa9  \xe2\x82\xac\r\n", "caf\xc3\xa9  \xe2\x82\xac\r\n",
         "caf\xc3\xa9 \xe2\x82\xac\r\n"},
        {"bare\rcr and\nlf \r\n", "bare\rcr and\nlf \r\n", "bare\rcr and\nlf\r\n"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.body);
        const auto simple = dkim::canonicalize_body(DkimCanon::Simple, c.body);
        const auto relaxed = dkim::canonicalize_body(DkimCanon::Relaxed, c.body);
        CAPTURE(simple);
        CAPTURE(relaxed);
        CHECK(simple == c.simple);
        CHECK(relaxed == c.relaxed);
    }
}

TEST_CASE("the empty body hashes to the values every DKIM verifier knows") {
    // SHA-256 of "\r\n" and of "" (RFC 6376 3.4.3, 3.4.4).
    CHECK(b64(dkim::body_hash(DkimCanon::Simple, "")) ==
          "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
    CHECK(b64(dkim::body_hash(DkimCanon::Relaxed, "\r\n\r\n")) ==
          "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
}

TEST_CASE("the streamed body hash equals the hash of the whole canonical body") {
    std::string body;
    for (int i = 0; body.size() < 5 * 1024 * 1024; ++i)
        body += "line " + std::to_string(i) + " \t with  runs of   space\t\r\n" +
                (i % 7 == 0 ? "\r\n" : "") + (i % 11 == 0 ? ".dot first\r\n" : "");
    body += "\r\n\r\n";
    for (const auto canon : {DkimCanon::Simple, DkimCanon::Relaxed}) {
        CAPTURE(static_cast<int>(canon));
        CHECK(dkim::body_hash(canon, body) == dkim::sha256(dkim::canonicalize_body(canon, body)));
    }
}

TEST_CASE("a message splits into its header fields and body at the first empty line") {
    const std::string message = "From: a@example.com\r\n"
                                "Subject : two\r\n  lines\r\n"
                                "To:b@example.org\r\n"
                                "\r\n"
                                "body\r\n\r\nmore\r\n";
    const auto split = dkim::split_message(message);
    REQUIRE(split.headers.size() == 3);
    CHECK(split.headers[0].name == "From");
    CHECK(split.headers[0].raw == "From: a@example.com");
    CHECK(split.headers[1].name == "Subject");
    CHECK(split.headers[1].raw == "Subject : two\r\n  lines");
    CHECK(split.headers[2].name == "To");
    CHECK(split.body == "body\r\n\r\nmore\r\n");
}

TEST_CASE("a message without an empty line is all header, one starting with it all body") {
    const auto headers_only = dkim::split_message("From: a@example.com\r\nTo: b@example.org\r\n");
    CHECK(headers_only.headers.size() == 2);
    CHECK(headers_only.body.empty());

    const auto body_only = dkim::split_message("\r\nbody\r\n");
    CHECK(body_only.headers.empty());
    CHECK(body_only.body == "body\r\n");

    const auto no_colon = dkim::split_message("garbage line\r\n\r\n");
    REQUIRE(no_colon.headers.size() == 1);
    CHECK(no_colon.headers[0].name.empty());
}
