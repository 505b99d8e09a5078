// The scheduler's additions to the records and the store: recipient codec
// version 2 (outcome, last attempt, DSN state) with version 1 still read,
// group-committed update_recipients(), due() with a skip predicate,
// next_due_after() and find_messages().
#include "queue/store.hpp"

#include "fixture.hpp"

#include <doctest/doctest.h>

#include "queue/lmdb.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <limits>
#include <string>
#include <thread>
#include <vector>

using namespace ember;
using namespace ember::queue;
using namespace ember::queue::test;

namespace {

// A version 1 recipient record, byte for byte as the first ember wrote it.
std::string v1_record(const Recipient& r) {
    std::string out = {1, 'R'};
    const auto fixed = [&out](std::uint64_t v, int bytes) {
        for (int i = 0; i < bytes; ++i)
            out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    };
    const auto str = [&](const std::string& s) {
        fixed(s.size(), 4);
        out += s;
    };
    str(r.spec.address);
    str(r.spec.orcpt);
    fixed(r.spec.notify, 1);
    fixed(static_cast<std::uint8_t>(r.state), 1);
    fixed(r.attempts, 4);
    fixed(static_cast<std::uint64_t>(r.next_attempt_ms), 8);
    fixed(static_cast<std::uint64_t>(r.updated_ms), 8);
    str(r.last_reply);
    return out;
}

Recipient with_outcome() {
    auto r = recipient("bob@example.net", RecipientState::Failed, 5000);
    r.spec.notify = core::kNotifyFailure | core::kNotifyDelay;
    r.attempts = 4;
    r.outcome.kind = core::OutcomeKind::Failed;
    r.outcome.scope = core::OutcomeScope::Recipient;
    r.outcome.code = 550;
    r.outcome.enhanced = "5.1.1";
    r.outcome.text = "no such user";
    r.outcome.command = "RCPT TO";
    r.outcome.remote_host = "mx.example.net";
    r.outcome.remote_ip = "192.0.2.25";
    r.last_reply = r.outcome.summary();
    r.last_attempt_ms = 1'700'000'123'000;
    r.dsn_state = kDsnFailureSent;
    return r;
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

} // namespace

TEST_CASE("a recipient with an outcome, last attempt and DSN state round trips as version 3") {
    const auto r = with_outcome();
    const auto bytes = encode_recipient(r);
    CHECK(bytes[0] == 3);
    const auto decoded = decode_recipient(bytes);
    REQUIRE(decoded.has_value());
    CHECK(*decoded == r);
}

TEST_CASE("a version 1 recipient record still decodes, with no outcome and no DSN sent") {
    auto r = recipient("old@example.org", RecipientState::Deferred, 7000);
    r.spec.orcpt = "rfc822;old@example.org";
    r.spec.notify = core::kNotifyDelay;
    r.attempts = 2;
    r.updated_ms = 6000;
    r.last_reply = "host mx[192.0.2.1] said: 451 4.7.1 later";
    const auto decoded = decode_recipient(v1_record(r));
    REQUIRE(decoded.has_value());
    CHECK(*decoded == r);
    CHECK(decoded->outcome == core::Outcome{});
    CHECK(decoded->dsn_state == 0);
    // Written back, it becomes version 2 and still means the same.
    CHECK(decode_recipient(encode_recipient(*decoded)) == r);
    // A version 1 record with version 2 fields appended is not version 1.
    CHECK_FALSE(decode_recipient(v1_record(r) + std::string(2, '\0')).has_value());
}

TEST_CASE("out-of-range version 2 fields are rejected") {
    const auto good = encode_recipient(with_outcome());
    // The version 2 tail: kind(1) scope(1) code(4) 5 strings local(1) last_attempt(8) dsn(1).
    const auto& o = with_outcome().outcome;
    const auto tail = 1 + 1 + 4 + 5 * 4 + o.enhanced.size() + o.text.size() + o.command.size() +
                      o.remote_host.size() + o.remote_ip.size() + 1 + 8 + 1;
    const std::size_t v3_tail = 8 + 8; // held_ms, throttled_until_ms
    const auto end = good.size() - v3_tail;
    const auto kind_at = end - tail;
    struct Case {
        std::size_t at;
        char value;
        const char* what;
    };
    const Case cases[] = {{kind_at, 5, "kind"},
                          {kind_at + 1, 3, "scope"},
                          {kind_at + 3, 4, "code 1062"},
                          {end - 10, 2, "local"},
                          {end - 1, 4, "dsn_state"},
                          {good.size() - 9, '\x80', "negative held_ms"},
                          {good.size() - 1, '\x80', "negative throttled_until_ms"}};
    for (const auto& c : cases) {
        CAPTURE(c.what);
        auto bad = good;
        bad[c.at] = c.value;
        CHECK_FALSE(decode_recipient(bad).has_value());
    }
    for (std::size_t n = 0; n < good.size(); ++n) {
        CAPTURE(n);
        CHECK_FALSE(decode_recipient(std::string_view(good).substr(0, n)).has_value());
    }
}

TEST_CASE("a store holding version 1 records opens, counts and delivers them") {
    TempDir dir;
    const auto config = config_for(dir);
    QueueId id = 0;
    {
        auto store = open_store(config);
        id = commit_message(*store, {recipient("a@one.example", RecipientState::Queued, 1000)});
    }
    {
        // Rewrite the recipient as an older ember stored it.
        lmdb::Env env;
        REQUIRE(lmdb::create_env(env).ok());
        REQUIRE(mdb_env_set_maxdbs(env.get(), 8) == 0);
        REQUIRE(mdb_env_open(env.get(), config.data_dir.c_str(), 0, 0600) == 0);
        lmdb::Txn txn;
        REQUIRE(lmdb::Txn::begin(env.get(), 0, txn).ok());
        lmdb::Dbi recipients = 0;
        REQUIRE(txn.open_dbi("recipients", 0, recipients).ok());
        std::string key;
        for (int i = 7; i >= 0; --i)
            key.push_back(static_cast<char>((id >> (8 * i)) & 0xff));
        key += std::string(4, '\0');
        REQUIRE(txn.put(recipients, key,
                        v1_record(recipient("a@one.example", RecipientState::Queued, 1000)))
                    .ok());
        REQUIRE(txn.commit().ok());
    }
    auto store = open_store(config);
    CHECK(store->counts().at(RecipientState::Queued) == 1);
    CHECK(store->due(1000, 10) == std::vector<DueRecipient>{{id, 0, "one.example", 1000}});
    REQUIRE(store->load(id).has_value());
    CHECK(store->load(id)->recipients[0].outcome.code == 0);
}

TEST_CASE("update_recipients rewrites several recipients and moves their index entries") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    const auto id =
        commit_message(*store, {recipient("a@one.example", RecipientState::Queued, 1000),
                                recipient("b@one.example", RecipientState::Queued, 1000),
                                recipient("c@two.example", RecipientState::Queued, 1000)});
    auto deferred = recipient("a@one.example", RecipientState::Deferred, 9000);
    deferred.attempts = 1;
    auto delivered = with_outcome();
    delivered.spec.address = "b@one.example";
    delivered.state = RecipientState::Delivered;
    const auto result = update_sync(*store, id, {{0, deferred}, {1, delivered}});
    CHECK(result.status == CommitStatus::Ok);
    CHECK_FALSE(result.removed);
    const auto m = store->load(id);
    REQUIRE(m.has_value());
    CHECK(m->recipients[0] == deferred);
    CHECK(m->recipients[1] == delivered);
    CHECK(store->due(5000, 10) == std::vector<DueRecipient>{{id, 2, "two.example", 1000}});
    CHECK(store->due(9000, 10).size() == 2);
    CHECK(store->counts().at(RecipientState::Queued) == 1);
    CHECK(store->counts().at(RecipientState::Deferred) == 1);
    CHECK(store->counts().at(RecipientState::Delivered) == 1);
}

TEST_CASE("two updates of one recipient in a request apply in order") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    const auto id =
        commit_message(*store, {recipient("a@one.example", RecipientState::Queued, 1000)});
    const auto first = recipient("a@one.example", RecipientState::Deferred, 5000);
    const auto second = recipient("a@one.example", RecipientState::Deferred, 7000);
    REQUIRE(update_sync(*store, id, {{0, first}, {0, second}}).status == CommitStatus::Ok);
    CHECK(store->due(10000, 10) == std::vector<DueRecipient>{{id, 0, "one.example", 7000}});
}

TEST_CASE("remove_if_final deletes the message only when no recipient is pending") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    const auto id =
        commit_message(*store, {recipient("a@one.example", RecipientState::Queued, 1000),
                                recipient("b@two.example", RecipientState::Queued, 1000)});
    const auto result =
        update_sync(*store, id, {{0, recipient("a@one.example", RecipientState::Delivered)}}, true);
    CHECK(result.status == CommitStatus::Ok);
    CHECK_FALSE(result.removed);
    CHECK(store->load(id).has_value());

    const auto last =
        update_sync(*store, id, {{1, recipient("b@two.example", RecipientState::Failed)}}, true);
    CHECK(last.status == CommitStatus::Ok);
    CHECK(last.removed);
    CHECK_FALSE(store->load(id).has_value());
    CHECK_FALSE(store->load_content(id).has_value());
    CHECK(store->due(std::numeric_limits<std::int64_t>::max(), 10).empty());
    for (const auto& entry : store->counts()) {
        CAPTURE(state_name(entry.first));
        CHECK(entry.second == 0);
    }
}

TEST_CASE("an update naming an unknown recipient or message writes nothing of the request") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    const auto id =
        commit_message(*store, {recipient("a@one.example", RecipientState::Queued, 1000)});
    const auto before = store->load(id);
    const auto bad = update_sync(*store, id,
                                 {{0, recipient("a@one.example", RecipientState::Delivered)},
                                  {1, recipient("b@one.example", RecipientState::Delivered)}});
    CHECK(bad.status == CommitStatus::IoError);
    CHECK(bad.detail.find("no recipient 1") != std::string::npos);
    CHECK(store->load(id) == before);
    const auto gone =
        update_sync(*store, id + 1, {{0, recipient("a@one.example", RecipientState::Delivered)}});
    CHECK(gone.status == CommitStatus::IoError);
}

TEST_CASE("updates and commits queued together share one transaction and all apply") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    const auto id =
        commit_message(*store, {recipient("a@one.example", RecipientState::Queued, 1000)});
    // A first commit whose `done` blocks holds the committer while the rest queue up.
    std::promise<void> gate;
    auto gate_future = gate.get_future().share();
    std::promise<void> entered;
    std::promise<void> first_done;
    const auto blocker = store->next_id();
    store->commit(message(blocker), "x", [&](const CommitResult&) {
        entered.set_value();
        gate_future.wait();
        first_done.set_value();
    });
    entered.get_future().wait();
    std::promise<UpdateResult> update_result;
    store->update_recipients(id, {{0, recipient("a@one.example", RecipientState::Delivered)}}, true,
                             [&](const UpdateResult& r) { update_result.set_value(r); });
    const auto after = store->next_id();
    std::promise<CommitResult> commit_result;
    store->commit(message(after), "y", [&](const CommitResult& r) { commit_result.set_value(r); });
    gate.set_value();
    first_done.get_future().wait();
    const auto u = update_result.get_future().get();
    const auto c = commit_result.get_future().get();
    CHECK(u.status == CommitStatus::Ok);
    CHECK(u.removed);
    CHECK(c.status == CommitStatus::Ok);
    CHECK(c.batch_size == 2); // the update and the commit were written together
    CHECK_FALSE(store->load(id).has_value());
    CHECK(store->load(after).has_value());
}

TEST_CASE("update_recipients after the store began shutting down answers ShuttingDown") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    const auto id = commit_message(*store, {recipient("a@one.example")});
    Store* raw = store.get(); // store.reset() nulls the unique_ptr before destroying
    std::atomic<bool> refused{false};
    // The first `done` holds the committer and probes until an update is
    // refused, which shows the destructor has begun (as commit_test does).
    store->commit(message(store->next_id()), "x", [&](const CommitResult&) {
        while (!refused) {
            raw->update_recipients(id,
                                   {{0, recipient("a@one.example", RecipientState::Deferred, 5)}},
                                   false, [&](const UpdateResult& r) {
                                       if (r.status == CommitStatus::ShuttingDown)
                                           refused = true;
                                   });
            if (!refused)
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    store.reset();
    CHECK(refused);
}

TEST_CASE("due with a skip predicate leaves entries out without counting them to the limit") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    const auto id =
        commit_message(*store, {recipient("a@one.example", RecipientState::Queued, 1000),
                                recipient("b@one.example", RecipientState::Queued, 2000),
                                recipient("c@two.example", RecipientState::Queued, 3000)});
    const auto skip_first = [id](const DueRecipient& d) {
        return d.id == id && d.index == 0;
    };
    CHECK(store->due(5000, 1, skip_first) ==
          std::vector<DueRecipient>{{id, 1, "one.example", 2000}});
    const auto skip_one = [](const DueRecipient& d) {
        return d.domain == "one.example";
    };
    CHECK(store->due(5000, 10, skip_one) ==
          std::vector<DueRecipient>{{id, 2, "two.example", 3000}});
    CHECK(store->due(5000, 10, {}).size() == 3);
}

TEST_CASE("next_due_after names the earliest due time later than now") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    CHECK_FALSE(store->next_due_after(0).has_value());
    commit_message(*store, {recipient("a@one.example", RecipientState::Queued, 1000),
                            recipient("b@one.example", RecipientState::Deferred, 5000),
                            recipient("c@one.example", RecipientState::Delivered, 3000)});
    CHECK(store->next_due_after(0) == 1000);
    CHECK(store->next_due_after(999) == 1000);
    CHECK(store->next_due_after(1000) == 5000);
    CHECK_FALSE(store->next_due_after(5000).has_value());
    CHECK_FALSE(store->next_due_after(std::numeric_limits<std::int64_t>::max()).has_value());
}

TEST_CASE("find_messages returns the ids whose recipients match, in order") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    const auto pending = commit_message(*store, {recipient("a@one.example")});
    const auto done = commit_message(*store, {recipient("a@one.example", RecipientState::Delivered),
                                              recipient("b@one.example", RecipientState::Failed)});
    const auto mixed = commit_message(
        *store, {recipient("a@one.example", RecipientState::Failed), recipient("b@one.example")});
    const auto any_failed = [](const std::vector<Recipient>& rs) {
        return std::any_of(rs.begin(), rs.end(),
                           [](const Recipient& r) { return r.state == RecipientState::Failed; });
    };
    CHECK(store->find_messages(any_failed) == std::vector<QueueId>{done, mixed});
    const auto sizes = [](const std::vector<Recipient>& rs) {
        return rs.size() == 1;
    };
    CHECK(store->find_messages(sizes) == std::vector<QueueId>{pending});
}
