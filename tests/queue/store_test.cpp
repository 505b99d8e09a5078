#include "queue/store.hpp"

#include "fixture.hpp"
#include "queue/lmdb.hpp"

#include <doctest/doctest.h>

#include <sys/stat.h>

#include <algorithm>
#include <set>
#include <thread>

using namespace ember;
using namespace ember::queue;
using namespace ember::queue::test;

namespace {

unsigned mode_of(const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 0777;
}

std::vector<QueueId> ids_of(const std::vector<Message>& messages) {
    std::vector<QueueId> ids;
    ids.reserve(messages.size());
    for (const auto& m : messages)
        ids.push_back(m.id);
    return ids;
}

std::uint64_t count(const Store& store, RecipientState s) {
    return store.counts().at(s);
}

} // namespace

TEST_CASE("open creates a missing data_dir with mode 0700 and the LMDB files with mode 0600") {
    TempDir dir;
    auto config = config_for(dir);
    config.data_dir = dir.path + "/a/b";
    auto store = open_store(config);
    CHECK(mode_of(config.data_dir) == 0700);
    CHECK(mode_of(dir.path + "/a") == 0700);
    CHECK(mode_of(config.data_dir + "/data.mdb") == 0600);
    CHECK(mode_of(config.data_dir + "/lock.mdb") == 0600);
}

TEST_CASE("open reports a data_dir that cannot be created") {
    TempDir dir;
    auto config = config_for(dir);
    config.data_dir = dir.path + "/file/queue";
    {
        std::FILE* f = std::fopen((dir.path + "/file").c_str(), "w");
        REQUIRE(f != nullptr);
        std::fclose(f);
    }
    std::string error;
    CHECK(Store::open(config, error) == nullptr);
    CHECK(error.find(dir.path + "/file") != std::string::npos);
}

TEST_CASE("a committed message loads back with its envelope, recipients and content") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    const auto id = store->next_id();
    auto m = message(id, {recipient("a@example.com"), recipient("b@Example.NET")});
    m.envelope.envid = "ENV1";
    m.envelope.recipients.push_back(core::RecipientSpec{"ignored@example.com", "", 0});
    m.submission.auth_user = "alice";
    const auto result = commit_sync(*store, m, content_for(id));
    CHECK(result.status == CommitStatus::Ok);
    CHECK(result.batch_size == 1);

    const auto loaded = store->load(id);
    REQUIRE(loaded.has_value());
    CHECK(loaded->id == id);
    CHECK(loaded->envelope.envid == "ENV1");
    CHECK(loaded->submission == m.submission);
    CHECK(loaded->size == content_for(id).size());
    REQUIRE(loaded->recipients.size() == 2);
    CHECK(loaded->recipients[1].spec.address == "b@Example.NET");
    // recipients[] are the truth: envelope.recipients is rebuilt from them
    REQUIRE(loaded->envelope.recipients.size() == 2);
    CHECK(loaded->envelope.recipients[0] == loaded->recipients[0].spec);
    CHECK(loaded->envelope.recipients[1] == loaded->recipients[1].spec);
    CHECK(store->load_content(id) == content_for(id));
    CHECK_FALSE(store->load(id + 1).has_value());
    CHECK_FALSE(store->load_content(id + 1).has_value());
}

TEST_CASE("a pending recipient without a next attempt is due at submission time") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    const auto id = store->next_id();
    auto m = message(id, {recipient("a@example.com"),
                          recipient("b@example.com", RecipientState::Deferred, 1'800'000'000'000),
                          recipient("c@example.com", RecipientState::Suppressed)});
    REQUIRE(commit_sync(*store, m, "x").status == CommitStatus::Ok);
    const auto loaded = store->load(id);
    REQUIRE(loaded.has_value());
    CHECK(loaded->recipients[0].next_attempt_ms == m.submission.received_at_ms);
    CHECK(loaded->recipients[1].next_attempt_ms == 1'800'000'000'000);
    CHECK(loaded->recipients[2].next_attempt_ms == 0); // not pending: no due time
}

TEST_CASE("envelope recipients fill an empty recipient list; no recipients at all is refused") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    const auto id = store->next_id();
    auto m = message(id, {});
    m.envelope.recipients.push_back(core::RecipientSpec{"x@example.com", "", core::kNotifyNever});
    REQUIRE(commit_sync(*store, m, "x").status == CommitStatus::Ok);
    const auto loaded = store->load(id);
    REQUIRE(loaded.has_value());
    REQUIRE(loaded->recipients.size() == 1);
    CHECK(loaded->recipients[0].spec.address == "x@example.com");
    CHECK(loaded->recipients[0].state == RecipientState::Queued);

    const auto empty = commit_sync(*store, message(store->next_id(), {}), "x");
    CHECK(empty.status == CommitStatus::IoError);
    CHECK(empty.detail == "message has no recipients");
    const auto no_id = commit_sync(*store, message(0), "x");
    CHECK(no_id.status == CommitStatus::IoError);
    CHECK(store->summary().messages == 1);
}

TEST_CASE("a duplicate id fails with IoError and leaves the first message intact") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    const auto id = store->next_id();
    REQUIRE(commit_sync(*store, message(id), "first").status == CommitStatus::Ok);
    const auto dup = commit_sync(*store, message(id, {recipient("z@example.org")}), "second");
    CHECK(dup.status == CommitStatus::IoError);
    CHECK(dup.detail.find(format_queue_id(id)) != std::string::npos);
    CHECK(store->load_content(id) == "first");
    CHECK(store->load(id)->recipients.at(0).spec.address == "a@example.com");
    CHECK(count(*store, RecipientState::Queued) == 1);
}

TEST_CASE("a reopened store finds every message, its content and its counts") {
    TempDir dir;
    const auto config = config_for(dir);
    std::vector<QueueId> ids;
    {
        auto store = open_store(config);
        for (int i = 0; i < 10; ++i) {
            ids.push_back(store->next_id());
            auto m = message(ids.back(), {recipient("a@example.com"),
                                          recipient("b@example.net", RecipientState::Failed)});
            REQUIRE(commit_sync(*store, m, content_for(ids.back())).status == CommitStatus::Ok);
        }
    }
    auto store = open_store(config);
    for (const auto id : ids) {
        CAPTURE(format_queue_id(id));
        const auto m = store->load(id);
        REQUIRE(m.has_value());
        CHECK(m->recipients.size() == 2);
        CHECK(store->load_content(id) == content_for(id));
    }
    CHECK(ids_of(store->list(filter(std::nullopt, std::nullopt, 100))) == ids);
    CHECK(count(*store, RecipientState::Queued) == 10);
    CHECK(count(*store, RecipientState::Failed) == 10);
    CHECK(count(*store, RecipientState::Delivered) == 0);
}

TEST_CASE("next_id after a reopen is larger than every stored id, even one from the future") {
    TempDir dir;
    const auto config = config_for(dir);
    // An id far ahead of the clock, as if the clock had stepped back since.
    const QueueId future = (static_cast<QueueId>(1) << 62) | 5;
    QueueId before = 0;
    {
        auto store = open_store(config);
        before = store->next_id();
        REQUIRE(commit_sync(*store, message(future), "x").status == CommitStatus::Ok);
        CHECK(store->next_id() > future); // commit() floors ids too
    }
    auto store = open_store(config);
    const auto next = store->next_id();
    CHECK(next > future);
    CHECK(next > before);
    CHECK(store->next_id() > next);
}

TEST_CASE("next_id never repeats and increases on every thread") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    std::vector<std::vector<QueueId>> per_thread(4);
    std::vector<std::thread> threads;
    threads.reserve(per_thread.size());
    for (auto& ids : per_thread)
        threads.emplace_back([&store, &ids] {
            for (int i = 0; i < 5000; ++i)
                ids.push_back(store->next_id());
        });
    for (auto& t : threads)
        t.join();
    std::set<QueueId> all;
    for (const auto& ids : per_thread) {
        CHECK(std::is_sorted(ids.begin(), ids.end()));
        all.insert(ids.begin(), ids.end());
    }
    CHECK(all.size() == 4 * 5000);
}

TEST_CASE("a schema version newer than this build refuses to open with a clear message") {
    TempDir dir;
    const auto config = config_for(dir);
    { auto store = open_store(config); }
    {
        // Stamp version 4 straight into `meta`, as a newer ember would.
        lmdb::Env env;
        REQUIRE(lmdb::create_env(env).ok());
        REQUIRE(mdb_env_set_maxdbs(env.get(), 8) == 0);
        REQUIRE(mdb_env_open(env.get(), config.data_dir.c_str(), 0, 0600) == 0);
        lmdb::Txn txn;
        REQUIRE(lmdb::Txn::begin(env.get(), 0, txn).ok());
        lmdb::Dbi meta = 0;
        REQUIRE(txn.open_dbi("meta", 0, meta).ok());
        REQUIRE(txn.put(meta, "schema_version", std::string("\0\0\0\4", 4)).ok());
        REQUIRE(txn.commit().ok());
    }
    std::string error;
    CHECK(Store::open(config, error) == nullptr);
    CHECK(error.find("schema version 4 is newer") != std::string::npos);
}

TEST_CASE("remove deletes a message, its content, recipients and index entries") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    const auto keep = store->next_id();
    const auto gone = store->next_id();
    REQUIRE(commit_sync(*store, message(keep), "keep").status == CommitStatus::Ok);
    REQUIRE(commit_sync(*store,
                        message(gone, {recipient("x@gone.example"),
                                       recipient("y@gone.example", RecipientState::Delivered)}),
                        "gone")
                .status == CommitStatus::Ok);
    CHECK(count(*store, RecipientState::Queued) == 2);

    std::string error;
    CHECK(store->remove(gone, error));
    CHECK(error.empty());
    CHECK_FALSE(store->load(gone).has_value());
    CHECK_FALSE(store->load_content(gone).has_value());
    CHECK(store->list(filter("gone.example", RecipientState::Queued)).empty());
    CHECK(store->list(filter("gone.example")).empty());
    for (const auto& d : store->due(std::numeric_limits<std::int64_t>::max(), 100))
        CHECK(d.id != gone);
    CHECK(count(*store, RecipientState::Queued) == 1);
    CHECK(count(*store, RecipientState::Delivered) == 0);
    CHECK(store->summary().messages == 1);
    CHECK(store->load(keep).has_value());

    CHECK_FALSE(store->remove(gone, error));
    CHECK(error.empty());
}

TEST_CASE("list returns messages in id order, filtered by domain and state, up to the limit") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    std::vector<QueueId> ids;
    const std::vector<std::vector<Recipient>> rcpts = {
        {recipient("a@one.example")},
        {recipient("b@two.example"), recipient("c@one.example", RecipientState::Delivered)},
        {recipient("d@One.Example", RecipientState::Deferred, 1'800'000'000'000)},
        {recipient("e@two.example", RecipientState::Failed)},
    };
    for (const auto& r : rcpts) {
        ids.push_back(store->next_id());
        REQUIRE(commit_sync(*store, message(ids.back(), r), "x").status == CommitStatus::Ok);
    }
    struct Case {
        const char* what;
        ListFilter filter;
        std::vector<QueueId> want;
    };
    const Case cases[] = {
        {"all", {}, ids},
        {"limit", filter(std::nullopt, std::nullopt, 2), {ids[0], ids[1]}},
        {"domain, any state", filter("one.example"), {ids[0], ids[1], ids[2]}},
        {"domain, case-insensitive", filter("ONE.example"), {ids[0], ids[1], ids[2]}},
        {"domain + queued (index)", filter("one.example", RecipientState::Queued), {ids[0]}},
        {"domain + deferred (index)", filter("one.example", RecipientState::Deferred), {ids[2]}},
        {"domain + delivered", filter("one.example", RecipientState::Delivered), {ids[1]}},
        {"state only", filter(std::nullopt, RecipientState::Queued), {ids[0], ids[1]}},
        {"state failed", filter(std::nullopt, RecipientState::Failed), {ids[3]}},
        {"state + limit", filter(std::nullopt, RecipientState::Queued, 1), {ids[0]}},
        {"unknown domain", filter("three.example"), {}},
        {"domain prefix is not a match", filter("one"), {}},
        {"limit 0", filter(std::nullopt, std::nullopt, 0), {}},
    };
    for (const auto& c : cases) {
        CAPTURE(c.what);
        CHECK(ids_of(store->list(c.filter)) == c.want);
    }
}

TEST_CASE("summary counts messages, recipients by state and by domain and state") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    REQUIRE(commit_sync(
                *store,
                message(store->next_id(), {recipient("a@one.example"), recipient("b@TWO.example"),
                                           recipient("c@one.example", RecipientState::Failed)}),
                "x")
                .status == CommitStatus::Ok);
    REQUIRE(
        commit_sync(*store, message(store->next_id(), {recipient("d@one.example")}), "x").status ==
        CommitStatus::Ok);
    const auto s = store->summary();
    CHECK(s.messages == 2);
    CHECK(s.by_state.at(RecipientState::Queued) == 3);
    CHECK(s.by_state.at(RecipientState::Failed) == 1);
    CHECK(s.by_state.at(RecipientState::Delivered) == 0);
    CHECK(s.by_domain.at("one.example").at(RecipientState::Queued) == 2);
    CHECK(s.by_domain.at("one.example").at(RecipientState::Failed) == 1);
    CHECK(s.by_domain.at("two.example").at(RecipientState::Queued) == 1);
    CHECK(s.by_domain.size() == 2);
    CHECK(store->counts() == s.by_state);
}

TEST_CASE("due lists pending recipients up to now in time order, at most limit") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    const auto a = store->next_id();
    const auto b = store->next_id();
    REQUIRE(commit_sync(*store,
                        message(a, {recipient("x@late.example", RecipientState::Deferred, 3000),
                                    recipient("y@done.example", RecipientState::Delivered)}),
                        "x")
                .status == CommitStatus::Ok);
    REQUIRE(commit_sync(*store,
                        message(b, {recipient("z@Early.example", RecipientState::Queued, 1000),
                                    recipient("w@mid.example", RecipientState::Deferred, 2000)}),
                        "x")
                .status == CommitStatus::Ok);
    const std::vector<DueRecipient> all = {
        {b, 0, "early.example", 1000}, {b, 1, "mid.example", 2000}, {a, 0, "late.example", 3000}};
    CHECK(store->due(5000, 10) == all);
    CHECK(store->due(2000, 10) == std::vector<DueRecipient>(all.begin(), all.begin() + 2));
    CHECK(store->due(5000, 1) == std::vector<DueRecipient>(all.begin(), all.begin() + 1));
    CHECK(store->due(999, 10).empty());
    CHECK(store->due(5000, 0).empty());
}

TEST_CASE("update_recipient rewrites the record and moves or drops its index entries") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    const auto id = store->next_id();
    REQUIRE(commit_sync(*store,
                        message(id, {recipient("a@one.example", RecipientState::Queued, 1000),
                                     recipient("b@two.example", RecipientState::Queued, 1000)}),
                        "x")
                .status == CommitStatus::Ok);

    auto deferred = recipient("a@one.example", RecipientState::Deferred, 9000);
    deferred.attempts = 1;
    deferred.last_reply = "451 4.7.1 later";
    CHECK(store->update_recipient(id, 0, deferred).empty());
    CHECK(store->load(id)->recipients[0] == deferred);
    CHECK(store->due(5000, 10) == std::vector<DueRecipient>{{id, 1, "two.example", 1000}});
    CHECK(store->due(9000, 10).size() == 2);
    CHECK(ids_of(store->list(filter("one.example", RecipientState::Deferred))) ==
          std::vector<QueueId>{id});
    CHECK(store->list(filter("one.example", RecipientState::Queued)).empty());

    CHECK(store->update_recipient(id, 1, recipient("b@two.example", RecipientState::Delivered))
              .empty());
    CHECK(store->due(9000, 10) == std::vector<DueRecipient>{{id, 0, "one.example", 9000}});
    CHECK(store->list(filter("two.example", RecipientState::Queued)).empty());
    CHECK(count(*store, RecipientState::Queued) == 0);
    CHECK(count(*store, RecipientState::Deferred) == 1);
    CHECK(count(*store, RecipientState::Delivered) == 1);

    CHECK_FALSE(store->update_recipient(id, 2, deferred).empty());
    CHECK_FALSE(store->update_recipient(id + 1, 0, deferred).empty());
}
