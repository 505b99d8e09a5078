#include "smtp/address.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace ember::smtp;

TEST_CASE("is_ascii is false as soon as one octet has the high bit") {
    CHECK(is_ascii(""));
    CHECK(is_ascii("plain \x01\x7f text"));
    CHECK_FALSE(is_ascii("caf\xc3\xa9"));
    CHECK_FALSE(is_ascii("\x80"));
}

TEST_CASE("is_valid_utf8 accepts well-formed UTF-8 and refuses every malformation") {
    for (const char* good :
         {"", "ascii", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xed\x9f\xbf",
          "\xee\x80\x80", "\xf4\x8f\xbf\xbf", "\xc2\x80", "\xef\xbf\xbf"}) {
        CAPTURE(good);
        CHECK(is_valid_utf8(good));
    }
    for (const char* bad : {"\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xc3", "\xc3(", "\xe0\x80\x80",
                            "\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf", "\xe2\x82",
                            "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80",
                            "\xf5\x80\x80\x80", "\xff", "\xfe", "\xf0\x9f\x98", "a\xe2\x28\xa1"}) {
        CAPTURE(bad);
        CHECK_FALSE(is_valid_utf8(bad));
    }
}

TEST_CASE("ascii_lower lowers ASCII letters only") {
    CHECK(ascii_lower("MiXeD-Case.EXAMPLE") == "mixed-case.example");
    CHECK(ascii_lower("\xc3\x89T\xc3\x89") == "\xc3\x89t\xc3\x89");
}

TEST_CASE("domains are LDH labels with the RFC 1035 and RFC 5321 length limits") {
    const std::string label63(63, 'a');
    // 63 + 1 + 63 + 1 + 63 + 1 + 63 = 255 octets.
    const std::string domain255 = label63 + "." + label63 + "." + label63 + "." + label63;
    struct Case {
        std::string domain;
        bool ascii_ok;
        bool utf8_ok;
    };
    const Case cases[] = {
        {"example.com", true, true},
        {"EXAMPLE.COM", true, true},
        {"localhost", true, true},
        {"a", true, true},
        {"1.2.3.4", true, true},
        {"xn--bcher-kva.example", true, true},
        {"a-b--c.example", true, true},
        {"0ne.example", true, true},
        {label63 + ".example", true, true},
        {domain255, true, true},
        {"", false, false},
        {".", false, false},
        {"example.com.", false, false},
        {".example.com", false, false},
        {"example..com", false, false},
        {"-example.com", false, false},
        {"example-.com", false, false},
        {"exa_mple.com", false, false},
        {"exa mple.com", false, false},
        {"[192.0.2.1]", false, false},
        {label63 + "a.example", false, false},
        {domain255 + "a", false, false},
        {"b\xc3\xbc"
         "cher.example",
         false, true},
        {"\xc3\xbc.example", false, true},
        {"\xe4\xbe\x8b\xe3\x81\x88.\xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88", false, true},
        {"\xc3\xbc-.example", false, false},
        {"b\xc3.example", false, false},
    };
    for (const auto& c : cases) {
        CAPTURE(c.domain);
        CHECK(is_valid_domain(c.domain, false) == c.ascii_ok);
        CHECK(is_valid_domain(c.domain, true) == c.utf8_ok);
    }
}

TEST_CASE("address literals are IPv4 or IPv6, nothing else") {
    for (const char* good :
         {"[192.0.2.1]", "[0.0.0.0]", "[255.255.255.255]", "[01.002.3.4]", "[IPv6:2001:db8::1]",
          "[ipv6:::1]", "[IPv6:::]", "[IPv6:1:2:3:4:5:6:7:8]", "[IPv6:::ffff:192.0.2.1]",
          "[IPv6:1:2:3:4:5:6:192.0.2.1]"}) {
        CAPTURE(good);
        CHECK(is_valid_address_literal(good));
    }
    for (const char* bad : {"",
                            "[]",
                            "192.0.2.1",
                            "[192.0.2.1",
                            "192.0.2.1]",
                            "[256.0.0.1]",
                            "[1.2.3]",
                            "[1.2.3.4.]",
                            "[1.2.3.4.5]",
                            "[1..3.4]",
                            "[0001.2.3.4]",
                            "[ 1.2.3.4]",
                            "[IPv6:]",
                            "[IPv6:1.2.3.4]",
                            "[IPv6:gg::1]",
                            "[IPv6:1:2:3:4:5:6:7:8:9]",
                            "[IPv6:::1%eth0]",
                            "[IPv4:1.2.3.4]",
                            "[x-tag:foo]",
                            "[2001:db8::1]",
                            "[IPv6: ::1]"}) {
        CAPTURE(bad);
        CHECK_FALSE(is_valid_address_literal(bad));
    }
}

TEST_CASE("mailboxes follow RFC 5321 4.1.2 with UTF-8 only when allowed") {
    const std::string local64(64, 'l');
    struct Case {
        std::string mailbox;
        bool ascii_ok;
        bool utf8_ok;
    };
    const Case cases[] = {
        {"user@example.com", true, true},
        {"first.last@example.com", true, true},
        {"a+tag@example.com", true, true},
        {"!#$%&'*+-/=?^_`{|}~@example.com", true, true},
        {"\"john doe\"@example.com", true, true},
        {"\"\"@example.com", true, true},
        {R"("a\"b\\c"@example.com)", true, true},
        {"\"a@b\"@example.com", true, true},
        {"\"a.\"@example.com", true, true},
        {"user@[192.0.2.1]", true, true},
        {"user@[IPv6:::1]", true, true},
        {local64 + "@example.com", true, true},
        {"\xc3\xbcser@example.com", false, true},
        {"user@b\xc3\xbc"
         "cher.example",
         false, true},
        {"\"\xc3\xbc ser\"@example.com", false, true},
        {"", false, false},
        {"user", false, false},
        {"user@", false, false},
        {"@example.com", false, false},
        {"user@@example.com", false, false},
        {".user@example.com", false, false},
        {"user.@example.com", false, false},
        {"us..er@example.com", false, false},
        {"us er@example.com", false, false},
        {"us\"er@example.com", false, false},
        {"us(er)@example.com", false, false},
        {"us,er@example.com", false, false},
        {"us[er@example.com", false, false},
        {"\"unterminated@example.com", false, false},
        {"\"a\"b@example.com", false, false},
        {"\"a\"\"b\"@example.com", false, false},
        {"\"tab\there\"@example.com", false, false},
        {R"("bs\"@example.com)", false, false},
        {"\"nl\\\n\"@example.com", false, false},
        {local64 + "l@example.com", false, false},
        {"user@-example.com", false, false},
        {"user@[300.0.0.1]", false, false},
        {"user@[tag:x]", false, false},
        {"user@example.com ", false, false},
        {"\xc3\xbcser@ex_ample.com", false, false},
        {"\xff@example.com", false, false},
    };
    for (const auto& c : cases) {
        CAPTURE(c.mailbox);
        CHECK(is_valid_mailbox(c.mailbox, false) == c.ascii_ok);
        CHECK(is_valid_mailbox(c.mailbox, true) == c.utf8_ok);
        CHECK(mailbox_problem(c.mailbox, true).empty() == c.utf8_ok);
    }
}

TEST_CASE("mailbox_problem says what is wrong in a few words") {
    struct Case {
        std::string mailbox;
        bool utf8;
        const char* why;
    };
    const Case cases[] = {
        {"", false, "empty address"},
        {"\xc3\xbc@example.com", false, "non-ASCII address"},
        {"\xc3@example.com", true, "invalid UTF-8"},
        {"a..b@example.com", false, "bad local part"},
        {std::string(65, 'x') + "@example.com", false, "local part longer than 64 octets"},
        {"user", false, "missing @domain"},
        {"user@", false, "missing domain"},
        {"user@" + std::string(256, 'd'), false, "domain longer than 255 octets"},
        {"user@[1.2.3]", false, "bad address literal"},
        {"user@exa mple", false, "bad domain"},
        {"user@example.com", false, ""},
    };
    for (const auto& c : cases) {
        CAPTURE(c.mailbox);
        CHECK(mailbox_problem(c.mailbox, c.utf8) == c.why);
    }
}
