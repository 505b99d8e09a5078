// The destination due indexes (schema 3): visit_due() order and passing
// over a busy destination unread, throttled(), the rebuild of the indexes
// when a schema 2 store is opened or when they disagree with each other,
// and that every write keeps them equal to the global due index.
#include "queue/store.hpp"

#include "fixture.hpp"

#include <doctest/doctest.h>

#include "queue/lmdb.hpp"

#include <algorithm>
#include <future>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

using namespace ember;
using namespace ember::queue;
using namespace ember::queue::test;

namespace {

constexpr auto kForever = std::numeric_limits<std::int64_t>::max();

struct Seen {
    std::string domain;
    QueueId id = 0;
    std::uint32_t index = 0;
    std::int64_t at = 0;
    friend bool operator==(const Seen&, const Seen&) = default;
    friend auto operator<=>(const Seen&, const Seen&) = default;
};

// Every due recipient visit_due() hands over when the visitor reads all.
std::vector<Seen> visit_all(const Store& store, std::int64_t now,
                            std::vector<std::string>* destinations = nullptr) {
    std::vector<Seen> out;
    DueVisitor v;
    v.destination = [&](std::string_view d) {
        if (destinations != nullptr)
            destinations->emplace_back(d);
        return DueStep::Continue;
    };
    v.recipient = [&](std::string_view d, QueueId id, std::uint32_t index, std::int64_t at) {
        out.push_back(Seen{std::string(d), id, index, at});
        return DueStep::Continue;
    };
    store.visit_due(now, v);
    return out;
}

std::vector<Seen> due_all(const Store& store, std::int64_t now) {
    std::vector<Seen> out;
    for (const auto& d : store.due(now, std::numeric_limits<std::size_t>::max()))
        out.push_back(Seen{d.domain, d.id, d.index, d.next_attempt_ms});
    return out;
}

UpdateResult update_sync(Store& store, QueueId id, std::vector<RecipientUpdate> updates,
                         bool remove_if_final = false) {
    std::promise<UpdateResult> promise;
    auto future = promise.get_future();
    store.update_recipients(id, std::move(updates), remove_if_final,
                            [&promise](UpdateResult r) { promise.set_value(std::move(r)); });
    return future.get();
}

QueueId commit_message(Store& store, std::vector<Recipient> recipients) {
    const auto id = store.next_id();
    REQUIRE(commit_sync(store, message(id, std::move(recipients)), content_for(id)).status ==
            CommitStatus::Ok);
    return id;
}

// visit_due() must hand over exactly the entries of the global due index,
// destinations in order of their earliest entry, each in (time, id, index)
// order and visited once.
void check_consistent(const Store& store) {
    std::vector<std::string> order;
    const auto visited = visit_all(store, kForever, &order);
    auto by_due = due_all(store, kForever);
    auto sorted = visited;
    std::sort(sorted.begin(), sorted.end());
    std::sort(by_due.begin(), by_due.end());
    CHECK(sorted == by_due);
    CHECK(std::set<std::string>(order.begin(), order.end()).size() == order.size());
    std::int64_t last_head = std::numeric_limits<std::int64_t>::min();
    for (std::size_t i = 0; i < visited.size(); ++i) {
        const auto& s = visited[i];
        if (i == 0 || visited[i - 1].domain != s.domain) {
            CHECK(s.at >= last_head);
            last_head = s.at;
        } else {
            const auto& p = visited[i - 1];
            CHECK(std::tie(p.at, p.id, p.index) < std::tie(s.at, s.id, s.index));
        }
    }
}

// Raw access to a closed store's environment, as an older ember or a
// damaged disk would leave it.
struct RawEnv {
    lmdb::Env env;
    lmdb::Txn txn;
    explicit RawEnv(const StoreConfig& config) {
        REQUIRE(lmdb::create_env(env).ok());
        REQUIRE(mdb_env_set_maxdbs(env.get(), 16) == 0);
        REQUIRE(mdb_env_open(env.get(), config.data_dir.c_str(), 0, 0600) == 0);
        REQUIRE(lmdb::Txn::begin(env.get(), 0, txn).ok());
    }
    lmdb::Dbi dbi(const char* name) {
        lmdb::Dbi d = 0;
        REQUIRE(txn.open_dbi(name, 0, d).ok());
        return d;
    }
    std::vector<std::pair<std::string, std::string>> entries(lmdb::Dbi d) {
        std::vector<std::pair<std::string, std::string>> out;
        lmdb::Cursor c;
        REQUIRE(lmdb::Cursor::open(txn, d, c).ok());
        std::string_view k;
        std::string_view v;
        for (auto st = c.get(MDB_FIRST, k, v); st.ok(); st = c.get(MDB_NEXT, k, v))
            out.emplace_back(k, v);
        return out;
    }
    void commit() { REQUIRE(txn.commit().ok()); }
};

// A schema 2 store: no destination indexes, empty `due` values.
void downgrade_to_schema_2(const StoreConfig& config) {
    RawEnv raw(config);
    const auto due = raw.dbi("due");
    for (const char* name : {"dest_due", "dest_heads"})
        REQUIRE(mdb_drop(raw.txn.get(), raw.dbi(name), 1) == 0);
    for (const auto& [k, v] : raw.entries(due))
        REQUIRE(raw.txn.put(due, k, "").ok());
    REQUIRE(raw.txn.put(raw.dbi("meta"), "schema_version", std::string("\0\0\0\2", 4)).ok());
    raw.commit();
}

} // namespace

TEST_CASE("visit_due hands destinations by earliest due time, each in due order") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    const auto a =
        commit_message(*store, {recipient("1@late.example", RecipientState::Queued, 300),
                                recipient("2@early.example", RecipientState::Queued, 100),
                                recipient("3@late.example", RecipientState::Queued, 200),
                                recipient("4@future.example", RecipientState::Queued, 900)});
    const auto b =
        commit_message(*store, {recipient("5@early.example", RecipientState::Queued, 100),
                                recipient("6@Late.Example", RecipientState::Deferred, 50)});
    std::vector<std::string> order;
    const auto got = visit_all(*store, 500, &order);
    const std::vector<Seen> want = {{"late.example", b, 1, 50},
                                    {"late.example", a, 2, 200},
                                    {"late.example", a, 0, 300},
                                    {"early.example", a, 1, 100},
                                    {"early.example", b, 0, 100}};
    CHECK(got == want);
    CHECK(order == std::vector<std::string>{"late.example", "early.example"});
    check_consistent(*store);
}

TEST_CASE("a destination the visitor passes over is not read, however long its backlog") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    std::vector<Recipient> backlog;
    for (int i = 0; i < 500; ++i)
        backlog.push_back(recipient("r" + std::to_string(i) + "@tarpit.example",
                                    RecipientState::Queued, 1000 + i));
    (void)commit_message(*store, std::move(backlog));
    const auto ok =
        commit_message(*store, {recipient("x@ok.example", RecipientState::Queued, 2000)});
    std::size_t destination_calls = 0;
    std::vector<Seen> read;
    DueVisitor v;
    v.destination = [&](std::string_view d) {
        ++destination_calls;
        return d == "tarpit.example" ? DueStep::Pass : DueStep::Continue;
    };
    v.recipient = [&](std::string_view d, QueueId id, std::uint32_t index, std::int64_t at) {
        read.push_back(Seen{std::string(d), id, index, at});
        return DueStep::Continue;
    };
    store->visit_due(5000, v);
    CHECK(destination_calls == 2);
    CHECK(read == std::vector<Seen>{{"ok.example", ok, 0, 2000}});
}

TEST_CASE("Pass from a recipient leaves its destination and Stop ends the visit") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    const auto id =
        commit_message(*store, {recipient("a@one.example", RecipientState::Queued, 10),
                                recipient("b@one.example", RecipientState::Queued, 20),
                                recipient("c@two.example", RecipientState::Queued, 30),
                                recipient("d@three.example", RecipientState::Queued, 40)});
    struct Case {
        DueStep on_first;
        std::vector<std::uint32_t> want;
    };
    const Case cases[] = {
        {DueStep::Continue, {0, 1, 2, 3}}, {DueStep::Pass, {0, 2, 3}}, {DueStep::Stop, {0}}};
    for (const auto& c : cases) {
        CAPTURE(static_cast<int>(c.on_first));
        std::vector<std::uint32_t> got;
        DueVisitor v;
        v.destination = [](std::string_view) {
            return DueStep::Continue;
        };
        v.recipient = [&](std::string_view, QueueId qid, std::uint32_t index, std::int64_t) {
            CHECK(qid == id);
            got.push_back(index);
            return index == 0 ? c.on_first : DueStep::Continue;
        };
        store->visit_due(100, v);
        CHECK(got == c.want);
    }
}

TEST_CASE("due values name the destination, so due() needs no record") {
    TempDir dir;
    const auto config = config_for(dir);
    QueueId id = 0;
    {
        auto store = open_store(config);
        id = commit_message(*store, {recipient("a@One.Example", RecipientState::Queued, 10)});
    }
    RawEnv raw(config);
    const auto due = raw.entries(raw.dbi("due"));
    REQUIRE(due.size() == 1);
    CHECK(due[0].second == std::string("\0one.example", 12));
    (void)id;
}

TEST_CASE("updates, final states and removals keep the destination indexes in step") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    std::mt19937 rng(11);
    const std::vector<std::string> domains = {"a.example", "b.example", "c.example", "d.example"};
    std::vector<std::pair<QueueId, std::uint32_t>> messages; // id, recipient count
    for (int round = 0; round < 300; ++round) {
        CAPTURE(round);
        const auto op = rng() % 4;
        if (op == 0 || messages.empty()) {
            std::vector<Recipient> rs;
            const auto n = 1 + rng() % 4;
            for (std::uint32_t i = 0; i < n; ++i)
                rs.push_back(recipient("r" + std::to_string(i) + "@" + domains[rng() % 4],
                                       RecipientState::Queued, 1 + rng() % 50));
            messages.emplace_back(commit_message(*store, std::move(rs)), n);
        } else if (op == 3) {
            const auto at = rng() % messages.size();
            std::string error;
            (void)store->remove(messages[at].first, error);
            CHECK(error.empty());
            messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(at));
        } else {
            const auto pick = messages[rng() % messages.size()];
            const auto id = pick.first;
            const auto n = pick.second;
            const auto m = store->load(id);
            REQUIRE(m.has_value());
            const auto index = static_cast<std::uint32_t>(rng() % n);
            auto r = m->recipients[index];
            r.state = rng() % 3 == 0 ? RecipientState::Delivered : RecipientState::Deferred;
            r.next_attempt_ms = 1 + rng() % 50;
            const bool remove = rng() % 2 == 0;
            const auto result = update_sync(*store, id, {RecipientUpdate{index, r}}, remove);
            REQUIRE(result.status == CommitStatus::Ok);
            if (result.removed)
                std::erase_if(messages, [id](const auto& e) { return e.first == id; });
        }
        check_consistent(*store);
    }
}

TEST_CASE("a schema 2 store has its due indexes rebuilt at open") {
    TempDir dir;
    const auto config = config_for(dir);
    std::vector<Seen> before;
    {
        auto store = open_store(config);
        (void)commit_message(*store, {recipient("a@one.example", RecipientState::Queued, 30),
                                      recipient("b@two.example", RecipientState::Queued, 10),
                                      recipient("c@one.example", RecipientState::Delivered, 5)});
        (void)commit_message(*store, {recipient("d@two.example", RecipientState::Deferred, 20)});
        before = visit_all(*store, kForever);
        REQUIRE(before.size() == 3);
    }
    downgrade_to_schema_2(config);
    {
        RawEnv raw(config); // the downgrade really removed the destination index
        lmdb::Dbi gone = 0;
        CHECK(raw.txn.open_dbi("dest_due", 0, gone).is(MDB_NOTFOUND));
    }
    {
        auto store = open_store(config);
        CHECK(visit_all(*store, kForever) == before);
        CHECK(due_all(*store, kForever).size() == 3);
        check_consistent(*store);
    }
    RawEnv raw(config);
    std::string_view version;
    REQUIRE(raw.txn.get(raw.dbi("meta"), "schema_version", version).ok());
    CHECK(version == std::string_view("\0\0\0\3", 4));
    for (const auto& [k, v] : raw.entries(raw.dbi("due")))
        CHECK(v.size() > 1); // flags and domain, rewritten by the rebuild
}

TEST_CASE("destination indexes that disagree with the due index are rebuilt at open") {
    TempDir dir;
    const auto config = config_for(dir);
    std::vector<Seen> before;
    {
        auto store = open_store(config);
        (void)commit_message(*store, {recipient("a@one.example", RecipientState::Queued, 30),
                                      recipient("b@two.example", RecipientState::Queued, 10)});
        before = visit_all(*store, kForever);
    }
    {
        // A lost entry, as a bug or a damaged copy could leave it.
        RawEnv raw(config);
        const auto dest_due = raw.dbi("dest_due");
        const auto entries = raw.entries(dest_due);
        REQUIRE(entries.size() == 2);
        REQUIRE(raw.txn.del(dest_due, entries[0].first).ok());
        raw.commit();
    }
    auto store = open_store(config);
    CHECK(visit_all(*store, kForever) == before);
    check_consistent(*store);
}

TEST_CASE("reopening a store keeps its destination indexes without a rebuild") {
    TempDir dir;
    const auto config = config_for(dir);
    std::vector<Seen> before;
    QueueId id = 0;
    {
        auto store = open_store(config);
        id = commit_message(*store, {recipient("a@one.example", RecipientState::Queued, 30),
                                     recipient("b@two.example", RecipientState::Queued, 10)});
        auto r = recipient("b@two.example", RecipientState::Deferred, 70);
        REQUIRE(update_sync(*store, id, {RecipientUpdate{1, r}}).status == CommitStatus::Ok);
        before = visit_all(*store, kForever);
    }
    auto store = open_store(config);
    CHECK(visit_all(*store, kForever) == before);
    CHECK(before == std::vector<Seen>{{"one.example", id, 0, 30}, {"two.example", id, 1, 70}});
}

TEST_CASE("throttled() lists the pending recipients waiting on a Throttled outcome") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    auto held = recipient("a@one.example", RecipientState::Queued, 5000);
    held.throttled_until_ms = 5000;
    held.held_ms = 4000;
    const auto id =
        commit_message(*store, {held, recipient("b@one.example", RecipientState::Deferred, 10)});
    CHECK(store->throttled() == std::vector<DueRecipient>{{id, 0, "one.example", 5000}});
    // Once it has a real outcome it is no longer throttled.
    held.throttled_until_ms = 0;
    held.state = RecipientState::Deferred;
    REQUIRE(update_sync(*store, id, {RecipientUpdate{0, held}}).status == CommitStatus::Ok);
    CHECK(store->throttled().empty());
}
