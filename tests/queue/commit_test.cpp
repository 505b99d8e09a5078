#include "queue/store.hpp"

#include "fixture.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

using namespace ember;
using namespace ember::queue;
using namespace ember::queue::test;

// Grouping is made deterministic without timing: the first commit's `done`
// runs on the committer thread and blocks until the test has queued every
// other request (commit() returns only after its request is queued). While
// it blocks no transaction can start, so when it returns all the others are
// waiting and the committer takes them together.
namespace {

struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
    void release() {
        {
            std::lock_guard lock(mu);
            open = true;
        }
        cv.notify_all();
    }
    void wait() {
        std::unique_lock lock(mu);
        cv.wait(lock, [this] { return open; });
    }
};

// Collects results from the committer thread; CHECKs run on the test thread.
struct Results {
    std::mutex mu;
    std::condition_variable cv;
    std::map<QueueId, CommitResult> by_id;
    std::function<void(CommitResult)> slot(QueueId id) {
        return [this, id](CommitResult r) {
            std::lock_guard lock(mu);
            by_id.emplace(id, std::move(r));
            cv.notify_all();
        };
    }
    void wait_for(std::size_t n) {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return by_id.size() >= n; });
    }
};

void commit_gate(Store& store, Gate& gate, Results& results) {
    const auto id = store.next_id();
    auto record = results.slot(id);
    store.commit(message(id), "gate", [&gate, record](CommitResult r) {
        gate.wait();
        record(std::move(r));
    });
}

} // namespace

TEST_CASE("200 commits from 8 threads all succeed, load back and share transactions") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    Gate gate;
    Results results;
    commit_gate(*store, gate, results);

    std::vector<std::vector<QueueId>> ids(8);
    std::vector<std::thread> threads;
    threads.reserve(ids.size());
    for (auto& mine : ids)
        threads.emplace_back([&store, &results, &mine] {
            for (int i = 0; i < 25; ++i) {
                const auto id = store->next_id();
                mine.push_back(id);
                store->commit(message(id, {recipient("r@example.com"), recipient("s@example.net")}),
                              content_for(id), results.slot(id));
            }
        });
    for (auto& t : threads)
        t.join();
    gate.release();
    results.wait_for(201);

    std::uint64_t largest_batch = 0;
    for (const auto& mine : ids) {
        for (const auto id : mine) {
            CAPTURE(format_queue_id(id));
            const auto& r = results.by_id.at(id);
            CHECK(r.status == CommitStatus::Ok);
            largest_batch = std::max(largest_batch, r.batch_size);
            const auto m = store->load(id);
            REQUIRE(m.has_value());
            CHECK(m->recipients.size() == 2);
            CHECK(store->load_content(id) == content_for(id));
        }
    }
    CHECK(largest_batch > 1);
    CHECK(store->counts().at(RecipientState::Queued) == 1 + 200 * 2);
    CHECK(store->summary().messages == 201);
}

TEST_CASE("a batch holds at most max_batch requests") {
    TempDir dir;
    auto config = config_for(dir);
    config.max_batch = 4;
    auto store = open_store(config);
    Gate gate;
    Results results;
    commit_gate(*store, gate, results);
    std::vector<QueueId> ids;
    for (int i = 0; i < 20; ++i) {
        ids.push_back(store->next_id());
        store->commit(message(ids.back()), "x", results.slot(ids.back()));
    }
    gate.release();
    results.wait_for(21);
    std::uint64_t largest_batch = 0;
    for (const auto id : ids) {
        const auto& r = results.by_id.at(id);
        CHECK(r.status == CommitStatus::Ok);
        CHECK(r.batch_size <= 4);
        largest_batch = std::max(largest_batch, r.batch_size);
    }
    CHECK(largest_batch == 4);
}

TEST_CASE(
    "a full map fails the large message with MapFull while a small one in its batch commits") {
    TempDir dir;
    auto store = open_store(config_for(dir, std::uint64_t{256} << 10));
    Gate gate;
    Results results;
    commit_gate(*store, gate, results);
    const auto big = store->next_id();
    const auto small = store->next_id();
    store->commit(message(big), std::string(std::size_t{1} << 20, 'x'), results.slot(big));
    store->commit(message(small), content_for(small), results.slot(small));
    gate.release();
    results.wait_for(3);

    CHECK(results.by_id.at(big).status == CommitStatus::MapFull);
    CHECK_FALSE(results.by_id.at(big).detail.empty());
    CHECK(results.by_id.at(small).status == CommitStatus::Ok);
    CHECK_FALSE(store->load(big).has_value());
    CHECK_FALSE(store->load_content(big).has_value());
    CHECK(store->load_content(small) == content_for(small));
    CHECK(store->counts().at(RecipientState::Queued) == 2); // gate + small

    // The store stays usable after the failure.
    const auto after = store->next_id();
    CHECK(commit_sync(*store, message(after), "after").status == CommitStatus::Ok);
    CHECK(store->load_content(after) == "after");
}

TEST_CASE("the destructor answers every queued commit, and later commits get ShuttingDown") {
    TempDir dir;
    const auto config = config_for(dir);
    auto store = open_store(config);
    Results results;
    std::vector<QueueId> queued;
    CommitResult refused{CommitStatus::Ok, {}, 0};
    bool refused_yet = false;
    std::size_t probes_queued = 0;
    Store* raw = store.get(); // store.reset() nulls the unique_ptr before destroying
    // The first `done` probes with commit() until one is refused, which shows
    // the destructor has begun; it holds the committer meanwhile, so the 30
    // commits below are still waiting and must be drained, not dropped.
    const auto first = store->next_id();
    store->commit(message(first), "first", [&](CommitResult r) {
        results.slot(first)(std::move(r));
        while (!refused_yet) {
            const auto id = raw->next_id();
            raw->commit(message(id), "probe", [&, id](CommitResult p) {
                if (p.status == CommitStatus::ShuttingDown) {
                    refused = p;
                    refused_yet = true;
                } else {
                    results.slot(id)(std::move(p));
                }
            });
            if (!refused_yet) {
                ++probes_queued;
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        }
    });
    for (int i = 0; i < 30; ++i) {
        queued.push_back(store->next_id());
        store->commit(message(queued.back()), "x", results.slot(queued.back()));
    }
    store.reset();

    CHECK(refused.status == CommitStatus::ShuttingDown);
    CHECK(results.by_id.size() == 1 + 30 + probes_queued);
    for (const auto& entry : results.by_id) {
        CAPTURE(format_queue_id(entry.first));
        CHECK(entry.second.status == CommitStatus::Ok);
    }
    auto reopened = open_store(config);
    for (const auto id : queued)
        CHECK(reopened->load(id).has_value());
}
