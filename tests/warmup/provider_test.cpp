#include "warmup/provider_map.hpp"

#include "tests/warmup/support.hpp"
#include "warmup/engine.hpp"

#include <doctest/doctest.h>

using namespace ember::warmup;
using ember::warmup::test::config_from;

namespace {

const char* const kProviders = R"(
[[provider]]
name = "gmail"
domains = ["gmail.com", "googlemail.com"]
mx = ["*.google.com", "*.googlemail.com"]

[[provider]]
name = "microsoft"
domains = ["outlook.com", "hotmail.*"]
mx = ["*.protection.outlook.com"]

[[provider]]
name = "rest"
)";

} // namespace

TEST_CASE("glob patterns match any run with '*' and one character with '?'") {
    struct Case {
        std::string pattern;
        std::string text;
        bool want;
    };
    const Case cases[] = {
        {"*.google.com", "aspmx.l.google.com", true},
        {"*.google.com", "google.com", false},
        {"*.google.com", "evilgoogle.com", false},
        {"hotmail.*", "hotmail.co.uk", true},
        {"hotmail.*", "hotmail.com", true},
        {"hotmail.*", "myhotmail.com", false},
        {"mx?.mail.icloud.com", "mx1.mail.icloud.com", true},
        {"mx?.mail.icloud.com", "mx10.mail.icloud.com", false},
        {"*", "anything", true},
        {"a*b*c", "aXXbYYc", true},
        {"a*b*c", "aXXbYY", false},
        {"gmail.com", "gmail.com", true},
        {"gmail.com", "gmail.co", false},
    };
    for (const auto& c : cases) {
        CAPTURE(c.pattern);
        CAPTURE(c.text);
        CHECK(glob_match(c.pattern, c.text) == c.want);
    }
}

TEST_CASE("the recipient domain decides first, then the MX host, then the catch-all") {
    const auto config = config_from(kProviders);
    const ProviderMap map(config);
    struct Case {
        std::string domain;
        std::string mx;
        std::string provider;
        MatchedBy by;
    };
    const Case cases[] = {
        {"gmail.com", "", "gmail", MatchedBy::Domain},
        {"gmail.com", "mx.protection.outlook.com", "gmail", MatchedBy::Domain},
        {"hotmail.fr", "", "microsoft", MatchedBy::Domain},
        {"company.example", "aspmx.l.google.com", "gmail", MatchedBy::Mx},
        {"corp.example", "corp-example.mail.protection.outlook.com", "microsoft", MatchedBy::Mx},
        {"company.example", "", "rest", MatchedBy::CatchAll},
        {"company.example", "mx.company.example", "rest", MatchedBy::CatchAll},
    };
    for (const auto& c : cases) {
        CAPTURE(c.domain);
        CAPTURE(c.mx);
        const auto m = map.match(c.domain, c.mx);
        CHECK(config.providers[m.index].name == c.provider);
        CHECK(m.by == c.by);
    }
    CHECK(map.decided_by_domain("googlemail.com"));
    CHECK_FALSE(map.decided_by_domain("company.example"));
}

TEST_CASE("a domain's learned MX moves its later keys to the MX's provider") {
    Engine engine(config_from(kProviders));
    CHECK(engine.key("news.example.com", "company.example").provider == "rest");
    engine.learn_mx("Company.Example", "ASPMX.L.GOOGLE.COM.");
    const auto k = engine.key("News.Example.com", "company.example");
    CHECK(k.provider == "gmail");
    CHECK(k.sending_domain == "news.example.com");
    CHECK(k.to_string() == "news.example.com/gmail");
    // The domain list decides gmail.com: a smarthost MX does not move it.
    engine.learn_mx("gmail.com", "smarthost.example.net");
    CHECK(engine.key("news.example.com", "gmail.com").provider == "gmail");
}

TEST_CASE("a [[sender]] with a source IP makes the source part of the key") {
    Engine engine(config_from(std::string(kProviders) + R"(
[schedule.s]
caps = [10]

[[sender]]
domain = "news.example.com"
source = "192.0.2.10"
schedule = "s"
start = 2026-03-01

[[sender]]
domain = "news.example.com"
schedule = "s"
start = 2026-03-01
)"));
    CHECK(engine.key("news.example.com", "gmail.com", "192.0.2.10").source == "192.0.2.10");
    CHECK(engine.key("news.example.com", "gmail.com", "192.0.2.10").to_string() ==
          "news.example.com/gmail@192.0.2.10");
    CHECK(engine.key("news.example.com", "gmail.com", "192.0.2.99").source.empty());
    CHECK(engine.key("news.example.com", "gmail.com").source.empty());
}
