#include "smtp/sasl.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace ember::smtp;

TEST_CASE("base64 encodes and decodes the RFC 4648 test vectors") {
    struct Case {
        const char* plain;
        const char* encoded;
    };
    const Case cases[] = {{"", ""},
                          {"f", "Zg=="},
                          {"fo", "Zm8="},
                          {"foo", "Zm9v"},
                          {"foob", "Zm9vYg=="},
                          {"fooba", "Zm9vYmE="},
                          {"foobar", "Zm9vYmFy"}};
    for (const auto& c : cases) {
        CAPTURE(c.plain);
        CHECK(base64_encode(c.plain) == c.encoded);
        const auto decoded = base64_decode(c.encoded);
        REQUIRE(decoded.has_value());
        CHECK(*decoded == c.plain);
    }
}

TEST_CASE("base64 round-trips every octet value") {
    std::string all;
    for (int i = 0; i < 256; ++i)
        all += static_cast<char>(i);
    for (std::size_t n = 0; n <= all.size(); n += 37) {
        CAPTURE(n);
        const auto decoded = base64_decode(base64_encode(all.substr(0, n)));
        REQUIRE(decoded.has_value());
        CHECK(*decoded == all.substr(0, n));
    }
    CHECK(base64_encode("\xff\xfe\xfd") == "//79");
    CHECK(base64_encode("\xfb\xff") == "+/8=");
}

TEST_CASE("base64 decoding is strict") {
    for (const char* bad :
         {"Zg", "Zg=", "Zm9", "Z===", "====", "Zg==Zg==", "Zm=v", "=Zm9", "Zm9v\r\n", "Zm9v ",
          " Zm9v", "Zm 9v", "Zm9v\n", "Zm-v", "Zm_v", "Zm9v!", "Zh==", "Zm9=", "Zg==="}) {
        CAPTURE(bad);
        CHECK_FALSE(base64_decode(bad).has_value());
    }
}

TEST_CASE("AUTH PLAIN messages decode into their three parts") {
    struct Case {
        std::string message;
        const char* authzid;
        const char* authcid;
        const char* password;
    };
    const Case cases[] = {
        {std::string("\0tim\0tanstaaftanstaaf", 21), "", "tim", "tanstaaftanstaaf"},
        {std::string("Ursel\0Kurt\0xipj3plmq", 20), "Ursel", "Kurt", "xipj3plmq"},
        {std::string("\0us\xc3\xa9r\0p\xff", 9), "", "us\xc3\xa9r", "p\xff"},
        {std::string(1, '\0') + std::string(255, 'u') + std::string(1, '\0') +
             std::string(255, 'p'),
         "", "", ""},
    };
    for (const auto& c : cases) {
        CAPTURE(base64_encode(c.message));
        const auto creds = decode_plain(base64_encode(c.message));
        REQUIRE(creds.has_value());
        if (c.authcid[0] == '\0') { // the 255-octet case
            CHECK(creds->authcid == std::string(255, 'u'));
            CHECK(creds->password == std::string(255, 'p'));
            continue;
        }
        CHECK(creds->authzid == c.authzid);
        CHECK(creds->authcid == c.authcid);
        CHECK(creds->password == c.password);
    }
    // RFC 4616 4's example, as sent on the wire.
    const auto wire = decode_plain("AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
    REQUIRE(wire.has_value());
    CHECK(wire->authcid == "tim");
    CHECK(wire->password == "tanstaaftanstaaf");
}

TEST_CASE("malformed AUTH PLAIN messages are refused") {
    const std::string nul(1, '\0');
    const std::string cases[] = {
        "",
        "timpassword",
        nul + "tim",
        nul + "tim" + nul,
        nul + nul + "password",
        "a" + nul + "tim" + nul + "pw" + nul,
        nul + "tim" + nul + "pw" + nul + "more",
        nul + std::string(256, 'u') + nul + "pw",
        nul + "tim" + nul + std::string(256, 'p'),
        std::string(256, 'z') + nul + "tim" + nul + "pw",
        nul + "ti\xffm" + nul + "pw",
        "\xc3" + nul + "tim" + nul + "pw",
    };
    for (const auto& message : cases) {
        CAPTURE(base64_encode(message));
        CHECK_FALSE(decode_plain(base64_encode(message)).has_value());
    }
    CHECK_FALSE(decode_plain("not base64!").has_value());
    CHECK_FALSE(decode_plain("=").has_value());
}

TEST_CASE("encode_plain builds what decode_plain reads") {
    const PlainCredentials creds{"admin", "user@example.com", "s3cret pass"};
    const auto decoded = decode_plain(encode_plain(creds));
    REQUIRE(decoded.has_value());
    CHECK(decoded->authzid == "admin");
    CHECK(decoded->authcid == "user@example.com");
    CHECK(decoded->password == "s3cret pass");
    CHECK(encode_plain({"", "tim", "tanstaaftanstaaf"}) == "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
}
