#include "feedback/machine_activity.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace ember;
using namespace ember::feedback;

namespace {

MachineDetector detector(MachineConfig config = {}) {
    std::string error;
    auto d = MachineDetector::create(config, error);
    INFO("error: ", error);
    REQUIRE(d.has_value());
    return std::move(*d);
}

constexpr std::string_view kFirefox =
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
constexpr std::string_view kIphoneMail =
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148";

} // namespace

TEST_CASE("machine opens and clicks are recognised by their fingerprints, with a reason") {
    struct Case {
        bool click;
        std::string method, ua;
        std::int64_t since;
        std::string want; // "" = a person
    };
    const std::vector<Case> cases{
        {false, "GET", std::string(kFirefox), 2, ""},
        {true, "GET", std::string(kFirefox), 600, ""},
        {false, "GET", std::string(kIphoneMail), 1, ""}, // a fast human open is an open
        {false, "GET", "Mozilla/5.0", 3600, "apple-mpp"},
        {true, "GET", "Mozilla/5.0", 3600, "apple-mpp"},
        {true, "HEAD", std::string(kFirefox), 3600, "head-request"},
        {false, "GET", "", 3600, "no-user-agent"},
        {true, "GET", "curl/8.5.0", 3600, "user-agent"},
        {true, "GET", "python-requests/2.31", 3600, "user-agent"},
        {true, "GET", "Go-http-client/1.1", 3600, "user-agent"},
        {false, "GET", "Mozilla/5.0 (compatible; Googlebot/2.1)", 3600, "user-agent"},
        {true, "GET", "Mozilla/5.0 Barracuda Sentinel", 3600, "user-agent"},
        {true, "GET", "Mimecast-URL-Protect/1.0", 3600, "user-agent"},
        {true, "GET", "Microsoft Office Existence Discovery", 3600, "user-agent"},
        // Outlook desktop fetching the pixel is a person reading.
        {false, "GET", "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0)", 3600, ""},
        // Gmail's image proxy fetches the pixel when the person opens the message.
        {false, "GET",
         "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com "
         "GoogleImageProxy)",
         5, ""},
        {true, "GET", std::string(kFirefox), 3, "fast-click"},
        {true, "GET", std::string(kFirefox), 9, "fast-click"},
        {true, "GET", std::string(kFirefox), 10, ""},
        {true, "GET", std::string(kFirefox), -5, ""}, // clock skew is not speed
    };
    const auto d = detector();
    for (const auto& c : cases) {
        CAPTURE(c.ua);
        CAPTURE(c.click);
        CAPTURE(c.since);
        const auto v = d.classify({c.click, c.method, c.ua, std::nullopt, c.since});
        CHECK(v.reason == c.want);
        CHECK(v.machine == !c.want.empty());
    }
}

TEST_CASE("proxy networks and the click window come from the configuration") {
    MachineConfig config;
    config.networks = {*core::Cidr::parse("17.58.0.0/16")};
    config.click_window = std::chrono::seconds(60);
    config.user_agents = {"acme-scanner"};
    const auto d = detector(config);
    const auto apple = core::IpAddress::parse("17.58.1.2");
    const auto home = core::IpAddress::parse("192.0.2.7");
    CHECK(d.classify({false, "GET", kIphoneMail, apple, 3600}).reason == "proxy-network");
    CHECK(d.classify({false, "GET", kIphoneMail, home, 3600}).reason == "");
    CHECK(d.classify({true, "GET", kFirefox, home, 30}).reason == "fast-click");
    CHECK(d.classify({true, "GET", "ACME-Scanner/2", home, 3600}).reason == "user-agent");
    CHECK(d.classify({true, "GET", "curl/8", home, 3600}).reason == ""); // the list replaced
}

TEST_CASE("a user agent pattern that does not compile is refused, naming it") {
    MachineConfig config;
    config.user_agents = {"ok", "bad(("};
    std::string error;
    CHECK_FALSE(MachineDetector::create(config, error).has_value());
    CHECK(error.find("bad((") != std::string::npos);
    CHECK(check_user_agent_pattern("click:bad((") != "");
    CHECK(check_user_agent_pattern("click:fine") == "");
    for (const auto& p : default_machine_user_agents()) {
        CAPTURE(p);
        CHECK(check_user_agent_pattern(p) == "");
    }
}
