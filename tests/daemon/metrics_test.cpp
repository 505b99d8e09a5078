#include "daemon/metrics.hpp"

#include "queue/store.hpp"
#include "tests/daemon/control_support.hpp"

#include <doctest/doctest.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <future>
#include <string>
#include <vector>

using namespace ember;
using ember::daemon::Metrics;

TEST_CASE("render serializes a family a library registered, in the text format") {
    Metrics metrics;
    auto& family = prometheus::BuildCounter()
                       .Name("ember_test_events_total")
                       .Help("Events seen by the test")
                       .Register(metrics.registry());
    family.Add({{"kind", "a"}}).Increment(3);

    const auto text = metrics.render();
    CAPTURE(text);
    CHECK(text.find("# TYPE ember_test_events_total counter") != std::string::npos);
    CHECK(text.find("ember_test_events_total{kind=\"a\"} 3") != std::string::npos);
}

TEST_CASE("refreshers run before every render, in the order added") {
    Metrics metrics;
    auto& gauge = prometheus::BuildGauge()
                      .Name("ember_test_level")
                      .Help("A value copied at scrape time")
                      .Register(metrics.registry())
                      .Add({});
    std::vector<int> calls;
    int level = 7;
    metrics.add_refresher([&] {
        calls.push_back(1);
        gauge.Set(level);
    });
    metrics.add_refresher([&] { calls.push_back(2); });

    CHECK(metrics.render().find("ember_test_level 7") != std::string::npos);
    level = 9;
    CHECK(metrics.render().find("ember_test_level 9") != std::string::npos);
    CHECK(calls == std::vector<int>{1, 2, 1, 2});
}

TEST_CASE("queue gauges show every recipient state, zero included, at each scrape") {
    daemon::test::TempDir dir;
    queue::StoreConfig config;
    config.data_dir = dir.path + "/queue";
    config.map_size = core::ByteSize{std::uint64_t{64} << 20};
    std::string error;
    auto store = queue::Store::open(config, error);
    REQUIRE_MESSAGE(store, error);

    Metrics metrics;
    daemon::add_queue_gauges(metrics, *store);
    const auto before = metrics.render();
    CAPTURE(before);
    CHECK(before.find("ember_queue_recipients{state=\"queued\"} 0") != std::string::npos);
    CHECK(before.find("ember_queue_recipients{state=\"suppressed\"} 0") != std::string::npos);

    queue::Message message;
    message.id = store->next_id();
    message.envelope.mail_from = "a@example.org";
    for (const char* address : {"x@example.net", "y@example.net"}) {
        queue::Recipient r;
        r.spec.address = address;
        message.recipients.push_back(r);
    }
    std::promise<queue::CommitResult> done;
    store->commit(message, "Subject: x\r\n\r\nbody\r\n",
                  [&done](queue::CommitResult r) { done.set_value(std::move(r)); });
    REQUIRE(done.get_future().get().status == queue::CommitStatus::Ok);

    const auto after = metrics.render();
    CAPTURE(after);
    CHECK(after.find("ember_queue_recipients{state=\"queued\"} 2") != std::string::npos);
}
