#include "personalize/transfer.hpp"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

using namespace ember::personalize;

namespace {

std::string qp(std::string_view text) {
    std::string out;
    encode_quoted_printable(text, out);
    return out;
}

std::string b64(std::string_view data) {
    std::string out;
    encode_base64(data, out);
    return out;
}

std::vector<std::string> lines(const std::string& s) {
    std::vector<std::string> out;
    std::size_t start = 0;
    for (auto pos = s.find("\r\n"); pos != std::string::npos; pos = s.find("\r\n", start)) {
        out.push_back(s.substr(start, pos - start));
        start = pos + 2;
    }
    out.push_back(s.substr(start));
    return out;
}

} // namespace

TEST_CASE("transfer encoding names parse case-insensitively, absent is 7bit") {
    CHECK(parse_transfer_encoding("") == TransferEncoding::SevenBit);
    CHECK(parse_transfer_encoding(" Quoted-Printable\r\n") == TransferEncoding::QuotedPrintable);
    CHECK(parse_transfer_encoding("BASE64") == TransferEncoding::Base64);
    CHECK(parse_transfer_encoding("8bit") == TransferEncoding::EightBit);
    CHECK(parse_transfer_encoding("binary") == TransferEncoding::Binary);
    CHECK(parse_transfer_encoding("x-uuencode") == TransferEncoding::Other);
}

TEST_CASE("quoted-printable decodes escapes, soft breaks and transport padding") {
    struct Case {
        const char* in;
        const char* want;
    };
    const std::vector<Case> cases = {
        {"caf=C3=A9\r\n", "caf\xC3\xA9\r\n"}, {"lower =c3=a9", "lower \xC3\xA9"},
        {"soft=\r\nbreak", "softbreak"},      {"soft=  \r\nbreak=\nLF", "softbreakLF"},
        {"padded   \r\nx", "padded\r\nx"},    {"bad =ZZ and =4", "bad =ZZ and =4"},
        {"{{ na=\r\nme }}", "{{ name }}"},    {"a=3D=3Db", "a==b"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.in);
        CHECK(decode_quoted_printable(c.in) == c.want);
    }
}

TEST_CASE("quoted-printable keeps lines within 76 and round-trips") {
    std::string text;
    for (int i = 0; i < 40; ++i)
        text += "caf\xC3\xA9 = {{x}} ";
    text += "\r\ntrailing blank \r\n\ttab\t\r\n" + std::string(200, 'a') + "\r\n";
    const auto encoded = qp(text);
    for (const auto& line : lines(encoded)) {
        CAPTURE(line);
        CHECK(line.size() <= 76);
        CHECK((line.empty() || (line.back() != ' ' && line.back() != '\t')));
        for (const char c : line)
            CHECK(static_cast<unsigned char>(c) < 0x80);
    }
    CHECK(decode_quoted_printable(encoded) == text);
    CHECK(encoded.find("blank=20\r\n") != std::string::npos);
    CHECK(qp("no newline") == "no newline");
    CHECK(qp("a=b\r\n") == "a=3Db\r\n");
    CHECK(qp("bare\rCR\nLF") == "bare=0DCR=0ALF");
}

TEST_CASE("quoted-printable never splits an escape across a soft break") {
    for (std::size_t n = 70; n < 80; ++n) {
        const std::string text = std::string(n, 'x') + "\xC3\xA9\xC3\xA9";
        const auto encoded = qp(text);
        CAPTURE(n);
        CHECK(decode_quoted_printable(encoded) == text);
        for (const auto& line : lines(encoded))
            CHECK(line.size() <= 76);
    }
}

TEST_CASE("quoted-printable round-trips random text with blanks, escapes and bare CRs") {
    std::mt19937 rng(20240101); // seeded: the same cases every run
    const std::string alphabet("ab =\t.{}\xC3\xA9\0\xFF", 12);
    for (int round = 0; round < 500; ++round) {
        std::string text;
        const auto size = rng() % 300;
        for (std::size_t i = 0; i < size; ++i) {
            if (rng() % 20 == 0)
                text += "\r\n";
            else
                text += alphabet[rng() % alphabet.size()];
        }
        CAPTURE(round);
        const auto encoded = qp(text);
        for (const auto& line : lines(encoded)) {
            CHECK(line.size() <= 76);
            CHECK((line.empty() || (line.back() != ' ' && line.back() != '\t')));
        }
        CHECK(decode_quoted_printable(encoded) == text);
    }
}

TEST_CASE("base64 writes 76-column lines and decodes leniently") {
    CHECK(b64("") == "");
    CHECK(b64("f") == "Zg==");
    CHECK(b64("fo") == "Zm8=");
    CHECK(b64("foo") == "Zm9v");
    std::string data;
    for (int i = 0; i < 256; ++i)
        data += static_cast<char>(i);
    const auto encoded = b64(data);
    const auto ls = lines(encoded);
    for (std::size_t i = 0; i < ls.size(); ++i) {
        CAPTURE(i);
        CHECK(ls[i].size() == (i + 1 < ls.size() ? 76 : 344 - 76 * (ls.size() - 1)));
    }
    CHECK(decode_base64(encoded) == data);
    CHECK(decode_base64("Zm9v\r\nYmFy\n") == "foobar");
    CHECK(decode_base64("Zm9v YmE=junk") == "fooba");
}

TEST_CASE("canonical text has CRLF line breaks only") {
    CHECK(is_crlf_text("a\r\nb\r\n"));
    CHECK(is_crlf_text(""));
    CHECK_FALSE(is_crlf_text("a\nb"));
    CHECK_FALSE(is_crlf_text("a\rb"));
    CHECK_FALSE(is_crlf_text("a\r"));
    CHECK_FALSE(is_crlf_text("\n"));
    CHECK(to_crlf("a\nb\r\nc\rd") == "a\r\nb\r\nc\r\nd");
    CHECK(to_crlf("\r\n\n") == "\r\n\r\n");
}
