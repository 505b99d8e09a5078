#include "queue/store.hpp"

#include "tests/queue/fixture.hpp"

#include <doctest/doctest.h>

#include <future>

using namespace ember::queue;
using namespace ember::queue::test;

namespace {

CommitResult write_sync(Store& store, std::vector<Store::KvWrite> writes) {
    std::promise<CommitResult> done;
    auto result = done.get_future();
    store.kv_write(std::move(writes), [&done](CommitResult r) { done.set_value(std::move(r)); });
    return result.get();
}

std::vector<std::string> keys(const Store& store, Store::TableId t, std::string_view prefix,
                              std::string_view from = {}) {
    std::vector<std::string> out;
    store.kv_scan(t, prefix, from, [&](std::string_view k, std::string_view) {
        out.emplace_back(k);
        return true;
    });
    return out;
}

} // namespace

TEST_CASE("key-value tables write through the committer, read back, scan by prefix, survive "
          "a reopen") {
    TempDir dir;
    const auto config = config_for(dir);
    {
        auto store = open_store(config);
        std::string error;
        const auto t = store->open_table("suppression", error);
        REQUIRE(t.has_value());
        const auto again = store->open_table("suppression", error);
        CHECK(again == t);
        const auto other = store->open_table("contacts", error);
        REQUIRE(other.has_value());
        CHECK(*other != *t);
        const auto r = write_sync(*store, {{*t, "a@x.example", std::string("hard")},
                                           {*t, "b@x.example", std::string("complaint")},
                                           {*t, "c@y.example", std::string("manual")},
                                           {*other, "a@x.example", std::string("{}")}});
        CHECK(r.status == CommitStatus::Ok);
        CHECK(store->kv_get(*t, "b@x.example") == std::optional<std::string>("complaint"));
        CHECK_FALSE(store->kv_get(*t, "zz").has_value());
        CHECK(store->kv_count(*t) == 3);
        CHECK(keys(*store, *t, "") ==
              std::vector<std::string>{"a@x.example", "b@x.example", "c@y.example"});
        CHECK(keys(*store, *t, "", "b") == std::vector<std::string>{"b@x.example", "c@y.example"});
        CHECK(keys(*store, *t, "c@") == std::vector<std::string>{"c@y.example"});
        CHECK(write_sync(*store, {{*t, "a@x.example", std::nullopt}, {*t, "nope", std::nullopt}})
                  .status == CommitStatus::Ok);
        CHECK(store->kv_count(*t) == 2);
    }
    auto store = open_store(config);
    std::string error;
    const auto t = store->open_table("suppression", error);
    REQUIRE(t.has_value());
    CHECK(keys(*store, *t, "") == std::vector<std::string>{"b@x.example", "c@y.example"});
}

TEST_CASE("writes to an unknown table or with an empty or oversize key are refused whole") {
    TempDir dir;
    auto store = open_store(config_for(dir));
    std::string error;
    const auto t = store->open_table("events", error);
    REQUIRE(t.has_value());
    CHECK(write_sync(*store, {{*t + 100, "k", std::string("v")}}).status == CommitStatus::IoError);
    CHECK(write_sync(*store, {{*t, "ok", std::string("v")}, {*t, "", std::string("v")}}).status ==
          CommitStatus::IoError);
    CHECK(write_sync(*store, {{*t, std::string(600, 'k'), std::string("v")}}).status ==
          CommitStatus::IoError);
    CHECK(store->kv_count(*t) == 0);
    CHECK_FALSE(store->open_table("", error).has_value());
    CHECK_FALSE(store->open_table("a:b", error).has_value());
}
