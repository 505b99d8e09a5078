#include "feedback/suppression.hpp"

#include "tests/queue/fixture.hpp"

#include <doctest/doctest.h>

#include <future>
#include <string>
#include <vector>

using namespace ember::feedback;
using ember::queue::Store;
using ember::queue::test::config_for;
using ember::queue::test::open_store;
using ember::queue::test::TempDir;

namespace {

constexpr std::int64_t kT0 = 1'700'000'000'000; // 2023-11-14T22:13:20Z
constexpr std::int64_t kDay = 86'400'000;

struct Fixture {
    TempDir dir;
    std::unique_ptr<Store> store = open_store(config_for(dir));
    std::unique_ptr<SuppressionList> list = open_list(*store);

    static std::unique_ptr<SuppressionList> open_list(Store& store, SuppressionConfig config = {}) {
        std::string error;
        auto l = SuppressionList::open(store, config, error);
        INFO("open error: ", error);
        REQUIRE(l != nullptr);
        return l;
    }
};

// Runs an asynchronous write and waits for its result.
template <typename Start> WriteResult wait(Start start) {
    std::promise<WriteResult> promise;
    auto future = promise.get_future();
    start([&promise](WriteResult r) { promise.set_value(std::move(r)); });
    return future.get();
}

WriteResult add(SuppressionList& list, SuppressionEntry e) {
    return wait([&](WriteDone done) { list.add(std::move(e), std::move(done)); });
}

SuppressionEntry entry(std::string address, std::string scope, SuppressionReason reason,
                       std::int64_t time_ms = kT0, std::string source = "test") {
    return {std::move(address), std::move(scope), reason, time_ms, std::move(source)};
}

std::vector<std::string> addresses(const SuppressionPage& page) {
    std::vector<std::string> out;
    for (const auto& e : page.entries)
        out.push_back(e.address + "|" + e.scope);
    return out;
}

std::string export_all(const SuppressionList& list, const SuppressionQuery& query = {}) {
    std::string out;
    list.export_csv(query, [&](std::string_view line) { out += line; });
    return out;
}

} // namespace

TEST_CASE("addresses are normalized case-insensitively and non-addresses are refused") {
    struct Case {
        const char* in;
        const char* want; // "" = refused
    };
    const Case cases[] = {
        {"Bob@Example.COM", "bob@example.com"},
        {" <Alice.Smith+tag@Example.org.> ", "alice.smith+tag@example.org"},
        {"user@[192.0.2.1]", "user@[192.0.2.1]"},
        {"no-at-sign", ""},
        {"@example.com", ""},
        {"a@", ""},
        {"a b@example.com", ""},
        {"a\x01@example.com", ""},
        {"", ""},
    };
    for (const auto& c : cases) {
        CAPTURE(c.in);
        const auto got = normalize_address(c.in);
        CHECK(got.value_or("") == c.want);
    }
    CHECK(normalize_address(std::string(250, 'a') + "@x.example") == std::nullopt);
    CHECK(normalize_scope("Example.COM.") == std::optional<std::string>("example.com"));
    CHECK(normalize_scope("global") == std::optional<std::string>(""));
    CHECK(normalize_scope("*") == std::optional<std::string>(""));
    CHECK(normalize_scope("bad domain") == std::nullopt);
    CHECK(normalize_scope("a..b") == std::nullopt);
}

TEST_CASE("a global entry suppresses for every sending domain, a domain entry only for its own") {
    Fixture f;
    CHECK(add(*f.list, entry("Gone@Example.NET", "", SuppressionReason::HardBounce)).status ==
          WriteStatus::Ok);
    CHECK(
        add(*f.list, entry("carol@example.net", "News.Example.com", SuppressionReason::Unsubscribe))
            .status == WriteStatus::Ok);

    const auto gone = f.list->check("gone@example.net", "anything.example");
    REQUIRE(gone.has_value());
    CHECK(gone->reason == SuppressionReason::HardBounce);
    CHECK(gone->scope.empty());
    CHECK(gone->time_ms == kT0);
    CHECK(gone->source == "test");
    CHECK(f.list->check("GONE@EXAMPLE.NET", "").has_value());

    const auto carol = f.list->check("Carol@example.net", "news.example.com");
    REQUIRE(carol.has_value());
    CHECK(carol->reason == SuppressionReason::Unsubscribe);
    CHECK(carol->scope == "news.example.com");
    CHECK_FALSE(f.list->check("carol@example.net", "shop.example.com").has_value());
    CHECK_FALSE(f.list->check("carol@example.net", "").has_value());
    CHECK_FALSE(f.list->check("nobody@example.net", "news.example.com").has_value());
    CHECK(f.list->size() == 2);
}

TEST_CASE("the same address and scope is replaced by the latest event") {
    Fixture f;
    REQUIRE(add(*f.list, entry("a@x.example", "", SuppressionReason::SoftBounce)).status ==
            WriteStatus::Ok);
    REQUIRE(add(*f.list, entry("A@x.example", "", SuppressionReason::Complaint, kT0 + 5)).status ==
            WriteStatus::Ok);
    const auto e = f.list->check("a@x.example", "");
    REQUIRE(e.has_value());
    CHECK(e->reason == SuppressionReason::Complaint);
    CHECK(e->time_ms == kT0 + 5);
    CHECK(f.list->size() == 1);
}

TEST_CASE("remove takes out one scope; remove_everywhere takes out all of them") {
    Fixture f;
    for (const auto* scope : {"", "a.example", "b.example"})
        REQUIRE(add(*f.list, entry("x@y.example", scope, SuppressionReason::Manual)).status ==
                WriteStatus::Ok);
    CHECK(f.list->entries_for("X@y.example").size() == 3);

    auto r = wait([&](WriteDone d) { f.list->remove("x@y.example", "A.example", std::move(d)); });
    CHECK(r.status == WriteStatus::Ok);
    CHECK(f.list->entries_for("x@y.example").size() == 2);
    r = wait([&](WriteDone d) { f.list->remove("x@y.example", "", std::move(d)); });
    CHECK(r.status == WriteStatus::Ok);
    CHECK_FALSE(f.list->check("x@y.example", "a.example").has_value());
    CHECK(f.list->check("x@y.example", "b.example").has_value());

    r = wait([&](WriteDone d) { f.list->remove_everywhere("x@y.example", std::move(d)); });
    CHECK(r.status == WriteStatus::Ok);
    CHECK(r.written == 1);
    CHECK(f.list->size() == 0);
    // Absent is not an error.
    r = wait([&](WriteDone d) { f.list->remove("x@y.example", "", std::move(d)); });
    CHECK(r.status == WriteStatus::Ok);
}

TEST_CASE("bad input is refused before anything is written") {
    Fixture f;
    CHECK(add(*f.list, entry("not an address", "", SuppressionReason::Manual)).status ==
          WriteStatus::Invalid);
    CHECK(add(*f.list, entry("a@b.example", "bad domain!", SuppressionReason::Manual)).status ==
          WriteStatus::Invalid);
    const auto r = wait([&](WriteDone d) {
        f.list->add_all({entry("ok@b.example", "", SuppressionReason::Manual),
                         entry("@bad", "", SuppressionReason::Manual)},
                        std::move(d));
    });
    CHECK(r.status == WriteStatus::Invalid);
    CHECK(f.list->size() == 0);
}

TEST_CASE("source text is kept on one line and capped") {
    Fixture f;
    REQUIRE(add(*f.list, entry("a@b.example", "", SuppressionReason::HardBounce, kT0,
                               "550 5.1.1\r\nFake: header\t" + std::string(2000, 'x')))
                .status == WriteStatus::Ok);
    const auto e = f.list->check("a@b.example", "");
    REQUIRE(e.has_value());
    CHECK(e->source.find_first_of("\r\n\t") == std::string::npos);
    CHECK(e->source.size() == kMaxSourceSize);
    CHECK(e->source.rfind("550 5.1.1  Fake: header ", 0) == 0);
}

TEST_CASE("an unreadable record still suppresses") {
    Fixture f;
    std::string error;
    const auto table = f.store->open_table("suppression", error);
    REQUIRE(table.has_value());
    std::promise<ember::queue::CommitResult> done;
    f.store->kv_write({{*table, std::string("odd@x.example") + '\0', std::string("garbage")}},
                      [&](ember::queue::CommitResult r) { done.set_value(r); });
    REQUIRE(done.get_future().get().status == ember::queue::CommitStatus::Ok);
    const auto e = f.list->check("odd@x.example", "");
    REQUIRE(e.has_value());
    CHECK(e->reason == SuppressionReason::Manual);
    CHECK(e->source == "unreadable record");
}

TEST_CASE("list pages through entries with a cursor and filters by reason and scope") {
    Fixture f;
    std::vector<SuppressionEntry> all;
    for (int i = 0; i < 7; ++i) {
        const auto reason =
            i % 2 == 0 ? SuppressionReason::HardBounce : SuppressionReason::Complaint;
        all.push_back(
            entry("user" + std::to_string(i) + "@x.example", i < 5 ? "" : "d.example", reason));
    }
    REQUIRE(wait([&](WriteDone d) { f.list->add_all(all, std::move(d)); }).written == 7);

    SuppressionQuery q;
    q.limit = 3;
    std::vector<std::string> seen;
    int pages = 0;
    do {
        const auto page = f.list->list(q);
        const auto got = addresses(page);
        seen.insert(seen.end(), got.begin(), got.end());
        q.cursor = page.next_cursor;
        ++pages;
    } while (!q.cursor.empty() && pages < 10);
    CHECK(pages == 3);
    CHECK(seen == std::vector<std::string>{"user0@x.example|", "user1@x.example|",
                                           "user2@x.example|", "user3@x.example|",
                                           "user4@x.example|", "user5@x.example|d.example",
                                           "user6@x.example|d.example"});

    SuppressionQuery by_reason;
    by_reason.reason = SuppressionReason::Complaint;
    CHECK(addresses(f.list->list(by_reason)) ==
          std::vector<std::string>{"user1@x.example|", "user3@x.example|",
                                   "user5@x.example|d.example"});
    SuppressionQuery by_scope;
    by_scope.scope = "D.example";
    CHECK(f.list->list(by_scope).entries.size() == 2);
    by_scope.scope = "global";
    CHECK(f.list->list(by_scope).entries.size() == 5);

    const auto counts = f.list->count_by_reason();
    CHECK(counts.at(SuppressionReason::HardBounce) == 4);
    CHECK(counts.at(SuppressionReason::Complaint) == 3);
    CHECK(counts.at(SuppressionReason::Unsubscribe) == 0);
}

TEST_CASE("a CSV line writes RFC 3339 UTC time, 'global' and RFC 4180 quoting") {
    CHECK(csv_line(entry("a@b.example", "", SuppressionReason::HardBounce, kT0 + 42,
                         "550 5.1.1 \"no\", gone")) ==
          "a@b.example,hard-bounce,global,2023-11-14T22:13:20.042Z,\"550 5.1.1 \"\"no\"\", gone\"");
    CHECK(csv_line(entry("a@b.example", "x.example", SuppressionReason::Unsubscribe, 0, "u")) ==
          "a@b.example,unsubscribe,x.example,1970-01-01T00:00:00.000Z,u");
}

TEST_CASE("export then import into another store gives the same list") {
    Fixture f;
    REQUIRE(
        wait([&](WriteDone d) {
            f.list->add_all(
                {entry("a@x.example", "", SuppressionReason::HardBounce, kT0, "550, \"q\""),
                 entry("b@x.example", "news.example", SuppressionReason::Unsubscribe, kT0 + kDay),
                 entry("c@x.example", "", SuppressionReason::SoftBounce, kT0 + 1, "")},
                std::move(d));
        }).status == WriteStatus::Ok);
    const auto csv = export_all(*f.list);
    CAPTURE(csv);
    CHECK(csv.rfind(std::string(kCsvHeader) + "\n", 0) == 0);

    const auto parsed = parse_suppression_csv(csv, 0);
    CHECK(parsed.errors.empty());
    CHECK(parsed.rows == 3);
    Fixture other;
    REQUIRE(wait([&](WriteDone d) { other.list->add_all(parsed.entries, std::move(d)); }).written ==
            3);
    CHECK(export_all(*other.list) == csv);
    const auto b = other.list->check("b@x.example", "news.example");
    REQUIRE(b.has_value());
    CHECK(b->time_ms == kT0 + kDay);
}

TEST_CASE("import reads headers in any order, defaults, times, CRLF and quoted newlines") {
    const std::string csv = "Email,Reason,Time,Note\r\n"
                            "One@X.example,bounce,2023-11-14,\"two\nlines\"\r\n"
                            "two@x.example,,2023-11-14T23:13:20+01:00,\r\n"
                            "three@x.example,COMPLAINT,1700000000123,x\r\n"
                            "\r\n";
    const auto parsed = parse_suppression_csv(csv, 99);
    INFO(parsed.errors.to_string());
    CHECK(parsed.errors.empty());
    REQUIRE(parsed.entries.size() == 3);
    CHECK(parsed.entries[0] ==
          entry("one@x.example", "", SuppressionReason::HardBounce, kT0 - 80'000'000, "two lines"));
    CHECK(parsed.entries[1] == entry("two@x.example", "", SuppressionReason::Manual, kT0, ""));
    CHECK(parsed.entries[2].time_ms == kT0 + 123);
    CHECK(parsed.entries[2].reason == SuppressionReason::Complaint);

    const auto positional = parse_suppression_csv("d@x.example,unsubscribe,shop.example\n", 7);
    REQUIRE(positional.entries.size() == 1);
    CHECK(positional.entries[0] ==
          entry("d@x.example", "shop.example", SuppressionReason::Unsubscribe, 7, "import"));
}

TEST_CASE("bad import rows are reported with their line and skipped") {
    const std::string csv = "address,reason,scope,time,source\n"
                            "good@x.example\n"
                            "not-an-address\n"
                            "b@x.example,sometimes\n"
                            "c@x.example,manual,bad domain\n"
                            "d@x.example,manual,,yesterday\n"
                            "\"e@x.example,manual\n";
    const auto parsed = parse_suppression_csv(csv, 0, "list.csv");
    CHECK(parsed.rows == 6);
    CHECK(parsed.entries.size() == 1);
    const auto errors = parsed.errors.sorted();
    REQUIRE(errors.size() == 5);
    const std::uint32_t want_lines[] = {3, 4, 5, 6, 7};
    for (std::size_t i = 0; i < errors.size(); ++i) {
        CAPTURE(errors[i].message);
        CHECK(errors[i].file == "list.csv");
        CHECK(errors[i].line == want_lines[i]);
    }
    CHECK(errors[1].message.find("unknown reason") != std::string::npos);
    CHECK(errors[4].message.find("unterminated") != std::string::npos);
}

TEST_CASE("soft-bounce policy: the limit-th failure inside the window suppresses") {
    SuppressionConfig config;
    config.soft_bounce_limit = 3;
    config.soft_bounce_window = std::chrono::hours(24 * 7);
    struct Case {
        std::vector<std::int64_t> before;
        std::int64_t now;
        bool want_suppress;
        std::size_t want_kept;
    };
    const Case cases[] = {
        {{}, kT0, false, 1},
        {{kT0}, kT0 + kDay, false, 2},
        {{kT0, kT0 + kDay}, kT0 + 2 * kDay, true, 0},
        // The first failure left the window: a streak of two, not three.
        {{kT0, kT0 + kDay}, kT0 + 7 * kDay + 1, false, 2},
        {{kT0, kT0 + kDay}, kT0 + 7 * kDay, true, 0},
        // Everything old: start over.
        {{kT0, kT0 + 1}, kT0 + 30 * kDay, false, 1},
    };
    for (const auto& c : cases) {
        CAPTURE(c.before.size());
        CAPTURE(c.now - kT0);
        const auto step = soft_bounce_step({c.before}, c.now, config);
        CHECK(step.suppress == c.want_suppress);
        CHECK(step.history.failures_ms.size() == c.want_kept);
    }
    config.soft_bounce_limit = 0;
    CHECK_FALSE(soft_bounce_step({{kT0, kT0, kT0, kT0}}, kT0, config).suppress);
}

TEST_CASE("five soft failures recorded back to back suppress; a delivery in between resets") {
    Fixture f;
    auto fail = [&](std::int64_t t) {
        return wait([&](WriteDone d) {
            f.list->record_soft_failure("Full@X.example", t, "552 5.2.2 mailbox full",
                                        std::move(d));
        });
    };
    for (int i = 0; i < 4; ++i) {
        const auto r = fail(kT0 + i * kDay);
        CHECK(r.status == WriteStatus::Ok);
        CHECK_FALSE(r.suppressed);
        CHECK(r.failures == static_cast<std::uint32_t>(i + 1));
    }
    CHECK(f.list->soft_history("full@x.example").failures_ms.size() == 4);
    CHECK(wait([&](WriteDone d) {
              f.list->record_delivery("full@x.example", std::move(d));
          }).status == WriteStatus::Ok);
    CHECK(f.list->soft_history("full@x.example").failures_ms.empty());

    // Queued without waiting: the pending overlay must count each one.
    std::vector<std::future<WriteResult>> results;
    std::vector<std::promise<WriteResult>> promises(5);
    for (int i = 0; i < 5; ++i) {
        results.push_back(promises[static_cast<std::size_t>(i)].get_future());
        f.list->record_soft_failure(
            "full@x.example", kT0 + 10 * kDay + i, "552 5.2.2 mailbox full",
            [p = &promises[static_cast<std::size_t>(i)]](WriteResult r) { p->set_value(r); });
    }
    for (int i = 0; i < 4; ++i)
        CHECK_FALSE(results[static_cast<std::size_t>(i)].get().suppressed);
    const auto last = results[4].get();
    CHECK(last.suppressed);
    const auto e = f.list->check("full@x.example", "any.example");
    REQUIRE(e.has_value());
    CHECK(e->reason == SuppressionReason::SoftBounce);
    CHECK(e->source == "552 5.2.2 mailbox full");
    CHECK(f.list->soft_history("full@x.example").failures_ms.empty());
}

TEST_CASE("a delivery without a streak writes nothing and completes at once") {
    Fixture f;
    bool called = false;
    f.list->record_delivery("quiet@x.example", [&](WriteResult r) {
        called = true;
        CHECK(r.status == WriteStatus::Ok);
    });
    CHECK(called); // on this thread: nothing was queued
}

TEST_CASE("scope_for: bounces are global, complaints and unsubscribes follow the config") {
    SuppressionConfig config;
    CHECK(scope_for(SuppressionReason::HardBounce, "News.example", config) == "");
    CHECK(scope_for(SuppressionReason::SoftBounce, "news.example", config) == "");
    CHECK(scope_for(SuppressionReason::Complaint, "News.example", config) == "news.example");
    CHECK(scope_for(SuppressionReason::Unsubscribe, "news.example", config) == "news.example");
    CHECK(scope_for(SuppressionReason::Unsubscribe, "not a domain", config) == "");
    config.complaint_scope = SuppressionScope::Global;
    CHECK(scope_for(SuppressionReason::Complaint, "news.example", config) == "");
}

TEST_CASE("entries survive reopening the store") {
    TempDir dir;
    const auto config = config_for(dir);
    {
        auto store = open_store(config);
        auto list = Fixture::open_list(*store);
        REQUIRE(add(*list, entry("keep@x.example", "", SuppressionReason::Manual)).status ==
                WriteStatus::Ok);
    }
    auto store = open_store(config);
    auto list = Fixture::open_list(*store);
    CHECK(list->check("keep@x.example", "").has_value());
}

TEST_CASE("reason names parse back, with the hosted services' spellings") {
    for (const auto r : {SuppressionReason::HardBounce, SuppressionReason::Complaint,
                         SuppressionReason::Unsubscribe, SuppressionReason::Manual,
                         SuppressionReason::SoftBounce}) {
        CAPTURE(suppression_reason_name(r));
        CHECK(parse_suppression_reason(suppression_reason_name(r)) == r);
    }
    CHECK(parse_suppression_reason("HARD_BOUNCE") == SuppressionReason::HardBounce);
    CHECK(parse_suppression_reason("Bounce") == SuppressionReason::HardBounce);
    CHECK_FALSE(parse_suppression_reason("spam").has_value());
}
