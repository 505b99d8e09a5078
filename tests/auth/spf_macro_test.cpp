#include "auth/spf_macro.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace ember;
using auth::MacroUse;

namespace {

// RFC 7208 7.4: "The <sender> is strong-bad@email.example.com. The IPv4 SMTP
// client IP is 192.0.2.3. The IPv6 SMTP client IP is 2001:db8::cb01. The PTR
// domain name of the client IP is mx.example.org."
auth::MacroContext rfc_context(const char* ip = "192.0.2.3") {
    auth::MacroContext c;
    c.sender = "strong-bad@email.example.com";
    c.local_part = "strong-bad";
    c.sender_domain = "email.example.com";
    c.domain = "email.example.com";
    c.ip = *core::IpAddress::parse(ip);
    c.helo = "mx.example.org";
    c.validated_name = "mx.example.org";
    c.receiver = "receiver.example.net";
    c.timestamp = 1700000000;
    return c;
}

std::string expand(const char* text, const auth::MacroContext& c, MacroUse use = MacroUse::Domain) {
    return auth::expand_macros(text, c, use).value_or("<syntax error>");
}

} // namespace

TEST_CASE("the RFC 7208 7.4 examples expand as the RFC shows") {
    struct Case {
        const char* macro;
        const char* want;
    };
    const Case cases[] = {
        {"%{s}", "strong-bad@email.example.com"},
        {"%{o}", "email.example.com"},
        {"%{d}", "email.example.com"},
        {"%{d4}", "email.example.com"},
        {"%{d3}", "email.example.com"},
        {"%{d2}", "example.com"},
        {"%{d1}", "com"},
        {"%{dr}", "com.example.email"},
        {"%{d2r}", "example.email"},
        {"%{l}", "strong-bad"},
        {"%{l-}", "strong.bad"},
        {"%{lr}", "strong-bad"},
        {"%{lr-}", "bad.strong"},
        {"%{l1r-}", "strong"},
        {"%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"},
        {"%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"},
        {"%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
        {"%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"},
        {"%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"},
    };
    const auto c = rfc_context();
    for (const auto& tc : cases) {
        CAPTURE(tc.macro);
        CHECK(expand(tc.macro, c) == tc.want);
    }
}

TEST_CASE("an IPv6 client's i macro is 32 dotted lower-case nibbles, as in RFC 7208 7.4") {
    const auto c = rfc_context("2001:db8::cb01");
    CHECK(expand("%{ir}.%{v}._spf.%{d2}", c) ==
          "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
    CHECK(expand("%{c}", c, MacroUse::Explanation) == "2001:db8::cb01");
    CHECK(expand("%{v}", c) == "ip6");
}

TEST_CASE("the escapes %%, %_ and %- give a percent sign, a space and %20") {
    const auto c = rfc_context();
    CHECK(expand("a%%b%_c%-d", c) == "a%b c%20d");
}

TEST_CASE("an upper-case macro letter URL-escapes everything outside the unreserved set") {
    auto c = rfc_context();
    c.local_part = "~jack&jill=up-a_b3.c";
    CHECK(expand("%{L}", c) == "~jack%26jill%3Dup-a_b3.c");
    CHECK(expand("%{l}", c) == "~jack&jill=up-a_b3.c");
    c.helo = "JUMPIN' JUPITER";
    CHECK(expand("%{H}", c) == "JUMPIN%27%20JUPITER");
}

TEST_CASE("several delimiters split the value on each of them") {
    auto c = rfc_context();
    c.local_part = "foo-bar+zip+quux";
    CHECK(expand("%{l2r+-}", c) == "bar.foo");
    CHECK(expand("%{l+}", c) == "foo-bar.zip.quux");
    CHECK(expand("%{l=}", c) == "foo-bar+zip+quux");
}

TEST_CASE("a digit count larger than the number of parts keeps them all") {
    const auto c = rfc_context();
    CHECK(expand("%{d99}", c) == "email.example.com");
    CHECK(expand("%{d12345678901234567890}", c) == "email.example.com");
}

TEST_CASE("p, r and t expand to the validated name, the receiver and the time") {
    const auto c = rfc_context();
    CHECK(expand("%{p}", c) == "mx.example.org");
    CHECK(expand("%{r} %{t}", c, MacroUse::Explanation) == "receiver.example.net 1700000000");
    CHECK(expand("%{c}", c, MacroUse::Explanation) == "192.0.2.3");
}

TEST_CASE("c, r and t are allowed only in explanation text") {
    for (const char* text : {"%{c}.example.com", "%{r}.example.com", "%{t}.example.com"}) {
        CAPTURE(text);
        CHECK_FALSE(auth::is_macro_string(text, MacroUse::Domain));
        CHECK(auth::is_macro_string(text, MacroUse::Explanation));
        CHECK(auth::is_macro_string(text, MacroUse::Modifier));
    }
}

TEST_CASE("malformed macros are syntax errors") {
    for (const char* text : {"%", "foo%", "%(ir).sbl", "foo%.sbl", "%{", "%{d", "%{x}", "%{a}",
                             "%{d0}", "%{d2r2}", "%{d!}", "%{}", "%{dR.", "a b"}) {
        CAPTURE(text);
        CHECK_FALSE(auth::is_macro_string(text, MacroUse::Domain));
        CHECK_FALSE(auth::expand_macros(text, rfc_context(), MacroUse::Domain).has_value());
    }
}

TEST_CASE("explanation text allows spaces but no control or non-ASCII characters") {
    CHECK(auth::is_macro_string("The %{d} domain says no.", MacroUse::Explanation));
    CHECK_FALSE(auth::is_macro_string("tab\there", MacroUse::Explanation));
    CHECK_FALSE(auth::is_macro_string("\xEF\xBB\xBF"
                                      "Explanation",
                                      MacroUse::Explanation));
    CHECK_FALSE(auth::is_macro_string("The %{x}-files.", MacroUse::Explanation));
}

TEST_CASE("a domain-spec ends in a macro or a dot and a valid toplabel") {
    struct Case {
        const char* spec;
        bool valid;
    };
    const Case cases[] = {
        {"example.com", true},
        {"example.com.", true},
        {"%{d}", true},
        {"_spf.%{d2}", true},
        {"foo:bar/baz.example.com", true},
        {"foo.example.xn--zckzah", true},
        {"a.%-", true},
        {"mail.example...com", true},
        {"museum", false},
        {"museum.", false},
        {"abc.123", false},
        {"111.222.33.44", false},
        {"example.-com", false},
        {"example.com:8080", false},
        {"foo-bar", false},
        {"", false},
        {"%{d}com", false},
        {"-all", false},
        {"%{c}.example.com", false},
        {"exa%mple.com", false},
    };
    for (const auto& tc : cases) {
        CAPTURE(tc.spec);
        CHECK(auth::is_domain_spec(tc.spec) == tc.valid);
    }
}

TEST_CASE("a toplabel has a letter or inner hyphens and never starts with one") {
    CHECK(auth::is_toplabel("com"));
    CHECK(auth::is_toplabel("xn--zckzah"));
    CHECK(auth::is_toplabel("a1"));
    CHECK(auth::is_toplabel("123-45"));
    CHECK_FALSE(auth::is_toplabel("123"));
    CHECK_FALSE(auth::is_toplabel("-com"));
    CHECK_FALSE(auth::is_toplabel("com-"));
    CHECK_FALSE(auth::is_toplabel(""));
    CHECK_FALSE(auth::is_toplabel("co_m"));
}

TEST_CASE("an expanded name over 253 octets loses labels on the left") {
    std::string long_name;
    for (int i = 0; i < 8; ++i)
        long_name += "somewhat.long.exp.example.com.";
    long_name += "example.com";
    const std::string expanded = "foobar." + long_name;
    REQUIRE(expanded.size() > 253);
    CHECK(auth::query_name(expanded) == long_name);
    CHECK(auth::query_name(expanded + ".") == long_name);
}

TEST_CASE("names with an empty or over-long label cannot be queried") {
    CHECK_FALSE(auth::query_name("mail.example...com").has_value());
    CHECK_FALSE(auth::query_name(std::string(64, 'a') + ".example.com").has_value());
    CHECK(auth::query_name(std::string(63, 'a') + ".example.com").has_value());
    CHECK_FALSE(auth::query_name("").has_value());
    CHECK_FALSE(auth::query_name(".").has_value());
    CHECK(auth::query_name("example.com.") == "example.com");
}

TEST_CASE("uses_p_macro finds p in either case") {
    CHECK(auth::uses_p_macro("%{p}.example.com"));
    CHECK(auth::uses_p_macro("%{P2}.example.com"));
    CHECK_FALSE(auth::uses_p_macro("%{d}.example.com"));
    CHECK_FALSE(auth::uses_p_macro("p.example.com"));
}
