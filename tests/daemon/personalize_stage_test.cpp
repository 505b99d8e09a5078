#include "daemon/personalize_stages.hpp"

#include "core/async.hpp"
#include "daemon/dispatch.hpp"
#include "daemon/personalize_service.hpp"
#include "tests/queue/fixture.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json.hpp>
#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

using namespace ember;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;

namespace {

constexpr std::int64_t kNow = 1'780'000'000'000; // 2026-05-28
constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);

// Records every sub-job and answers 250.
struct RecordingDeliverer final : core::Deliverer {
    std::vector<core::DeliveryJob> jobs;
    asio::awaitable<std::vector<core::Outcome>> deliver(core::DeliveryJob job) override {
        std::vector<core::Outcome> out(job.recipients.size());
        for (auto& o : out) {
            o.kind = core::OutcomeKind::Delivered;
            o.code = 250;
        }
        jobs.push_back(std::move(job));
        co_return out;
    }
    // The content of the sub-job that carried `address`.
    std::string content_for(const std::string& address) const {
        for (const auto& j : jobs)
            for (const auto& r : j.recipients)
                if (r.spec.address == address)
                    return *j.content;
        return "(not delivered)";
    }
};

// An in-process hook: HTTP/1.1 keep-alive on 127.0.0.1, answering each
// POST with what `answer` makes of the request's JSON.
struct HookPeer {
    using Answer = std::function<std::pair<int, std::string>(const json::object&)>;
    asio::ip::tcp::acceptor acceptor;
    Answer answer;
    int requests = 0;
    json::object last;

    HookPeer(asio::io_context& io, Answer a)
        : acceptor(io, {asio::ip::make_address("127.0.0.1"), 0}), answer(std::move(a)) {
        core::spawn(io.get_executor(), serve(), "test hook");
    }
    std::string url() const {
        return "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/hook";
    }
    asio::awaitable<void> serve() {
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(kAsTuple);
            if (ec)
                co_return;
            core::spawn(acceptor.get_executor(), session(std::move(socket)), "test hook session");
        }
    }
    asio::awaitable<void> session(asio::ip::tcp::socket socket) {
        beast::flat_buffer buffer;
        for (;;) {
            http::request<http::string_body> request;
            auto [ec, n] = co_await http::async_read(socket, buffer, request, kAsTuple);
            if (ec)
                co_return;
            ++requests;
            last = json::parse(request.body()).as_object();
            const auto [status, body] = answer(last);
            http::response<http::string_body> response{static_cast<http::status>(status), 11};
            response.set(http::field::content_type, "application/json");
            response.body() = body;
            response.keep_alive(true);
            response.prepare_payload();
            auto [wec, wn] = co_await http::async_write(socket, response, kAsTuple);
            if (wec)
                co_return;
        }
    }
};

// Answers by local part: skip*, later*, variant*, header*, else vars.
std::pair<int, std::string> scripted(const json::object& request) {
    json::array answers;
    for (const auto& r : request.at("recipients").as_array()) {
        const auto address = json::value_to<std::string>(r.at("address"));
        json::object a{{"address", address}};
        if (address.starts_with("skip"))
            a["skip"] = json::object{{"reason", "not interested"}};
        else if (address.starts_with("later"))
            a["send_at"] = "2030-01-02T03:04:05Z";
        else if (address.starts_with("soon"))
            a["send_at"] = (kNow + 3'600'000) / 1000;
        else if (address.starts_with("variant"))
            a["variant"] = "b";
        else if (address.starts_with("header"))
            a["headers"] = json::object{{"X-Segment", "gold"}, {"Subject", "New subject"}};
        else
            a["vars"] = json::object{{"offer", "hook-" + address.substr(0, address.find('@'))}};
        answers.push_back(std::move(a));
    }
    return {200, json::serialize(json::object{{"recipients", std::move(answers)}})};
}

struct Fixture {
    queue::test::TempDir dir;
    std::unique_ptr<queue::Store> store;
    asio::io_context io;
    daemon::Config config;
    std::unique_ptr<HookPeer> peer;
    std::unique_ptr<daemon::PersonalizeService> service;
    RecordingDeliverer inner;
    std::unique_ptr<daemon::Dispatcher> dispatcher;

    explicit Fixture(HookPeer::Answer hook = {},
                     const std::function<void(daemon::Config&)>& tweak = {},
                     asio::thread_pool* pool = nullptr) {
        store = queue::test::open_store(queue::test::config_for(dir));
        if (hook) {
            peer = std::make_unique<HookPeer>(io, std::move(hook));
            config.personalize.hook.url = peer->url();
            config.personalize.hook.timeout = std::chrono::seconds(5);
        }
        if (tweak)
            tweak(config);
        std::string error;
        service = daemon::PersonalizeService::create(io.get_executor(), config, *store, error,
                                                     nullptr, pool, [] { return kNow; });
        REQUIRE_MESSAGE(service, error);
        dispatcher = std::make_unique<daemon::Dispatcher>(inner, [] { return kNow; });
        service->add_stages(*dispatcher);
    }

    std::vector<core::Outcome> run(core::DeliveryJob job) {
        std::vector<core::Outcome> out;
        bool done = false;
        asio::co_spawn(io, dispatcher->deliver(std::move(job)), [&](std::exception_ptr e, auto v) {
            REQUIRE_FALSE(e);
            out = std::move(v);
            done = true;
            io.stop();
        });
        io.restart();
        io.run();
        REQUIRE(done);
        return out;
    }

    void set_contact(const std::string& address, json::object attributes,
                     std::vector<std::string> tags = {}) {
        service->contacts().set(address, std::move(attributes), {});
        if (!tags.empty())
            service->contacts().set_tags(address, std::move(tags), {});
    }
};

// A message arrived 1 s before kNow (the queue id's high bits).
constexpr std::uint64_t kMessageId = static_cast<std::uint64_t>(kNow - 1000) << 16;

core::DeliveryJob job_for(const std::string& content, const std::vector<std::string>& addresses,
                          std::string mail_from = "app@sender.test") {
    core::DeliveryJob job;
    job.message_id = kMessageId;
    job.queue_id = "Q1";
    job.domain = "dest.test";
    job.envelope.mail_from = std::move(mail_from);
    job.content = std::make_shared<const std::string>(content);
    std::uint32_t i = 0;
    for (const auto& a : addresses) {
        core::JobRecipient r;
        r.index = i++;
        r.spec.address = a;
        job.recipients.push_back(std::move(r));
    }
    return job;
}

std::string message(const std::string& extra_headers, const std::string& body) {
    return "Received: from a\r\n\tby b; date\r\nFrom: News <news@sender.test>\r\n"
           "To: list@dest.test\r\nSubject: Hello\r\n" +
           extra_headers + "\r\n" + body;
}

bool has(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

} // namespace

// ---- pure helpers -----------------------------------------------------------

TEST_CASE("strip_fields removes the named fields with their continuation lines, case ignored") {
    const std::string in = "From: a@b\r\nx-ember-tags: a,\r\n b\r\nSubject: s\r\n"
                           "X-Ember-Campaign: c\r\n\r\nX-Ember-Tags: body text\r\n";
    const auto out = daemon::strip_fields(in, {"X-Ember-Tags", "X-Ember-Campaign"});
    REQUIRE(out);
    CHECK(*out == "From: a@b\r\nSubject: s\r\n\r\nX-Ember-Tags: body text\r\n");
    CHECK_FALSE(daemon::strip_fields("From: a@b\r\n\r\nbody\r\n", {"X-Ember-Tags"}));
}

TEST_CASE("set_fields replaces a field of the same name in place and adds new ones after the "
          "trace fields") {
    const std::string in = "Received: x\r\nFrom: a@b\r\nSubject: old\r\n continued\r\n"
                           "Subject: again\r\n\r\nbody\r\n";
    const auto out =
        daemon::set_fields(in, {{"subject", "new\r\nInjected: yes"}, {"X-Offer", "Grüße"}});
    CAPTURE(out);
    CHECK(out.starts_with("Received: x\r\nX-Offer: =?utf-8?"));
    CHECK(has(out, "From: a@b\r\nsubject: new  Injected: yes\r\n\r\nbody\r\n"));
    CHECK_FALSE(has(out, "old"));
    CHECK_FALSE(has(out, "again"));
}

// ---- merge ------------------------------------------------------------------

TEST_CASE("a message without markup reaches the deliverer untouched, in one sub-job") {
    Fixture f;
    const auto content = message("", "Hi all.\r\n");
    const auto out = f.run(job_for(content, {"a@dest.test", "b@dest.test"}));
    REQUIRE(out.size() == 2);
    REQUIRE(f.inner.jobs.size() == 1);
    CHECK(*f.inner.jobs[0].content == content);
    CHECK(f.inner.jobs[0].variant.empty());
}

TEST_CASE("a pass-through message loses X-Ember-Vars and X-Ember-Campaign and stays one sub-job") {
    Fixture f;
    const auto content =
        message("X-Ember-Vars: {\"a\": 1}\r\nX-Ember-Campaign: spring\r\n", "Hi all.\r\n");
    (void)f.run(job_for(content, {"a@dest.test", "b@dest.test"}));
    REQUIRE(f.inner.jobs.size() == 1);
    CHECK(*f.inner.jobs[0].content == message("", "Hi all.\r\n"));
    CHECK_FALSE(f.inner.jobs[0].variant.empty());
}

TEST_CASE("recipients with different variables get their own rendering; equal ones share one") {
    Fixture f;
    f.set_contact("jane@dest.test", {{"first_name", "Jane"}});
    f.set_contact("bob@dest.test", {{"first_name", "Bob"}});
    f.set_contact("bob2@dest.test", {{"first_name", "Bob"}, {"unused", "x"}});
    const auto content = message("X-Ember-Vars: {\"offer\": \"20%\"}\r\n",
                                 "Hi {{ first_name | default: \"there\" }}, {{ offer }} off.\r\n");
    const auto out = f.run(
        job_for(content, {"jane@dest.test", "bob@dest.test", "bob2@dest.test", "new@dest.test"}));
    REQUIRE(out.size() == 4);
    for (const auto& o : out)
        CHECK(o.kind == core::OutcomeKind::Delivered);
    CHECK(f.inner.jobs.size() == 3); // Jane, the two Bobs, "there"
    CHECK(has(f.inner.content_for("jane@dest.test"), "\r\n\r\nHi Jane, 20% off.\r\n"));
    CHECK(has(f.inner.content_for("bob@dest.test"), "Hi Bob, 20% off."));
    CHECK(f.inner.content_for("bob2@dest.test") == f.inner.content_for("bob@dest.test"));
    CHECK(has(f.inner.content_for("new@dest.test"), "Hi there, 20% off."));
    CHECK_FALSE(has(f.inner.content_for("jane@dest.test"), "X-Ember-Vars"));
    std::set<std::string> variants;
    for (const auto& j : f.inner.jobs)
        variants.insert(j.variant);
    CHECK(variants.size() == 3); // the signer's cache keeps them apart
}

TEST_CASE("contact tags select sections") {
    Fixture f;
    f.set_contact("runner@dest.test", {{"first_name", "R"}}, {"Runner"});
    const auto content = message("", "{{#tag:runner}}Shoes!{{/tag:runner}}"
                                     "{{^tag:runner}}Books!{{/tag:runner}}\r\n");
    (void)f.run(job_for(content, {"runner@dest.test", "reader@dest.test"}));
    CHECK(has(f.inner.content_for("runner@dest.test"), "\r\n\r\nShoes!\r\n"));
    CHECK(has(f.inner.content_for("reader@dest.test"), "\r\n\r\nBooks!\r\n"));
}

TEST_CASE("a bounce (null sender) is never merged") {
    Fixture f;
    const auto content = message("", "Your message said {{ x }}.\r\n");
    (void)f.run(job_for(content, {"a@dest.test"}, ""));
    REQUIRE(f.inner.jobs.size() == 1);
    CHECK(*f.inner.jobs[0].content == content);
}

TEST_CASE("a render over the limits fails its recipients with 550 5.3.4") {
    Fixture f;
    std::string items = "[";
    for (int i = 0; i < 10'001; ++i)
        items += (i ? ",1" : "1");
    items += "]";
    const auto content =
        message("X-Ember-Vars: {\"items\": " + items + "}\r\n", "{{#items}}x{{/items}}\r\n");
    const auto out = f.run(job_for(content, {"a@dest.test"}));
    REQUIRE(out.size() == 1);
    CHECK(out[0].kind == core::OutcomeKind::Failed);
    CHECK(out[0].code == 550);
    CHECK(out[0].enhanced == "5.3.4");
    CHECK(f.inner.jobs.empty());
}

TEST_CASE("a message whose markup does not compile at dispatch is sent as queued") {
    Fixture f;
    const auto content = message("", "Hi {{ name\r\n");
    const auto out = f.run(job_for(content, {"a@dest.test"}));
    REQUIRE(f.inner.jobs.size() == 1);
    CHECK(*f.inner.jobs[0].content == content);
    CHECK(out[0].kind == core::OutcomeKind::Delivered);
}

// ---- hook -------------------------------------------------------------------

TEST_CASE("the hook is asked once per job and its variables win over the message's") {
    Fixture f(scripted);
    f.set_contact("jane@dest.test", {{"first_name", "Jane"}});
    const auto content =
        message("X-Ember-Vars: {\"offer\": \"msg\"}\r\nX-Ember-Campaign: spring\r\n"
                "X-Ember-Tags: news, promo\r\n",
                "{{ first_name }}: {{ offer }}\r\n");
    const auto out = f.run(job_for(content, {"jane@dest.test", "bob@dest.test"}));
    CHECK(f.peer->requests == 1);
    const auto& req = f.peer->last;
    CHECK(req.at("message_id") == "Q1");
    CHECK(req.at("campaign") == "spring");
    CHECK(req.at("tags") == json::array{"news", "promo"});
    CHECK(req.at("from") == "news@sender.test");
    CHECK(req.at("subject") == "Hello");
    CHECK(req.at("variables").as_array().size() == 2);
    CHECK(req.at("recipients").as_array()[0].at("attributes").at("first_name") == "Jane");
    CHECK(has(f.inner.content_for("jane@dest.test"), "Jane: hook-jane\r\n"));
    CHECK(has(f.inner.content_for("bob@dest.test"), ": hook-bob\r\n"));
    CHECK_FALSE(has(f.inner.content_for("bob@dest.test"), "X-Ember-"));
}

TEST_CASE("a hook's skip settles the recipient as suppressed, without delivery") {
    Fixture f(scripted);
    const auto out = f.run(job_for(message("", "Hi\r\n"), {"skip@dest.test", "a@dest.test"}));
    REQUIRE(out.size() == 2);
    CHECK(out[0].kind == core::OutcomeKind::Suppressed);
    CHECK(out[0].enhanced == "5.7.1");
    CHECK(has(out[0].text, "not interested"));
    CHECK(out[1].kind == core::OutcomeKind::Delivered);
    REQUIRE(f.inner.jobs.size() == 1);
    CHECK(f.inner.jobs[0].recipients.size() == 1);
}

TEST_CASE("a hook's send_at holds the recipient (throttled, not an attempt) until then, never "
          "past the message's expiry") {
    Fixture f(scripted);
    const auto out = f.run(job_for(message("", "Hi\r\n"), {"soon@dest.test", "later@dest.test"}));
    REQUIRE(out.size() == 2);
    CHECK(out[0].kind == core::OutcomeKind::Throttled);
    CHECK(out[0].not_before_ms == kNow + 3'600'000);
    CHECK(out[1].kind == core::OutcomeKind::Throttled);
    const auto expiry = (kNow - 1000) + f.config.delivery.scheduler.retry.max_retry_time.count();
    CHECK(out[1].not_before_ms == expiry);
    CHECK(f.inner.jobs.empty());
}

TEST_CASE("a recipient held by send_at goes when it comes back, whatever the hook says then") {
    Fixture f(scripted);
    const auto first = f.run(job_for(message("", "Hi\r\n"), {"soon@dest.test"}));
    REQUIRE(first[0].kind == core::OutcomeKind::Throttled);
    CHECK(f.service->held_before(kMessageId, 0, kNow + 3'600'000));
    CHECK_FALSE(f.service->held_before(kMessageId, 0, kNow + 3'600'000)); // only once
}

TEST_CASE("a hook's variant selects the variant's sections") {
    Fixture f(scripted);
    const auto content =
        message("", "{{#tag:variant:b}}Variant B{{/tag:variant:b}}"
                    "{{^tag:variant:b}}Default{{/tag:variant:b}} {{ variant }}\r\n");
    (void)f.run(job_for(content, {"variant@dest.test", "plain@dest.test"}));
    CHECK(has(f.inner.content_for("variant@dest.test"), "\r\n\r\nVariant B b\r\n"));
    CHECK(has(f.inner.content_for("plain@dest.test"), "\r\n\r\nDefault \r\n"));
}

TEST_CASE("a hook's headers are set on that recipient's copy only") {
    Fixture f(scripted);
    (void)f.run(job_for(message("", "Hi\r\n"), {"header@dest.test", "plain@dest.test"}));
    const auto mine = f.inner.content_for("header@dest.test");
    CAPTURE(mine);
    CHECK(has(mine, "X-Segment: gold\r\n"));
    CHECK(has(mine, "Subject: New subject\r\n"));
    CHECK_FALSE(has(mine, "Subject: Hello"));
    CHECK(f.inner.content_for("plain@dest.test") == message("", "Hi\r\n"));
}

TEST_CASE("a failing hook follows on_error") {
    const auto fail = [](const json::object&) {
        return std::pair{500, std::string("{}")};
    };
    const auto content = message("X-Ember-Vars: {\"offer\": \"msg\"}\r\n", "{{ offer }}\r\n");
    SUBCASE("send-default sends without the hook's changes") {
        Fixture f(fail);
        const auto out = f.run(job_for(content, {"a@dest.test"}));
        CHECK(out[0].kind == core::OutcomeKind::Delivered);
        CHECK(has(f.inner.content_for("a@dest.test"), "\r\n\r\nmsg\r\n"));
    }
    SUBCASE("defer answers 451 4.3.0 without delivering") {
        Fixture f(fail, [](daemon::Config& c) {
            c.personalize.hook.on_error = personalize::HookErrorPolicy::Defer;
        });
        const auto out = f.run(job_for(content, {"a@dest.test"}));
        CHECK(out[0].kind == core::OutcomeKind::Deferred);
        CHECK(out[0].code == 451);
        CHECK(out[0].enhanced == "4.3.0");
        CHECK(out[0].local);
        CHECK(f.inner.jobs.empty());
    }
}

TEST_CASE("send_time uses the contact's histogram, else now") {
    Fixture f;
    const auto t =
        f.service->send_time("nobody@dest.test", "sender.test", std::chrono::hours(24), kNow);
    CHECK(t.at_ms == kNow);
    CHECK(t.source == personalize::SendTimeSource::Now);
}

TEST_CASE("a large render runs on the worker pool and gives the same bytes") {
    asio::thread_pool pool(1);
    Fixture f({}, {}, &pool);
    f.set_contact("a@dest.test", {{"n", "A"}});
    f.set_contact("b@dest.test", {{"n", "B"}});
    const std::string line(70, 'x');
    std::string body;
    while (body.size() < daemon::kOffloadBytes)
        body += line + "\r\n";
    body += "{{ n }}\r\n";
    (void)f.run(job_for(message("", body), {"a@dest.test", "b@dest.test"}));
    pool.join();
    REQUIRE(f.inner.jobs.size() == 2);
    CHECK(f.inner.content_for("a@dest.test").ends_with(line + "\r\nA\r\n"));
    CHECK(f.inner.content_for("b@dest.test").ends_with(line + "\r\nB\r\n"));
}

TEST_CASE("a reload that removes the hook stops asking it; one that adds it starts") {
    Fixture f(scripted);
    REQUIRE(f.service->hook() != nullptr);
    auto next = f.config;
    next.personalize.hook.url.clear();
    f.service->apply(next);
    CHECK(f.service->hook() == nullptr);
    (void)f.run(job_for(message("", "{{ offer }}\r\n"), {"a@dest.test"}));
    CHECK(f.peer->requests == 0);
    f.service->apply(f.config);
    REQUIRE(f.service->hook() != nullptr);
    (void)f.run(job_for(message("", "{{ offer }}\r\n"), {"a@dest.test"}));
    CHECK(f.peer->requests == 1);
    CHECK(f.service->config().hook.url == f.config.personalize.hook.url);
}
