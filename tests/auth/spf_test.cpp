#include "auth/spf.hpp"

#include "tests/auth/zone_resolver.hpp"

#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <string>

using namespace ember;
using auth::SpfResult;
using auth::test::run;
using auth::test::ZoneResolver;

namespace {

std::string word(SpfResult r) {
    return std::string(auth::spf_result_name(r));
}

auth::SpfOutcome check(ZoneResolver& zone, const char* ip, const char* mail_from,
                       const char* helo = "mail.example.org") {
    auto request = auth::mail_from_check(*core::IpAddress::parse(ip), mail_from, helo);
    return run(auth::check_host(&zone, std::move(request)));
}

// A zone where example.com publishes `record`.
ZoneResolver with_record(const char* record) {
    ZoneResolver zone;
    zone.txt("example.com", record);
    return zone;
}

std::string result_of(const char* record, const char* ip = "192.0.2.1") {
    auto zone = with_record(record);
    return word(check(zone, ip, "user@example.com").result);
}

} // namespace

// ---- Record selection and syntax (4.5, 4.6). ----

TEST_CASE("v=spf1 is recognised case-insensitively only when followed by a space or the end") {
    CHECK(auth::is_spf_record("v=spf1"));
    CHECK(auth::is_spf_record("v=spf1 -all"));
    CHECK(auth::is_spf_record("V=SpF1 ~all"));
    CHECK_FALSE(auth::is_spf_record("v=spf10"));
    CHECK_FALSE(auth::is_spf_record("v=spf1mx"));
    CHECK_FALSE(auth::is_spf_record("v=spf1\t-all"));
    CHECK_FALSE(auth::is_spf_record(" v=spf1 -all"));
    CHECK_FALSE(auth::is_spf_record("spf2.0/pra -all"));
}

TEST_CASE("syntax errors anywhere in the record are a permerror, even after a match") {
    struct Case {
        const char* record;
        const char* why;
    };
    const Case cases[] = {
        {"v=spf1 ip4:192.0.2.1 -all moo", "unknown mechanism after a match"},
        {"v=spf1 -all.", "all with trailing garbage"},
        {"v=spf1 -all:foo", "all with an argument"},
        {"v=spf1 -all/8", "all with a CIDR length"},
        {"v=spf1 ip4:192.0.2.1 redirect:example.net", "redirect used as a mechanism"},
        {"v=spf1 moo.cow/far_out=man:dog/cat ip4:192.0.2.1", "modifier name with a slash"},
        {"v=spf1 1up=foo", "modifier name starting with a digit"},
        {"v=spf1 =all", "empty modifier name"},
        {"v=spf1 -all foo=%abc", "unknown modifier with a bad macro"},
        {"v=spf1 exp= -all", "empty exp"},
        {"v=spf1 redirect=", "empty redirect"},
        {"v=spf1 exp=a.example.com exp=b.example.com -all", "exp twice"},
        {"v=spf1 redirect=a.example.com REDIRECT=b.example.com", "redirect twice"},
        {"v=spf1 include -all", "include without a domain"},
        {"v=spf1 include:example.net/24 -all", "include with a CIDR length"},
        {"v=spf1 exists", "exists without a domain"},
        {"v=spf1 exists:example.net/24", "exists with a CIDR length"},
        {"v=spf1 ptr/0 -all", "ptr with a CIDR length"},
        {"v=spf1 ptr:", "ptr with an empty domain"},
        {"v=spf1 a:", "a with an empty domain"},
        {"v=spf1 a:museum", "a with only a toplabel"},
        {"v=spf1 a:example.123", "an all-numeric toplabel"},
        {"v=spf1 mx:example.com:8080", "a port in the toplabel"},
        {"v=spf1 a/33 -all", "an IPv4 CIDR length over 32"},
        {"v=spf1 a//129 -all", "an IPv6 CIDR length over 128"},
        {"v=spf1 a/24/64 -all", "two single-slash CIDR lengths"},
        {"v=spf1 ip4", "ip4 without an address"},
        {"v=spf1 ip4:192.0.2", "a short IPv4 address"},
        {"v=spf1 ip4:192.0.2.1:8080", "a port after the address"},
        {"v=spf1 ip4:192.0.2.1/33", "ip4 CIDR over 32"},
        {"v=spf1 ip4:192.0.2.1/032", "ip4 CIDR with a leading zero"},
        {"v=spf1 ip4:192.0.2.01", "an IPv4 octet with a leading zero"},
        {"v=spf1 ip4:192.0.2.1//32", "a dual CIDR on ip4"},
        {"v=spf1 ip6:::1/129", "ip6 CIDR over 128"},
        {"v=spf1 ip6:::1//33", "a dual CIDR on ip6"},
        {"v=spf1 ip6::CAFE::BABE", "a malformed IPv6 address"},
        {"v=spf1 a:example.com\r-all", "a control character between terms"},
        {"v=spf1 a:\xEF\xBB\xBFgarbage.example.net -all", "non-ASCII in a term"},
        {"v=spf1 -exists:%(ir).sbl.example.com ?all", "a bad macro"},
        {"v=spf1 -all exp=%{r}.example.com", "r in a domain-spec"},
    };
    for (const auto& tc : cases) {
        CAPTURE(tc.record);
        CAPTURE(tc.why);
        const auto parsed = auth::parse_spf_record(tc.record);
        CHECK_FALSE(parsed.record.has_value());
        CHECK(result_of(tc.record) == "permerror");
    }
}

TEST_CASE("the parser keeps qualifiers, targets, CIDR lengths and modifiers") {
    const auto parsed = auth::parse_spf_record(
        "v=spf1  +a -mx:mail.example.com/24//64 ~ptr ?ip4:192.0.2.0/24 ip6:2001:DB8::/32 "
        "include:_spf.example.net exists:%{i}.bl.example.org ALL "
        "redirect=_spf.example.com exp=why.%{d} unknown-mod=anything ");
    REQUIRE(parsed.record.has_value());
    const auto& r = *parsed.record;
    REQUIRE(r.mechanisms.size() == 8);
    CHECK(r.mechanisms[0].qualifier == auth::SpfQualifier::Pass);
    CHECK(r.mechanisms[0].kind == auth::SpfMechanismKind::A);
    CHECK(r.mechanisms[0].domain_spec.empty());
    CHECK(r.mechanisms[1].qualifier == auth::SpfQualifier::Fail);
    CHECK(r.mechanisms[1].domain_spec == "mail.example.com");
    CHECK(r.mechanisms[1].cidr4 == 24);
    CHECK(r.mechanisms[1].cidr6 == 64);
    CHECK(r.mechanisms[2].qualifier == auth::SpfQualifier::SoftFail);
    CHECK(r.mechanisms[3].qualifier == auth::SpfQualifier::Neutral);
    CHECK(r.mechanisms[3].network.prefix == 24);
    CHECK(r.mechanisms[4].network.prefix == 32);
    CHECK_FALSE(r.mechanisms[4].network.v4);
    CHECK(r.mechanisms[5].domain_spec == "_spf.example.net");
    CHECK(r.mechanisms[6].domain_spec == "%{i}.bl.example.org");
    CHECK(r.mechanisms[7].kind == auth::SpfMechanismKind::All);
    CHECK(r.redirect == "_spf.example.com");
    CHECK(r.explanation == "why.%{d}");
}

TEST_CASE("an empty record is neutral and unknown modifiers change nothing") {
    CHECK(result_of("v=spf1") == "neutral");
    CHECK(result_of("v=spf1 default=pass") == "neutral");
    CHECK(result_of("v=spf1 moo.cow-far_out=man:dog/cat ip4:192.0.2.1 -all") == "pass");
}

TEST_CASE("a domain without SPF record gives none, several records give permerror") {
    ZoneResolver zone;
    zone.txt("none.example", "google-site-verification=abc");
    zone.txt("two.example", "v=spf1 -all");
    zone.txt("two.example", "V=SPF1 +all");
    zone.txt("one.example", "v=spf10 +all");
    zone.txt("one.example", "v=spf1 -all");
    zone.txt("one.example", "\x96");
    CHECK(word(check(zone, "192.0.2.1", "a@none.example").result) == "none");
    CHECK(word(check(zone, "192.0.2.1", "a@nxdomain.example").result) == "none");
    CHECK(word(check(zone, "192.0.2.1", "a@two.example").result) == "permerror");
    CHECK(word(check(zone, "192.0.2.1", "a@one.example").result) == "fail");
}

TEST_CASE("a malformed or single-label domain gives none without any lookup") {
    ZoneResolver zone;
    for (const char* from :
         {"a@A...example.com", "a@[192.0.2.1]", "a@localhost", "a@example.123"}) {
        CAPTURE(from);
        CHECK(word(check(zone, "192.0.2.1", from).result) == "none");
    }
    const std::string long_label = "a@" + std::string(64, 'x') + ".example.com";
    CHECK(word(check(zone, "192.0.2.1", long_label.c_str()).result) == "none");
    CHECK(zone.asked.empty());
}

TEST_CASE("a DNS failure on the record lookup is a temperror") {
    ZoneResolver zone;
    zone.timeout("slow.example");
    zone.servfail("broken.example");
    CHECK(word(check(zone, "192.0.2.1", "a@slow.example").result) == "temperror");
    CHECK(word(check(zone, "192.0.2.1", "a@broken.example").result) == "temperror");
}

// ---- Mechanisms (5). ----

TEST_CASE("qualifiers map to pass, fail, softfail and neutral") {
    CHECK(result_of("v=spf1 +all") == "pass");
    CHECK(result_of("v=spf1 all") == "pass");
    CHECK(result_of("v=spf1 -all") == "fail");
    CHECK(result_of("v=spf1 ~all") == "softfail");
    CHECK(result_of("v=spf1 ?all") == "neutral");
}

TEST_CASE("ip4 and ip6 match by network; IPv4-mapped clients are IPv4") {
    CHECK(result_of("v=spf1 ip4:192.0.2.0/24 -all", "192.0.2.200") == "pass");
    CHECK(result_of("v=spf1 ip4:192.0.2.0/25 -all", "192.0.2.200") == "fail");
    CHECK(result_of("v=spf1 ip4:1.1.1.1/0 -all", "192.0.2.200") == "pass");
    CHECK(result_of("v=spf1 ip6:2001:db8::/32 -all", "2001:db8:ff::1") == "pass");
    CHECK(result_of("v=spf1 ip6:2001:db8::/32 -all", "2001:db9::1") == "fail");
    CHECK(result_of("v=spf1 ip6:::/0", "192.0.2.1") == "neutral");
    CHECK(result_of("v=spf1 ip4:192.0.2.1 -all", "::ffff:192.0.2.1") == "pass");
    CHECK(result_of("v=spf1 -ip4:192.0.2.1 ip6:::ffff:192.0.2.1", "::ffff:192.0.2.1") == "fail");
    CHECK(result_of("v=spf1 ip6:::ffff:192.0.2.1", "192.0.2.1") == "neutral");
}

TEST_CASE("a matches the target's A records for IPv4 clients and AAAA for IPv6") {
    auto zone = with_record("v=spf1 a a:mail.example.com/24 a:v6.example.com//64 -all");
    zone.a("example.com", "192.0.2.10");
    zone.a("mail.example.com", "198.51.100.7");
    zone.aaaa("v6.example.com", "2001:db8:1:2::1");
    CHECK(word(check(zone, "192.0.2.10", "u@example.com").result) == "pass");
    CHECK(word(check(zone, "198.51.100.99", "u@example.com").result) == "pass");
    CHECK(word(check(zone, "2001:db8:1:2::ffff", "u@example.com").result) == "pass");
    CHECK(word(check(zone, "2001:db8:1:3::1", "u@example.com").result) == "fail");
    CHECK(word(check(zone, "203.0.113.1", "u@example.com").result) == "fail");
}

TEST_CASE("a with /0 still needs at least one address record") {
    auto zone = with_record("v=spf1 a:none.example.com/0 -all");
    CHECK(word(check(zone, "192.0.2.1", "u@example.com").result) == "fail");
    zone.a("none.example.com", "198.51.100.1");
    CHECK(word(check(zone, "192.0.2.1", "u@example.com").result) == "pass");
}

TEST_CASE("mx matches the addresses of the MX hosts, never the domain's own A record") {
    auto zone = with_record("v=spf1 mx -all");
    zone.a("example.com", "192.0.2.1");
    CHECK(word(check(zone, "192.0.2.1", "u@example.com").result) == "fail");
    zone.mx("example.com", 10, "mx1.example.com");
    zone.mx("example.com", 20, "mx2.example.com");
    zone.a("mx2.example.com", "192.0.2.20");
    CHECK(word(check(zone, "192.0.2.20", "u@example.com").result) == "pass");
}

TEST_CASE("mx with more than 10 MX names is a permerror") {
    auto zone = with_record("v=spf1 mx");
    for (std::uint16_t i = 0; i < 11; ++i)
        zone.mx("example.com", i, "mx" + std::to_string(i) + ".example.com");
    zone.a("mx10.example.com", "192.0.2.1");
    CHECK(word(check(zone, "192.0.2.1", "u@example.com").result) == "permerror");
}

TEST_CASE("mx with a null MX matches nothing") {
    auto zone = with_record("v=spf1 mx -all");
    zone.mx("example.com", 0, "");
    zone.a("example.com", "192.0.2.1");
    CHECK(word(check(zone, "192.0.2.1", "u@example.com").result) == "fail");
}

TEST_CASE("a DNS failure inside a, mx or exists is a temperror") {
    for (const char* record : {"v=spf1 a:slow.example.net -all", "v=spf1 mx:slow.example.net -all",
                               "v=spf1 exists:slow.example.net -all"}) {
        CAPTURE(record);
        auto zone = with_record(record);
        zone.timeout("slow.example.net");
        CHECK(word(check(zone, "192.0.2.1", "u@example.com").result) == "temperror");
    }
    auto zone = with_record("v=spf1 mx -all");
    zone.mx("example.com", 10, "mx.example.net");
    zone.servfail("mx.example.net");
    CHECK(word(check(zone, "192.0.2.1", "u@example.com").result) == "temperror");
}

TEST_CASE("ptr matches validated names within the target; DNS errors only skip a name") {
    auto zone = with_record("v=spf1 ptr -all");
    zone.ptr("192.0.2.1", "mail.example.com");
    zone.a("mail.example.com", "192.0.2.1");
    zone.ptr("192.0.2.2", "forged.example.com"); // does not resolve back
    zone.a("forged.example.com", "203.0.113.9");
    zone.ptr("192.0.2.3", "Other.Example.COM.");
    zone.a("other.example.com", "192.0.2.3");
    zone.ptr("192.0.2.4", "mail.example.net");
    zone.a("mail.example.net", "192.0.2.4");
    zone.ptr("192.0.2.5", "broken.example.com");
    zone.timeout("broken.example.com");
    CHECK(word(check(zone, "192.0.2.1", "u@example.com").result) == "pass");
    CHECK(word(check(zone, "192.0.2.2", "u@example.com").result) == "fail");
    CHECK(word(check(zone, "192.0.2.3", "u@example.com").result) == "pass");
    CHECK(word(check(zone, "192.0.2.4", "u@example.com").result) == "fail");
    CHECK(word(check(zone, "192.0.2.5", "u@example.com").result) == "fail");
    CHECK(word(check(zone, "192.0.2.9", "u@example.com").result) == "fail");
}

TEST_CASE("ptr looks at the first 10 PTR names only") {
    auto zone = with_record("v=spf1 ptr -all");
    for (int i = 0; i < 10; ++i)
        zone.ptr("192.0.2.1", "host" + std::to_string(i) + ".example.net");
    zone.ptr("192.0.2.1", "mail.example.com");
    zone.a("mail.example.com", "192.0.2.1");
    CHECK(word(check(zone, "192.0.2.1", "u@example.com").result) == "fail");
}

TEST_CASE("exists matches any A record, even for an IPv6 client") {
    auto zone = with_record("v=spf1 exists:%{ir}.allow.example.com -all");
    zone.a("1.2.0.192.allow.example.com", "127.0.0.2");
    CHECK(word(check(zone, "192.0.2.1", "u@example.com").result) == "pass");
    CHECK(word(check(zone, "192.0.2.2", "u@example.com").result) == "fail");
    auto v6 = with_record("v=spf1 exists:v6only.example.com -all");
    v6.aaaa("v6only.example.com", "2001:db8::1");
    CHECK(word(check(v6, "2001:db8::1", "u@example.com").result) == "fail");
    CHECK(v6.count("A v6only.example.com") == 1);
}

TEST_CASE("include maps the included result as RFC 7208 5.2's table says") {
    struct Case {
        const char* included;
        const char* want;
    };
    const Case cases[] = {
        {"v=spf1 +all", "pass"},              // pass: match
        {"v=spf1 -all", "softfail"},          // fail: no match, ~all decides
        {"v=spf1 ~all", "softfail"},          // softfail: no match
        {"v=spf1 ?all", "softfail"},          // neutral: no match
        {"v=spf1 include -all", "permerror"}, // permerror: permerror
        {"not spf", "permerror"},             // none: permerror
    };
    for (const auto& tc : cases) {
        CAPTURE(tc.included);
        auto zone = with_record("v=spf1 include:inc.example.net ~all");
        zone.txt("inc.example.net", tc.included);
        CHECK(word(check(zone, "192.0.2.1", "u@example.com").result) == tc.want);
    }
    auto zone = with_record("v=spf1 include:inc.example.net ~all");
    zone.timeout("inc.example.net");
    CHECK(word(check(zone, "192.0.2.1", "u@example.com").result) == "temperror");
}

// ---- redirect and exp (6). ----

TEST_CASE("redirect applies only when no mechanism matched and changes <domain>") {
    ZoneResolver zone;
    zone.txt("example.com", "v=spf1 ip4:198.51.100.1 redirect=_spf.example.net");
    zone.txt("_spf.example.net", "v=spf1 a -all");
    zone.a("_spf.example.net", "192.0.2.2");
    zone.a("example.com", "192.0.2.1");
    CHECK(word(check(zone, "198.51.100.1", "u@example.com").result) == "pass");
    CHECK(word(check(zone, "192.0.2.2", "u@example.com").result) == "pass");
    CHECK(word(check(zone, "192.0.2.1", "u@example.com").result) == "fail");
    const auto outcome = check(zone, "192.0.2.1", "u@example.com");
    CHECK(outcome.domain == "_spf.example.net");
}

TEST_CASE("redirect is ignored when the record has all, and an empty target is a permerror") {
    ZoneResolver zone;
    zone.txt("example.com", "v=spf1 redirect=example.com ~all");
    CHECK(word(check(zone, "192.0.2.1", "u@example.com").result) == "softfail");
    CHECK(zone.count("TXT example.com") == 1);
    zone.txt("example.net", "v=spf1 redirect=nothing.example.net");
    CHECK(word(check(zone, "192.0.2.1", "u@example.net").result) == "permerror");
}

TEST_CASE("exp text is fetched once, only on fail, and macro-expanded") {
    auto zone = with_record("v=spf1 ip4:192.0.2.1 -all exp=why.%{d}");
    zone.txt("why.example.com", "%{i} may not send for %{d} (%{l})");
    const auto fail = check(zone, "203.0.113.5", "alice@example.com");
    CHECK(word(fail.result) == "fail");
    CHECK(fail.explanation == "203.0.113.5 may not send for example.com (alice)");
    CHECK(zone.count("TXT why.example.com") == 1);
    const auto pass = check(zone, "192.0.2.1", "alice@example.com");
    CHECK(pass.explanation.empty());
    CHECK(zone.count("TXT why.example.com") == 1);
}

TEST_CASE("a broken exp is ignored: DNS error, no record, several, or a syntax error") {
    struct Case {
        const char* name;
        std::vector<const char*> txt;
        bool timeout;
    };
    const Case cases[] = {
        {"timeout", {}, true},
        {"none", {}, false},
        {"two records", {"one", "two"}, false},
        {"bad macro", {"The %{x}-files."}, false},
        {"non-ASCII",
         {"\xEF\xBB\xBF"
          "Explanation"},
         false},
    };
    for (const auto& tc : cases) {
        CAPTURE(tc.name);
        auto zone = with_record("v=spf1 -all exp=why.example.com");
        if (tc.timeout)
            zone.timeout("why.example.com");
        for (const char* t : tc.txt)
            zone.txt("why.example.com", t);
        if (tc.txt.empty() && !tc.timeout)
            zone.a("why.example.com", "192.0.2.9");
        const auto outcome = check(zone, "192.0.2.1", "u@example.com");
        CHECK(word(outcome.result) == "fail");
        CHECK(outcome.explanation.empty());
    }
}

TEST_CASE("include ignores the included exp; redirect drops the original one") {
    ZoneResolver zone;
    zone.txt("example.com", "v=spf1 include:inc.example.net -all exp=mine.example.com");
    zone.txt("inc.example.net", "v=spf1 -all exp=theirs.example.net");
    zone.txt("mine.example.com", "mine");
    zone.txt("theirs.example.net", "theirs");
    CHECK(check(zone, "192.0.2.1", "u@example.com").explanation == "mine");
    zone.txt("example.org", "v=spf1 exp=mine.example.com redirect=inc.example.net");
    CHECK(check(zone, "192.0.2.1", "u@example.org").explanation == "theirs");
    zone.txt("example.net", "v=spf1 exp=mine.example.com redirect=plain.example.net");
    zone.txt("plain.example.net", "v=spf1 -all");
    CHECK(check(zone, "192.0.2.1", "u@example.net").explanation.empty());
}

TEST_CASE("the p macro prefers the <domain> itself, then a subdomain, among validated names") {
    ZoneResolver zone;
    zone.txt("example.com", "v=spf1 -all exp=why.example.com");
    zone.txt("why.example.com", "connect from %{p}");
    zone.ptr("192.0.2.1", "mx.example.org");
    zone.ptr("192.0.2.1", "mx.example.com");
    zone.ptr("192.0.2.1", "unvalidated.example.com");
    zone.a("mx.example.org", "192.0.2.1");
    zone.a("mx.example.com", "192.0.2.1");
    CHECK(check(zone, "192.0.2.1", "u@example.com").explanation == "connect from mx.example.com");
    CHECK(check(zone, "192.0.2.2", "u@example.com").explanation == "connect from unknown");
}

// ---- Limits (4.6.4). ----

TEST_CASE("the 11th DNS-querying term is a permerror, the 10th is not") {
    auto at = with_record("v=spf1 a a a a a a a a a a ip4:192.0.2.1 -all");
    at.a("example.com", "198.51.100.1");
    CHECK(word(check(at, "192.0.2.1", "u@example.com").result) == "pass");
    auto over = with_record("v=spf1 a a a a a a a a a a a ip4:192.0.2.1 -all");
    over.a("example.com", "198.51.100.1");
    const auto outcome = check(over, "192.0.2.1", "u@example.com");
    CHECK(word(outcome.result) == "permerror");
    CHECK(outcome.dns_terms == 11);
}

TEST_CASE("include, redirect, mx, ptr and exists all count towards the 10 terms") {
    ZoneResolver zone;
    zone.txt("example.com", "v=spf1 mx ptr exists:nx.example.com include:inc.example.com "
                            "redirect=r.example.com");
    zone.txt("inc.example.com", "v=spf1 a:x.example.com a:x.example.com ?all");
    zone.txt("r.example.com", "v=spf1 a:x.example.com a:x.example.com a:x.example.com -all");
    zone.a("x.example.com", "198.51.100.1");
    zone.mx("example.com", 10, "x.example.com");
    zone.ptr("192.0.2.1", "nothing.example.org");
    // mx, ptr, exists, include (+2 inside), redirect (+3 inside): 10 terms.
    const auto at = check(zone, "192.0.2.1", "u@example.com");
    CHECK(word(at.result) == "fail");
    CHECK(at.dns_terms == 10);
    // One more a: 11.
    zone.txt("example.org", "v=spf1 a:x.example.com mx:example.com ptr exists:nx.example.com "
                            "include:inc.example.com redirect=r.example.com");
    const auto over = check(zone, "192.0.2.1", "u@example.org");
    CHECK(word(over.result) == "permerror");
    CHECK(over.dns_terms == 11);
}

TEST_CASE("include and redirect loops end in a permerror") {
    ZoneResolver zone;
    zone.txt("example.com", "v=spf1 include:example.net");
    zone.txt("example.net", "v=spf1 include:example.com");
    CHECK(word(check(zone, "192.0.2.1", "u@example.com").result) == "permerror");
    zone.txt("example.org", "v=spf1 redirect=example.org");
    CHECK(word(check(zone, "192.0.2.1", "u@example.org").result) == "permerror");
}

TEST_CASE("a third void lookup is a permerror; two are allowed") {
    auto two = with_record("v=spf1 a:nx1.example.com mx:nx2.example.com ?all");
    CHECK(word(check(two, "192.0.2.1", "u@example.com").result) == "neutral");
    auto three =
        with_record("v=spf1 a:nx1.example.com exists:nx2.example.com a:nx3.example.com ?all");
    const auto outcome = check(three, "192.0.2.1", "u@example.com");
    CHECK(word(outcome.result) == "permerror");
    CHECK(outcome.void_lookups == 3);
}

TEST_CASE("names that exist without records of the asked type are void lookups too") {
    auto zone = with_record("v=spf1 a:v4.example.com a:v4.example.com a:v4.example.com ?all");
    zone.a("v4.example.com", "192.0.2.1");
    CHECK(word(check(zone, "2001:db8::1", "u@example.com").result) == "permerror");
    CHECK(word(check(zone, "192.0.2.2", "u@example.com").result) == "neutral");
}

TEST_CASE("the exp lookup does not count as a void lookup") {
    auto zone = with_record("v=spf1 a:nx1.example.com a:nx2.example.com exp=nx3.example.com -all");
    const auto outcome = check(zone, "192.0.2.1", "u@example.com");
    CHECK(word(outcome.result) == "fail");
    CHECK(outcome.void_lookups == 2);
}

TEST_CASE("a target name that cannot be queried does not match and is not looked up") {
    auto zone = with_record("v=spf1 a:mail.example...com -all");
    CHECK(word(check(zone, "192.0.2.1", "u@example.com").result) == "fail");
    auto macro = with_record("v=spf1 a:%{H}.bar -all");
    CHECK(word(check(macro, "192.0.2.1", "u@example.com", "%%%%%%%%%%%%%%%%%%%%%%").result) ==
          "fail");
    CHECK(macro.asked.size() == 1);
}

TEST_CASE("an exceeded deadline gives temperror") {
    auto zone = with_record("v=spf1 a -all");
    auto request =
        auth::mail_from_check(*core::IpAddress::parse("192.0.2.1"), "u@example.com", "h.example");
    request.limits.deadline = std::chrono::seconds(-1);
    CHECK(word(run(auth::check_host(&zone, std::move(request))).result) == "temperror");
}

// ---- Identities (2.3, 2.4, 4.3). ----

TEST_CASE("a null sender is checked as postmaster at the HELO name") {
    ZoneResolver zone;
    zone.txt("helo.example.com", "v=spf1 -all exp=why.example.com");
    zone.txt("why.example.com", "%{s} %{l} %{o} %{d} %{h}");
    const auto outcome = check(zone, "192.0.2.1", "", "helo.example.com");
    CHECK(word(outcome.result) == "fail");
    CHECK(outcome.explanation == "postmaster@helo.example.com postmaster helo.example.com "
                                 "helo.example.com helo.example.com");
}

TEST_CASE("a sender without local part gets postmaster") {
    auto zone = with_record("v=spf1 -all exp=why.example.com");
    zone.txt("why.example.com", "%{l}");
    CHECK(check(zone, "192.0.2.1", "@example.com").explanation == "postmaster");
}

TEST_CASE("helo_check checks the HELO identity") {
    ZoneResolver zone;
    zone.txt("mta.example.com", "v=spf1 a -all");
    zone.a("mta.example.com", "192.0.2.1");
    auto request = auth::helo_check(*core::IpAddress::parse("192.0.2.1"), "mta.example.com");
    CHECK(request.sender == "postmaster@mta.example.com");
    CHECK(word(run(auth::check_host(&zone, request)).result) == "pass");
}

// ---- emberctl spf. ----

TEST_CASE("spf_command prints the result word, then the explanation") {
    auto zone = with_record("v=spf1 ip4:192.0.2.1 -all exp=why.example.com");
    zone.txt("why.example.com", "Not from %{i}.");
    const auto fail = run(auth::spf_command(&zone, "203.0.113.1", "u@example.com", "h", false));
    CHECK(fail.exit_code == 0);
    CHECK(fail.output == "fail\nNot from 203.0.113.1.\n");
    const auto pass = run(auth::spf_command(&zone, "192.0.2.1", "<u@example.com>", "h", false));
    CHECK(pass.output.starts_with("pass\nexample.com allows 192.0.2.1 to send (matched "
                                  "ip4:192.0.2.1)"));
}

TEST_CASE("spf_command --json gives one object with the result and its details") {
    auto zone = with_record("v=spf1 ip4:192.0.2.1 -all");
    const auto out = run(auth::spf_command(&zone, "203.0.113.1", "u@example.com", "h", true));
    CHECK(out.exit_code == 0);
    const auto v = boost::json::parse(out.output).as_object();
    CHECK(v.at("result").as_string() == "fail");
    CHECK(v.at("mechanism").as_string() == "-all");
    CHECK(v.at("domain").as_string() == "example.com");
    CHECK(v.at("explanation").as_string() == "");
}

TEST_CASE("spf_command refuses a bad IP address and an empty sender without HELO") {
    ZoneResolver zone;
    CHECK(run(auth::spf_command(&zone, "not-an-ip", "u@example.com", "", false)).exit_code == 2);
    CHECK(run(auth::spf_command(&zone, "192.0.2.1", "", "", false)).exit_code == 2);
    CHECK(run(auth::spf_command(&zone, "192.0.2.1", "<>", "", false)).exit_code == 2);
    CHECK(zone.asked.empty());
}
