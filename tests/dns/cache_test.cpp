#include "dns/cache.hpp"

#include <doctest/doctest.h>

namespace ember::dns {
namespace {

using std::chrono::seconds;
using TimePoint = Cache::TimePoint;

constexpr TimePoint kStart{std::chrono::hours(1000)};

AnyAnswer ok_answer(std::uint32_t ttl, const char* address = "192.0.2.1") {
    AnyAnswer a;
    a.ttl = ttl;
    a.records.emplace_back(*core::IpAddress::parse(address));
    return a;
}

AnyAnswer status_answer(Status status, std::uint32_t ttl) {
    AnyAnswer a;
    a.status = status;
    a.ttl = ttl;
    return a;
}

CacheLimits limits(std::size_t entries = 100) {
    return CacheLimits{entries, std::chrono::hours(1), std::chrono::minutes(5)};
}

TEST_CASE("an answer is served until its TTL runs out, with the TTL counted down") {
    Cache cache(limits());
    cache.store(RecordType::A, "mx.example.test", ok_answer(300), kStart);

    const auto early = cache.find(RecordType::A, "mx.example.test", kStart + seconds(100));
    REQUIRE(early.has_value());
    CHECK(early->status == Status::Ok);
    CHECK(early->ttl == 200u);
    CHECK(early->records.size() == 1);

    CHECK(cache.find(RecordType::A, "mx.example.test", kStart + seconds(299)).has_value());
    CHECK_FALSE(cache.find(RecordType::A, "mx.example.test", kStart + seconds(300)).has_value());
    CHECK(cache.size() == 0);
}

TEST_CASE("a long TTL is capped at max_cache_ttl") {
    Cache cache(limits());
    cache.store(RecordType::Mx, "example.test", ok_answer(86400), kStart);
    CHECK(cache.find(RecordType::Mx, "example.test", kStart + seconds(3599)).has_value());
    CHECK_FALSE(cache.find(RecordType::Mx, "example.test", kStart + seconds(3600)).has_value());
}

TEST_CASE("NXDOMAIN and NoData are cached for their SOA TTL, capped at negative_ttl") {
    struct Case {
        Status status;
        std::uint32_t ttl;
        int kept_seconds;
    };
    for (const Case c : {Case{Status::NxDomain, 60, 60}, Case{Status::NoData, 60, 60},
                         Case{Status::NxDomain, 86400, 300}, Case{Status::NoData, 3600, 300}}) {
        CAPTURE(status_name(c.status));
        CAPTURE(c.ttl);
        Cache cache(limits());
        cache.store(RecordType::Aaaa, "nope.example.test", status_answer(c.status, c.ttl), kStart);
        const auto hit =
            cache.find(RecordType::Aaaa, "nope.example.test", kStart + seconds(c.kept_seconds - 1));
        REQUIRE(hit.has_value());
        CHECK(hit->status == c.status);
        CHECK(hit->ttl == 1u);
        CHECK_FALSE(
            cache.find(RecordType::Aaaa, "nope.example.test", kStart + seconds(c.kept_seconds))
                .has_value());
    }
}

TEST_CASE("temporary failures are never cached, whatever TTL they carry") {
    for (const Status s : {Status::ServFail, Status::Timeout, Status::Malformed}) {
        CAPTURE(status_name(s));
        Cache cache(limits());
        cache.store(RecordType::Txt, "example.test", status_answer(s, 300), kStart);
        CHECK(cache.size() == 0);
        CHECK_FALSE(cache.find(RecordType::Txt, "example.test", kStart).has_value());
    }
}

TEST_CASE("a TTL of zero is not cached, positive or negative") {
    Cache cache(limits());
    cache.store(RecordType::A, "zero.example.test", ok_answer(0), kStart);
    cache.store(RecordType::A, "gone.example.test", status_answer(Status::NxDomain, 0), kStart);
    CHECK(cache.size() == 0);
}

TEST_CASE("names match case-insensitively and with or without the trailing dot") {
    Cache cache(limits());
    cache.store(RecordType::A, "MX.Example.TEST.", ok_answer(300), kStart);
    CHECK(cache.find(RecordType::A, "mx.example.test", kStart).has_value());
}

TEST_CASE("the record type is part of the key") {
    Cache cache(limits());
    cache.store(RecordType::A, "mx.example.test", ok_answer(300), kStart);
    CHECK_FALSE(cache.find(RecordType::Aaaa, "mx.example.test", kStart).has_value());
}

TEST_CASE("a newer answer replaces the older one") {
    Cache cache(limits());
    cache.store(RecordType::A, "mx.example.test", ok_answer(300, "192.0.2.1"), kStart);
    cache.store(RecordType::A, "mx.example.test", ok_answer(300, "192.0.2.2"), kStart);
    CHECK(cache.size() == 1);
    const auto hit = cache.find(RecordType::A, "mx.example.test", kStart);
    REQUIRE(hit.has_value());
    CHECK(std::get<core::IpAddress>(hit->records.at(0)).to_string() == "192.0.2.2");
}

TEST_CASE("the least recently used entry is evicted at the bound") {
    Cache cache(limits(2));
    cache.store(RecordType::A, "a.example.test", ok_answer(300), kStart);
    cache.store(RecordType::A, "b.example.test", ok_answer(300), kStart);
    CHECK(cache.find(RecordType::A, "a.example.test", kStart).has_value()); // a is now recent
    cache.store(RecordType::A, "c.example.test", ok_answer(300), kStart);
    CHECK(cache.size() == 2);
    CHECK(cache.find(RecordType::A, "a.example.test", kStart).has_value());
    CHECK_FALSE(cache.find(RecordType::A, "b.example.test", kStart).has_value());
    CHECK(cache.find(RecordType::A, "c.example.test", kStart).has_value());
}

TEST_CASE("a cache bounded to zero entries keeps nothing") {
    Cache cache(limits(0));
    cache.store(RecordType::A, "a.example.test", ok_answer(300), kStart);
    CHECK(cache.size() == 0);
    CHECK_FALSE(cache.find(RecordType::A, "a.example.test", kStart).has_value());
}

} // namespace
} // namespace ember::dns
