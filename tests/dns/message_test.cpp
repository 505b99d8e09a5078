#include "dns/message.hpp"

#include "tests/dns/wire.hpp"

#include <doctest/doctest.h>

namespace ember::dns {
namespace {

using namespace test;

TEST_CASE("the answer TTL is the smallest TTL of the answer section, CNAMEs included") {
    const auto m = Message("www.example.test", kA)
                       .answer("www.example.test", kCname, 120, name_rdata("a.example.test"))
                       .answer("a.example.test", kA, 300, Bytes{192, 0, 2, 1})
                       .answer("a.example.test", kA, 200, Bytes{192, 0, 2, 2})
                       .bytes();
    const auto s = summarize_message(m);
    REQUIRE(s.has_value());
    CHECK(s->rcode == 0);
    CHECK(s->answer_count == 3);
    CHECK(s->answer_ttl == 120u);
    CHECK_FALSE(s->negative_ttl.has_value());
}

TEST_CASE("a negative answer's TTL is the smaller of the SOA's TTL and MINIMUM (RFC 2308 5)") {
    struct Case {
        std::uint32_t soa_ttl, minimum, want;
    };
    for (const Case c : {Case{3600, 60, 60}, Case{30, 900, 30}, Case{0, 60, 0}}) {
        CAPTURE(c.soa_ttl);
        CAPTURE(c.minimum);
        const auto m = Message("nope.example.test", kA, 3)
                           .authority("example.test", kSoa, c.soa_ttl, soa_rdata(c.minimum))
                           .bytes();
        const auto s = summarize_message(m);
        REQUIRE(s.has_value());
        CHECK(s->rcode == 3);
        CHECK(s->negative_ttl == c.want);
    }
}

TEST_CASE("a TTL with the top bit set counts as zero (RFC 2181 8)") {
    const auto m =
        Message("a.example.test", kA).answer("a.example.test", kA, 0x80000001u, Bytes{1, 2, 3, 4});
    const auto s = summarize_message(m.bytes());
    REQUIRE(s.has_value());
    CHECK(s->answer_ttl == 0u);
}

TEST_CASE("compressed owner names are followed past") {
    auto m = Message("example.test", kMx).bytes();
    // ANCOUNT 1, then an MX whose owner is a pointer to the question name.
    m[7] = 1;
    const Bytes rr = {0xc0, 0x0c, 0, kMx, 0, 1, 0, 0, 0, 42, 0, 4, 0, 10, 0xc0, 0x0c};
    m.insert(m.end(), rr.begin(), rr.end());
    const auto s = summarize_message(m);
    REQUIRE(s.has_value());
    CHECK(s->answer_ttl == 42u);
}

TEST_CASE("the truncation bit is reported") {
    const auto s = summarize_message(Message("a.example.test", kTxt).truncated().bytes());
    REQUIRE(s.has_value());
    CHECK(s->truncated);
}

TEST_CASE("a message cut anywhere short is rejected, never over-read") {
    const auto full = Message("example.test", kMx)
                          .answer("example.test", kMx, 300, mx_rdata(10, "mx.example.test"))
                          .authority("example.test", kSoa, 60, soa_rdata(60))
                          .bytes();
    REQUIRE(summarize_message(full).has_value());
    for (std::size_t n = 0; n < full.size(); ++n) {
        CAPTURE(n);
        const Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        CHECK_FALSE(summarize_message(cut).has_value());
    }
}

TEST_CASE("a reserved label type makes the message unreadable") {
    auto m = Message("example.test", kA).bytes();
    m[12] = 0x40; // first label length with the reserved 01 prefix
    CHECK_FALSE(summarize_message(m).has_value());
}

} // namespace
} // namespace ember::dns
