#include "daemon/dispatch.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

using namespace ember;
namespace asio = boost::asio;

namespace {

// Records every sub-job and answers 250 with the sub-job's number in the text.
struct RecordingDeliverer final : core::Deliverer {
    std::vector<core::DeliveryJob> jobs;
    asio::awaitable<std::vector<core::Outcome>> deliver(core::DeliveryJob job) override {
        std::vector<core::Outcome> out;
        for (std::size_t i = 0; i < job.recipients.size(); ++i) {
            core::Outcome o;
            o.kind = core::OutcomeKind::Delivered;
            o.code = 250;
            o.text = "job " + std::to_string(jobs.size());
            out.push_back(o);
        }
        jobs.push_back(std::move(job));
        co_return out;
    }
};

// Applies `fn` to every recipient not decided yet.
struct LambdaStage final : daemon::DispatchStage {
    std::function<void(daemon::DispatchContext&, daemon::DispatchRecipient&)> fn;
    explicit LambdaStage(decltype(fn) f) : fn(std::move(f)) {}
    asio::awaitable<void> apply(std::shared_ptr<daemon::DispatchContext> ctx) override {
        for (auto& r : ctx->recipients)
            if (!r.decided)
                fn(*ctx, r);
        co_return;
    }
};

const std::string kContent = "Received: from a\r\n\tby b; date\r\nFrom: News <n@News.Example>\r\n"
                             "Subject: hi\r\n\r\nbody\r\n";

core::DeliveryJob job_for(std::vector<std::string> addresses) {
    core::DeliveryJob job;
    job.message_id = 7;
    job.queue_id = "Q7";
    job.domain = "d.example";
    job.envelope.mail_from = "app@news.example";
    job.content = std::make_shared<const std::string>(kContent);
    std::uint32_t i = 0;
    for (auto& a : addresses) {
        core::JobRecipient r;
        r.index = i++;
        r.spec.address = std::move(a);
        job.recipients.push_back(std::move(r));
    }
    return job;
}

std::vector<core::Outcome> run(daemon::Dispatcher& d, core::DeliveryJob job) {
    asio::io_context io;
    std::vector<core::Outcome> out;
    asio::co_spawn(io, d.deliver(std::move(job)), [&](std::exception_ptr e, auto v) {
        REQUIRE_FALSE(e);
        out = std::move(v);
    });
    io.run();
    return out;
}

} // namespace

TEST_CASE("without stages a job reaches the inner deliverer untouched") {
    RecordingDeliverer inner;
    daemon::Dispatcher d(inner, [] { return 1000; });
    const auto out = run(d, job_for({"a@d.example", "b@d.example"}));
    REQUIRE(inner.jobs.size() == 1);
    CHECK(inner.jobs[0].content.get() != nullptr);
    CHECK(*inner.jobs[0].content == kContent);
    CHECK(inner.jobs[0].variant.empty());
    CHECK(out.size() == 2);
}

TEST_CASE("decided recipients skip delivery; the rest group by sender, fields and rendering") {
    RecordingDeliverer inner;
    daemon::Dispatcher d(inner, [] { return 1000; });
    std::string seen_domain;
    d.add_stage(std::make_shared<LambdaStage>([&](auto& ctx, auto& r) {
        seen_domain = ctx.sending_domain;
        if (r.recipient.spec.address.starts_with("gone")) {
            core::Outcome o;
            o.kind = core::OutcomeKind::Suppressed;
            o.text = "suppressed";
            r.decided = o;
        }
    }));
    d.add_stage(std::make_shared<LambdaStage>([](auto&, auto& r) {
        if (r.recipient.spec.address.starts_with("verp"))
            r.mail_from = "bounces+" + r.recipient.spec.address.substr(0, 5) + "@b.example";
        if (r.recipient.spec.address.starts_with("list"))
            r.prepend = "List-Unsubscribe: <https://u/" + r.recipient.spec.address + ">\r\n";
    }));
    const auto out = run(d, job_for({"a@d.example", "gone@d.example", "verp1@d.example",
                                     "list1@d.example", "b@d.example", "verp2@d.example"}));
    CHECK(seen_domain == "news.example");
    REQUIRE(out.size() == 6);
    CHECK(out[1].kind == core::OutcomeKind::Suppressed);
    // a and b share the untouched job; each VERP sender and each field set is its own.
    REQUIRE(inner.jobs.size() == 4);
    CHECK(inner.jobs[0].recipients.size() == 2);
    CHECK(inner.jobs[0].variant.empty());
    CHECK(inner.jobs[0].content.get() != nullptr);
    CHECK(out[0].text == "job 0");
    CHECK(out[4].text == "job 0");
    CHECK(inner.jobs[1].envelope.mail_from == "bounces+verp1@b.example");
    CHECK(out[2].text == "job 1");
    CHECK(inner.jobs[2].recipients.at(0).index == 3);
    CHECK(*inner.jobs[2].content ==
          "Received: from a\r\n\tby b; date\r\nList-Unsubscribe: <https://u/list1@d.example>\r\n"
          "From: News <n@News.Example>\r\nSubject: hi\r\n\r\nbody\r\n");
    CHECK(out[5].text == "job 3");
    // Every changed copy has its own, distinct variant name.
    CHECK_FALSE(inner.jobs[1].variant.empty());
    CHECK(inner.jobs[1].variant != inner.jobs[2].variant);
    CHECK(inner.jobs[1].variant != inner.jobs[3].variant);
}

TEST_CASE("fields go after the leading trace fields, or first when there are none") {
    CHECK(daemon::insert_after_trace("Subject: x\r\n\r\nb", "X-A: 1\r\n") ==
          "X-A: 1\r\nSubject: x\r\n\r\nb");
    CHECK(daemon::insert_after_trace("Return-Path: <a>\r\nreceived: x\r\n y\r\nTo: t\r\n\r\n",
                                     "X-A: 1\r\n") ==
          "Return-Path: <a>\r\nreceived: x\r\n y\r\nX-A: 1\r\nTo: t\r\n\r\n");
}
