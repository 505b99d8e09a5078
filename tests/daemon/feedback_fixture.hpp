#pragma once
// A FeedbackService over a real Store in a temporary directory, with a
// manual clock, VERP, List-Unsubscribe for sender.test and an event log the
// tests read back. Test-only.

#include "daemon/config.hpp"
#include "daemon/feedback_service.hpp"
#include "daemon/metrics.hpp"
#include "tests/queue/fixture.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <fstream>
#include <functional>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace ember::test {

inline constexpr const char* kBounceDomain = "bounce.test";
inline constexpr const char* kFbl = "fbl@bounce.test";
inline constexpr const char* kPublicUrl = "https://mta.test.example";
inline constexpr std::int64_t kNow = 1'780'000'000'000; // 2026-05-28

// A recipient-scoped reply to RCPT TO from mx1.dest.test (192.0.2.1).
inline core::Outcome outcome(core::OutcomeKind kind, int code, std::string enhanced,
                             std::string text) {
    core::Outcome o;
    o.kind = kind;
    o.scope = core::OutcomeScope::Recipient;
    o.code = code;
    o.enhanced = std::move(enhanced);
    o.text = std::move(text);
    o.command = "RCPT TO";
    o.remote_host = "mx1.dest.test";
    o.remote_ip = "192.0.2.1";
    return o;
}

inline daemon::Config feedback_config(const std::string& dir) {
    daemon::Config c;
    c.file = dir + "/ember.toml";
    c.http.public_url = kPublicUrl;
    c.feedback.token_keys = {"k1:unit-test-secret-0123456789"};
    c.feedback.verp = true;
    c.feedback.bounce_domain = kBounceDomain;
    c.feedback.unsubscribe_domains = {"sender.test"};
    c.feedback.unsubscribe_mailto_domain = kBounceDomain;
    c.feedback.inbound.report_addresses = {kFbl};
    c.events.log.path = dir + "/events.log";
    return c;
}

// A job of message 7 ("Q7") to dest.test from news@sender.test.
inline core::DeliveryJob job_for(const std::vector<std::string>& addresses,
                                 const std::string& from = "From: News <news@Sender.test>") {
    core::DeliveryJob job;
    job.message_id = 7;
    job.queue_id = "Q7";
    job.domain = "dest.test";
    job.envelope.mail_from = "app@sender.test";
    job.content = std::make_shared<const std::string>("Received: from a\r\n\tby b; date\r\n" +
                                                      from + "\r\nSubject: hi\r\n\r\nbody\r\n");
    std::uint32_t i = 0;
    for (const auto& a : addresses) {
        core::JobRecipient r;
        r.index = i++;
        r.spec.address = a;
        job.recipients.push_back(std::move(r));
    }
    return job;
}

struct Fixture {
    queue::test::TempDir dir;
    std::unique_ptr<queue::Store> store;
    boost::asio::io_context io;
    daemon::Metrics metrics;
    daemon::Config config;
    std::int64_t now = kNow;
    std::unique_ptr<daemon::FeedbackService> service;

    explicit Fixture(const std::function<void(daemon::Config&)>& tweak = {}) {
        store = queue::test::open_store(queue::test::config_for(dir));
        config = feedback_config(dir.path);
        if (tweak)
            tweak(config);
        std::string error;
        service = daemon::FeedbackService::create(io.get_executor(), config, *store, metrics, error,
                                                  [this] { return now; });
        INFO(error);
        REQUIRE(service != nullptr);
    }

    template <typename T> T run(boost::asio::awaitable<T> task) {
        std::optional<T> out;
        boost::asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
            REQUIRE_FALSE(e);
            out = std::move(value);
        });
        io.restart();
        io.run();
        REQUIRE(out.has_value());
        return std::move(*out);
    }

    // Store writes complete on the committer thread: poll, with a limit.
    void wait_for(const std::function<bool()>& done) {
        for (int i = 0; i < 5000; ++i) {
            if (done())
                return;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        FAIL("a store write did not complete");
    }

    void suppress(const std::string& address, const std::string& scope,
                  feedback::SuppressionReason reason) {
        std::promise<feedback::WriteResult> done;
        service->suppressions().add(feedback::SuppressionEntry{address, scope, reason, now, "test"},
                                    [&done](feedback::WriteResult r) { done.set_value(r); });
        REQUIRE(done.get_future().get().status == feedback::WriteStatus::Ok);
    }

    std::vector<feedback::Event> events() {
        service->flush_log();
        std::ifstream in(config.events.log.path);
        std::vector<feedback::Event> out;
        for (std::string line; std::getline(in, line);) {
            std::string error;
            auto e = feedback::decode_event(line, error);
            INFO(error);
            REQUIRE(e.has_value());
            out.push_back(std::move(*e));
        }
        return out;
    }
};

} // namespace ember::test
