#include "daemon/tracking_service.hpp"

#include "personalize/mime.hpp"
#include "personalize/transfer.hpp"
#include "queue/record.hpp"
#include "tests/daemon/feedback_fixture.hpp"

#include <doctest/doctest.h>

#include <cctype>
#include <set>
#include <string>
#include <vector>

using namespace ember;
using feedback::TrackingKind;

namespace {

// A message that arrived at test::kNow (its queue id's high bits).
constexpr std::uint64_t kMessageId = static_cast<std::uint64_t>(test::kNow) << 16;

struct Tracking : test::Fixture {
    std::unique_ptr<daemon::TrackingService> tracking;
    std::vector<feedback::Event> seen;

    explicit Tracking(const std::function<void(daemon::Config&)>& tweak = {})
        : test::Fixture([&](daemon::Config& c) {
              c.tracking.domains = {"sender.test"};
              if (tweak)
                  tweak(c);
          }) {
        std::string error;
        tracking = daemon::TrackingService::create(io.get_executor(), config, *store, *service,
                                                   error, [this] { return now; });
        REQUIRE_MESSAGE(tracking, error);
        service->add_event_listener([this](const feedback::Event& e) { seen.push_back(e); });
    }

    daemon::DispatchContext context(const std::string& content,
                                    const std::vector<std::string>& addresses,
                                    std::string mail_from = "app@sender.test") {
        daemon::DispatchContext ctx;
        ctx.job.message_id = kMessageId;
        ctx.job.queue_id = queue::format_queue_id(kMessageId);
        ctx.job.domain = "dest.test";
        ctx.job.envelope.mail_from = std::move(mail_from);
        ctx.job.content = std::make_shared<const std::string>(content);
        ctx.sending_domain = "sender.test";
        ctx.now_ms = now;
        std::uint32_t i = 0;
        for (const auto& a : addresses) {
            core::JobRecipient r;
            r.index = i++;
            r.spec.address = a;
            ctx.job.recipients.push_back(r);
            daemon::DispatchRecipient d;
            d.recipient = r;
            d.mail_from = ctx.job.envelope.mail_from;
            ctx.recipients.push_back(std::move(d));
        }
        return ctx;
    }

    daemon::HttpResponse get(const std::string& path, const std::string& ua,
                             const std::string& method = "GET") {
        daemon::HttpRequest r;
        r.method = method;
        r.target = r.path = path;
        r.remote = "192.0.2.10:4242";
        if (!ua.empty())
            r.headers.emplace_back("user-agent", ua);
        const auto kind = path.starts_with("/c/") ? TrackingKind::Click : TrackingKind::Open;
        return tracking->handle(r, kind);
    }
};

constexpr const char* kBrowser =
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";

std::string html_message(const std::string& extra_headers = "") {
    return "From: News <news@sender.test>\r\nTo: list@dest.test\r\nSubject: Hi\r\n" +
           extra_headers +
           "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           "<html><body><a href=\"https://shop.example/p?a=1&amp;b=2\">Shop</a>"
           "<a href=\"mailto:help@sender.test\">help</a></body></html>\r\n";
}

// Every PUBLIC_URL/KIND/TOKEN path in `content`, as "/KIND/TOKEN".
std::vector<std::string> paths(const std::string& content, char kind) {
    std::vector<std::string> out;
    const auto prefix = std::string(test::kPublicUrl) + "/" + kind + "/";
    for (auto at = content.find(prefix); at != std::string::npos;
         at = content.find(prefix, at + 1)) {
        auto end = at + prefix.size();
        while (end < content.size() && (std::isalnum(static_cast<unsigned char>(content[end])) ||
                                        content[end] == '-' || content[end] == '_'))
            ++end;
        out.push_back(content.substr(at + std::string(test::kPublicUrl).size(),
                                     end - at - std::string(test::kPublicUrl).size()));
    }
    return out;
}

std::string header(const daemon::HttpResponse& r, const std::string& name) {
    for (const auto& [n, v] : r.headers)
        if (n == name)
            return v;
    return "(absent)";
}

} // namespace

TEST_CASE("what a message asks for: the domain list, X-Ember-Track, and the ceilings") {
    daemon::TrackingConfig c;
    c.domains = {"sender.test"};
    struct Case {
        std::string domain;
        std::optional<std::string> field;
        bool opens, clicks;
    };
    const std::vector<Case> cases{
        {"sender.test", std::nullopt, true, true},   {"other.test", std::nullopt, false, false},
        {"other.test", "opens, clicks", true, true}, {"other.test", "Clicks", false, true},
        {"other.test", "opens", true, false},        {"sender.test", "none", false, false},
        {"sender.test", "bogus", false, false},
    };
    for (const auto& k : cases) {
        CAPTURE(k.domain);
        CAPTURE(k.field.value_or("(absent)"));
        const auto got = daemon::tracking_choice(c, k.domain, k.field);
        CHECK(got.opens == k.opens);
        CHECK(got.clicks == k.clicks);
    }
    c.domains = {"*"};
    CHECK(daemon::tracking_choice(c, "any.test", std::nullopt).clicks);
    c.opens = false;
    CHECK_FALSE(daemon::tracking_choice(c, "any.test", std::string("opens, clicks")).opens);
}

TEST_CASE("each recipient of an opted-in html message gets its own signed links and pixel") {
    Tracking t;
    auto ctx = t.context(html_message("X-Ember-Campaign: spring\r\nX-Ember-AB: t1; cell=b\r\n"),
                         {"a@dest.test", "b@dest.test"});
    t.tracking->track(ctx);
    std::set<std::string> keys;
    for (const auto& r : ctx.recipients) {
        CAPTURE(r.recipient.spec.address);
        REQUIRE(r.content);
        keys.insert(r.render_key);
        const auto clicks = paths(*r.content, 'c');
        const auto opens = paths(*r.content, 'o');
        REQUIRE(clicks.size() == 1); // the mailto: link stays
        REQUIRE(opens.size() == 1);
        CHECK(r.content->find("href=\"mailto:help@sender.test\"") != std::string::npos);
        const auto check = t.service->policy()->signer->verify_tracking_token(clicks[0].substr(3));
        REQUIRE(check.ok());
        CHECK(check.id.url == "https://shop.example/p?a=1&b=2");
        CHECK(check.id.recipient == r.recipient.spec.address);
        CHECK(check.id.queue_id == kMessageId);
        CHECK(check.id.campaign == "spring");
        CHECK(check.id.ab_test == "t1");
        CHECK(check.id.variant == "b");
        CHECK(check.id.dispatched_at == test::kNow / 1000);
    }
    CHECK(keys.size() == 2);
    CHECK_FALSE(keys.contains(""));
}

TEST_CASE("a rendered copy is what gets tracked, and its render key stays a prefix") {
    Tracking t;
    auto ctx = t.context(html_message(), {"a@dest.test"});
    ctx.recipients[0].render_key = "merged";
    ctx.recipients[0].content = std::make_shared<const std::string>(
        "Content-Type: text/html\r\n\r\n<a href=\"https://merged.example/\">m</a>\r\n");
    t.tracking->track(ctx);
    CHECK(ctx.recipients[0].render_key.starts_with("merged\x1ftrk:"));
    const auto clicks = paths(*ctx.recipients[0].content, 'c');
    REQUIRE(clicks.size() == 1);
    CHECK(t.service->policy()->signer->verify_tracking_token(clicks[0].substr(3)).id.url ==
          "https://merged.example/");
}

TEST_CASE("messages that are not tracked are left exactly as they were") {
    Tracking t;
    const auto text = "From: a@sender.test\r\nSubject: s\r\n\r\nhttps://shop.example/\r\n";
    const std::vector<std::pair<std::string, std::string>> cases{
        {"text only", text},
        {"X-Ember-Track: none", html_message("X-Ember-Track: none\r\n")},
    };
    for (const auto& [name, content] : cases) {
        CAPTURE(name);
        auto ctx = t.context(content, {"a@dest.test"});
        t.tracking->track(ctx);
        CHECK(ctx.recipients[0].render_key.empty());
        CHECK_FALSE(ctx.recipients[0].content);
    }
    auto dsn = t.context(html_message(), {"a@dest.test"}, "");
    t.tracking->track(dsn);
    CHECK(dsn.recipients[0].render_key.empty());
    auto decided = t.context(html_message(), {"a@dest.test"});
    decided.recipients[0].decided = core::Outcome{};
    t.tracking->track(decided);
    CHECK(decided.recipients[0].render_key.empty());
}

TEST_CASE("a click redirects only to the signed URL, and a tampered token is 404") {
    Tracking t;
    auto ctx = t.context(html_message(), {"a@dest.test"});
    t.tracking->track(ctx);
    const auto click = paths(*ctx.recipients[0].content, 'c').at(0);
    const auto open = paths(*ctx.recipients[0].content, 'o').at(0);
    t.now += 60'000;
    const auto r = t.get(click, kBrowser);
    CHECK(r.status == 302);
    CHECK(header(r, "Location") == "https://shop.example/p?a=1&b=2");
    CHECK(header(r, "Cache-Control").starts_with("no-store"));
    auto tampered = click;
    tampered[tampered.size() - 20] = tampered[tampered.size() - 20] == 'A' ? 'B' : 'A';
    for (const auto& bad :
         {tampered, std::string("/c/"), std::string("/c/!!"), "/c/" + open.substr(3)}) {
        CAPTURE(bad);
        const auto refused = t.get(bad, kBrowser);
        CHECK(refused.status == 404);
        CHECK(header(refused, "Location") == "(absent)");
    }
    REQUIRE(t.seen.size() == 1); // only the good click is an event
    const auto& e = t.seen[0];
    CHECK(e.type == feedback::EventType::Clicked);
    CHECK(e.queue_id == queue::format_queue_id(kMessageId));
    CHECK(e.recipient == "a@dest.test");
    CHECK(e.sending_domain == "sender.test");
    CHECK(e.source == "http");
    CHECK(e.extra.at("url").as_string() == "https://shop.example/p?a=1&b=2");
    CHECK(e.extra.at("ip").as_string() == "192.0.2.10");
    CHECK(e.extra.at("machine").as_bool() == false);
    CHECK(e.extra.at("unique").as_bool() == true);
}

TEST_CASE("machine opens are flagged and never unique; the first human open is, once") {
    Tracking t;
    auto ctx = t.context(html_message(), {"a@dest.test"});
    t.tracking->track(ctx);
    const auto open = paths(*ctx.recipients[0].content, 'o').at(0);
    t.now += 5'000;
    const auto mpp = t.get(open, "Mozilla/5.0");
    CHECK(mpp.status == 200);
    CHECK(mpp.content_type == "image/gif");
    CHECK(mpp.body == daemon::transparent_gif());
    (void)t.get(open, kBrowser, "HEAD");
    (void)t.get(open, kBrowser);
    (void)t.get(open, kBrowser);
    REQUIRE(t.seen.size() == 4);
    CHECK(t.seen[0].type == feedback::EventType::Opened);
    CHECK(t.seen[0].extra.at("machine").as_bool());
    CHECK(t.seen[0].extra.at("machine_reason").as_string() == "apple-mpp");
    CHECK_FALSE(t.seen[0].extra.at("unique").as_bool());
    CHECK(t.seen[1].extra.at("machine_reason").as_string() == "head-request");
    CHECK_FALSE(t.seen[2].extra.at("machine").as_bool());
    CHECK(t.seen[2].extra.at("unique").as_bool());
    CHECK_FALSE(t.seen[3].extra.at("unique").as_bool());
    // The event log has them too (what the integration test reads).
    CHECK(t.events().size() == 4);
}

TEST_CASE("a click within the machine window of dispatch is a scanner's") {
    Tracking t;
    auto ctx = t.context(html_message(), {"a@dest.test"});
    t.tracking->track(ctx);
    const auto click = paths(*ctx.recipients[0].content, 'c').at(0);
    t.now += 3'000;
    (void)t.get(click, kBrowser);
    t.now += 60'000;
    (void)t.get(click, kBrowser);
    REQUIRE(t.seen.size() == 2);
    CHECK(t.seen[0].extra.at("machine_reason").as_string() == "fast-click");
    CHECK_FALSE(t.seen[0].extra.at("unique").as_bool());
    CHECK(t.seen[1].extra.at("unique").as_bool()); // the person's click after the scanner's
}

TEST_CASE("unique marks are stored and pruned after the retention") {
    Tracking t([](daemon::Config& c) { c.tracking.retention = std::chrono::hours(24); });
    auto ctx = t.context(html_message(), {"a@dest.test"});
    t.tracking->track(ctx);
    const auto open = paths(*ctx.recipients[0].content, 'o').at(0);
    t.now += 60'000;
    (void)t.get(open, kBrowser);
    std::string error;
    const auto table = t.store->open_table(daemon::kTrackingTable, error);
    REQUIRE(table);
    const auto key = queue::format_queue_id(kMessageId) + ":a@dest.test";
    t.wait_for([&] { return t.store->kv_get(*table, key).has_value(); });
    // Two days on, another message's first open prunes the old mark.
    t.now += 2 * 24 * 3'600'000LL;
    auto later = t.context(html_message(), {"b@dest.test"});
    later.job.message_id = static_cast<std::uint64_t>(t.now) << 16;
    later.now_ms = t.now;
    t.tracking->track(later);
    (void)t.get(paths(*later.recipients[0].content, 'o').at(0), kBrowser);
    t.wait_for([&] { return !t.store->kv_get(*table, key).has_value(); });
    CHECK(t.store->kv_count(*table) == 1);
}
