#include "daemon/feedback_http.hpp"

#include "daemon/config.hpp"
#include "daemon/ctl_feedback.hpp"
#include "daemon/feedback_verbs.hpp"
#include "tests/daemon/feedback_fixture.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace ember;
using namespace ember::test;
namespace asio = boost::asio;
namespace json = boost::json;

namespace {

daemon::HttpResponse call(Fixture& f, daemon::Router& router, std::string method, std::string path,
                          std::string body = "") {
    const auto match = router.find(method, path);
    REQUIRE(match.handler != nullptr);
    daemon::HttpRequest request;
    request.method = std::move(method);
    request.target = path;
    request.path = std::move(path);
    request.body = std::move(body);
    request.remote = "192.0.2.9:4000";
    return f.run((*match.handler)(std::move(request)));
}

// AdminResult has no default state, which co_spawn's result needs.
struct Answer {
    bool ok = false;
    json::value result;
    std::string error;
};

asio::awaitable<Answer> answer_of(asio::awaitable<daemon::AdminResult> task) {
    const auto r = co_await std::move(task);
    co_return Answer{r.ok(), r.result(), r.error()};
}

daemon::AdminResult admin(Fixture& f, asio::awaitable<daemon::AdminResult> task) {
    const auto a = f.run(answer_of(std::move(task)));
    return a.ok ? daemon::AdminResult::success(a.result) : daemon::AdminResult::failure(a.error);
}

json::object object(const daemon::AdminResult& r) {
    INFO(r.error());
    REQUIRE(r.ok());
    REQUIRE(r.result().is_object());
    return r.result().as_object();
}

} // namespace

// ---- HTTP ---------------------------------------------------------------------

TEST_CASE("a route ending in * serves the paths below it; exact routes win") {
    daemon::Router router;
    router.add("GET", "/u/*", [](const daemon::HttpRequest&) { return daemon::HttpResponse{}; });
    router.add("GET", "/u/exact",
               [](const daemon::HttpRequest&) { return daemon::HttpResponse{}; });
    CHECK(router.find("GET", "/u/TOKEN").handler != nullptr);
    CHECK(router.find("GET", "/u/exact").handler != router.find("GET", "/u/other").handler);
    CHECK(router.find("GET", "/u/").handler == nullptr); // nothing below the prefix
    CHECK(router.find("GET", "/ux").handler == nullptr);
    CHECK(router.find("POST", "/u/TOKEN").allowed == std::vector<std::string>{"GET"});
}

TEST_CASE("the one-click body is List-Unsubscribe=One-Click, urlencoded or multipart") {
    struct Case {
        const char* body;
        bool want;
    };
    const Case cases[] = {
        {"List-Unsubscribe=One-Click", true},
        {"a=b&List-Unsubscribe=One-Click", true},
        {"List-Unsubscribe=One-Click\r\n", true},
        {"List-Unsubscribe=one-click", false},
        {"List-Unsubscribe=One-Click-Now", false},
        {"", false},
        {"--x\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n"
         "--x--\r\n",
         true},
    };
    for (const auto& c : cases) {
        CAPTURE(c.body);
        CHECK(daemon::one_click_body(c.body) == c.want);
    }
}

TEST_CASE("one-click POST suppresses at once; GET only shows a page; a bad token is 404") {
    Fixture f;
    daemon::Router router;
    daemon::add_unsubscribe_routes(router, *f.service);
    const auto token =
        f.service->policy()->signer->unsubscribe_url_token("Reader@dest.test", "sender.test");
    const auto page = call(f, router, "GET", "/u/" + token);
    CHECK(page.status == 200);
    CHECK(page.body.find("reader@dest.test") != std::string::npos);
    CHECK(page.body.find("value=\"One-Click\"") != std::string::npos);
    CHECK_FALSE(f.service->suppressions().check("reader@dest.test", "sender.test"));

    auto tampered = token;
    tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
    CHECK(call(f, router, "POST", "/u/" + tampered, "List-Unsubscribe=One-Click").status == 404);
    CHECK(call(f, router, "GET", "/u/" + tampered).status == 404);
    CHECK(call(f, router, "POST", "/u/" + token, "something=else").status == 400);
    CHECK(f.service->suppressions().size() == 0);

    const auto done = call(f, router, "POST", "/u/" + token, "List-Unsubscribe=One-Click");
    CHECK(done.status == 200);
    const auto entry = f.service->suppressions().check("reader@dest.test", "sender.test");
    REQUIRE(entry);
    CHECK(entry->reason == feedback::SuppressionReason::Unsubscribe);
    CHECK(entry->scope == "sender.test"); // unsubscribe_scope = domain
    CHECK_FALSE(f.service->suppressions().check("reader@dest.test", "other.test"));
    const auto events = f.events();
    REQUIRE(events.size() == 1);
    CHECK(events[0].type == feedback::EventType::Unsubscribed);
    CHECK(events[0].source == "http");
    CHECK(f.service->longest_unsubscribe_delay().has_value());
}

TEST_CASE("the confirmation page escapes what it shows") {
    const auto page = daemon::unsubscribe_page("\"<x>\"@d.test", "a&b.test");
    CHECK(page.find("&quot;&lt;x&gt;&quot;@d.test") != std::string::npos);
    CHECK(page.find("a&amp;b.test") != std::string::npos);
    CHECK(page.find("<x>") == std::string::npos);
}

// ---- admin verbs --------------------------------------------------------------

TEST_CASE("suppress add, check, list and remove round-trip through the list") {
    Fixture f;
    auto added = object(
        admin(f, daemon::suppress_add(f.service.get(), json::object{{"address", "A@Dest.test"},
                                                                    {"reason", "complaint"},
                                                                    {"scope", "sender.test"}})));
    CHECK(added.at("added") == "a@dest.test");
    CHECK(added.at("scope") == "sender.test");
    auto checked = object(daemon::suppress_check(
        *f.service, json::object{{"address", "a@dest.test"}, {"domain", "sender.test"}}));
    CHECK(checked.at("suppressed") == true);
    CHECK(checked.at("entry").at("reason") == "complaint");
    CHECK(object(daemon::suppress_check(*f.service, json::object{{"address", "a@dest.test"}}))
              .at("suppressed") == false);
    const auto listed = object(daemon::suppress_list(*f.service, json::object{{"limit", "5"}}));
    CHECK(listed.at("entries").as_array().size() == 1);
    (void)object(admin(
        f, daemon::suppress_remove(f.service.get(), json::object{{"address", "a@dest.test"}})));
    CHECK(f.service->suppressions().size() == 0);
}

TEST_CASE("suppress verbs refuse what they do not understand") {
    Fixture f;
    struct Case {
        const char* args;
        const char* error;
    };
    const Case cases[] = {
        {R"({})", "missing argument \"address\""},
        {R"({"address":"nobody"})", "not an address"},
        {R"({"address":"a@b.test","reason":"annoyed"})", "unknown reason"},
        {R"({"address":"a@b.test","scope":"not a domain"})", "invalid scope"},
        {R"({"address":"a@b.test","colour":"red"})", "unknown argument \"colour\""},
    };
    for (const auto& c : cases) {
        CAPTURE(c.args);
        const auto r =
            admin(f, daemon::suppress_add(f.service.get(), json::parse(c.args).as_object()));
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().find(c.error) != std::string::npos);
    }
    CHECK(f.service->suppressions().size() == 0);
}

TEST_CASE("emberctl suppress import sends parsed rows in chunks and export pages them back") {
    Fixture f;
    // The admin calls go straight to the verbs.
    const daemon::ctl::AdminCaller caller = [&f](const std::string& verb,
                                                 const json::object& args) {
        daemon::ctl::AdminCall call;
        daemon::AdminResult r = verb == "suppress.import"
                                    ? admin(f, daemon::suppress_import(f.service.get(), args))
                                    : daemon::suppress_list(*f.service, args);
        call.status = r.ok() ? daemon::ctl::AdminCall::Status::Ok
                             : daemon::ctl::AdminCall::Status::DaemonError;
        call.result = r.result();
        call.error = r.error();
        return call;
    };
    std::string csv = "email,reason\n";
    for (int i = 0; i < 2500; ++i)
        csv += "user" + std::to_string(i) + "@dest.test,bounce\n";
    csv += "not-an-address,manual\n";
    std::ostringstream out, err;
    const int rc = daemon::ctl::suppress_import("list.csv", csv, false, caller, out, err, f.now);
    CHECK(rc == 1); // one bad row
    CHECK(out.str() == "imported 2500 of 2501 rows (1 bad)\n");
    CHECK(err.str().find("list.csv:2502:") != std::string::npos);
    CHECK(f.service->suppressions().size() == 2500);

    std::ostringstream exported, export_err;
    CHECK(daemon::ctl::suppress_export(json::object{}, false, caller, exported, export_err) == 0);
    std::istringstream lines(exported.str());
    std::string line;
    std::getline(lines, line);
    CHECK(line == feedback::kCsvHeader);
    int rows = 0;
    while (std::getline(lines, line)) {
        CHECK(line.find(",hard-bounce,global,") != std::string::npos);
        ++rows;
    }
    CHECK(rows == 2500);
}

TEST_CASE("compliance scores each sending domain and says n/a for what is not measured") {
    Fixture f;
    const auto r = admin(f, daemon::compliance(f.service.get(), nullptr, {},
                                               json::object{{"domain", "Sender.test"}}));
    const auto doc = object(r);
    const auto& card = doc.at("domains").as_array().at(0).as_object();
    CHECK(card.at("domain") == "sender.test");
    for (const auto& rule : card.at("rules").as_array()) {
        CAPTURE(json::serialize(rule));
        if (rule.at("rule") == "tls_share")
            CHECK(rule.at("result") == "n/a");
    }
    const auto printed = daemon::ctl::format_compliance(r.result());
    CHECK(printed.out.find("sender.test  window 24h") != std::string::npos);
}

// ---- configuration --------------------------------------------------------------

TEST_CASE("[feedback], [events] and [[webhook]] load, and their cross-key rules are errors") {
    queue::test::TempDir dir;
    const auto load = [&](const std::string& body, core::Diagnostics& diag) {
        const auto path = dir.path + "/ember.toml";
        std::ofstream(path) << "[server]\ndata_dir = \"" << dir.path
                            << "/data\"\n[[listener]]\naddress = \"127.0.0.1:2525\"\n"
                            << body;
        return daemon::load_config(path, diag);
    };
    core::Diagnostics good_diag;
    const auto good = load(R"(
[http]
public_url = "https://mta.example.com"
[feedback]
token_keys = ["k1:0123456789abcdef0123"]
verp = true
bounce_domains = { "Example.com" = "Bounce.Example.com" }
unsubscribe_domains = ["example.com"]
suppression_at_rcpt = "reject"
soft_bounce_limit = 3
complaint_scope = "global"
[events]
log = "events.log"
webhook_retry_max = "1m"
[[webhook]]
url = "https://hooks.example.com/ember"
secret = "0123456789abcdef"
batch_size = 10
)",
                           good_diag);
    INFO(good_diag.to_string());
    REQUIRE(good.has_value());
    CHECK(good->feedback.bounce_domains.at("example.com") == "bounce.example.com");
    CHECK(good->feedback.suppression_at_rcpt == daemon::SuppressionAtRcpt::Reject);
    CHECK(good->feedback.suppression.soft_bounce_limit == 3);
    CHECK(good->feedback.suppression.complaint_scope == feedback::SuppressionScope::Global);
    CHECK(good->events.log.path == dir.path + "/events.log");
    REQUIRE(good->events.webhooks.endpoints.size() == 1);
    CHECK(good->events.webhooks.endpoints[0].batch_size == 10);
    CHECK(good->events.webhooks.retry_max == std::chrono::minutes(1));
    const auto dumped = daemon::dump_config(*good);
    CHECK(dumped.find("k1:********") != std::string::npos);
    CHECK(dumped.find("0123456789abcdef0123") == std::string::npos);

    struct Case {
        const char* body;
        const char* error;
    };
    const Case cases[] = {
        {"[feedback]\nverp = true\nbounce_domain = \"b.test\"\n", "verp = true needs token_keys"},
        {"[feedback]\ntoken_keys = [\"k1:0123456789abcdef0123\"]\nverp = true\n",
         "needs bounce_domain or bounce_domains"},
        {"[feedback]\ntoken_keys = [\"k1:short\"]\n", "token_keys:"},
        {"[feedback]\ntoken_keys = [\"k1:0123456789abcdef0123\", \"k1:0123456789abcdef0123\"]\n",
         "used twice"},
        {"[feedback]\ntoken_keys = [\"k1:0123456789abcdef0123\"]\nunsubscribe_domains = "
         "[\"a.test\"]\n",
         "needs [http] public_url or unsubscribe_mailto_domain"},
        {"[feedback]\nverp_local_part = \"a+b\"\n", "verp_local_part"},
        {"[feedback]\nsuppression_at_rcpt = \"bounce\"\n", "one of: drop, reject"},
        {"[[webhook]]\nurl = \"http://h.test/x\"\n", "[[webhook]] needs secret"},
        {"[events]\nwebhook_retry_initial = \"30m\"\n", "longer than webhook_retry_max"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.body);
        core::Diagnostics diag;
        CHECK_FALSE(load(c.body, diag).has_value());
        CHECK(diag.to_string().find(c.error) != std::string::npos);
        CHECK(diag.to_string().find("ember.toml:") != std::string::npos);
    }
}

namespace {

// Answers each recipient with the outcome of its job's position.
struct TlsDeliverer final : core::Deliverer {
    std::vector<std::string> protocols; // one job each, in order
    std::size_t next = 0;
    asio::awaitable<std::vector<core::Outcome>> deliver(core::DeliveryJob job) override {
        core::Outcome o;
        o.kind = core::OutcomeKind::Delivered;
        o.code = 250;
        o.enhanced = "2.0.0";
        o.command = "end of data";
        o.remote_host = "mx1.dest.test";
        o.remote_ip = "192.0.2.1";
        o.tls = protocols.at(next++);
        co_return std::vector<core::Outcome>(job.recipients.size(), o);
    }
};

} // namespace

TEST_CASE("delivered outcomes carry TLS into events and the compliance tls_share") {
    Fixture f;
    TlsDeliverer inner;
    inner.protocols = {"TLSv1.3", "TLSv1.3", ""};
    auto& observer = f.service->observe(inner);
    for (const auto* to : {"a@dest.test", "b@dest.test", "c@dest.test"})
        (void)f.run(observer.deliver(job_for({to})));
    const auto events = f.events();
    REQUIRE(events.size() == 3);
    CHECK(events[0].tls == true);
    CHECK(events[0].extra.at("tls_protocol") == "TLSv1.3");
    CHECK(events[2].tls == false);
    CHECK_FALSE(events[2].extra.contains("tls_protocol"));
    const auto r = admin(f, daemon::compliance(f.service.get(), nullptr, {},
                                               json::object{{"domain", "sender.test"}}));
    const auto doc = object(r);
    bool seen = false;
    for (const auto& rule : doc.at("domains").as_array().at(0).as_object().at("rules").as_array()) {
        if (rule.at("rule") != "tls_share")
            continue;
        seen = true;
        CAPTURE(json::serialize(rule));
        CHECK(rule.at("result") == "fail"); // one of three went in clear text
        CHECK(rule.at("measured_text") == "66.67 %");
        CHECK(rule.at("why").as_string().find("1 of 3 deliveries went without TLS") !=
              std::string::npos);
    }
    CHECK(seen);
}
