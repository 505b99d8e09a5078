#include "dns/record.hpp"

#include <doctest/doctest.h>

namespace ember::dns {
namespace {

TEST_CASE("names are lowercased and lose one trailing dot") {
    struct Case {
        const char* in;
        const char* want;
    };
    for (const Case c :
         {Case{"Example.COM.", "example.com"}, Case{"mx1.example.com", "mx1.example.com"},
          Case{".", "."}, Case{"", ""}}) {
        CAPTURE(c.in);
        CHECK(normalize_name(c.in) == c.want);
    }
}

TEST_CASE("reverse names follow RFC 1035 3.5 and RFC 3596 2.5") {
    CHECK(reverse_name(*core::IpAddress::parse("192.0.2.1")) == "1.2.0.192.in-addr.arpa");
    CHECK(reverse_name(*core::IpAddress::parse("2001:db8::1")) ==
          "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
}

TEST_CASE("unwrap keeps the records of the asked type, the status and the TTL") {
    AnyAnswer any;
    any.ttl = 42;
    any.records = {MxRecord{10, "mx.example.test"}, std::string("stray")};
    const auto mx = unwrap<MxRecord>(any);
    CHECK(mx.status == Status::Ok);
    CHECK(mx.ttl == 42u);
    REQUIRE(mx.records.size() == 1);
    CHECK(mx.records[0] == MxRecord{10, "mx.example.test"});
}

TEST_CASE("only SERVFAIL, timeouts and malformed answers are temporary") {
    CHECK(is_temporary(Status::ServFail));
    CHECK(is_temporary(Status::Timeout));
    CHECK(is_temporary(Status::Malformed));
    CHECK_FALSE(is_temporary(Status::Ok));
    CHECK_FALSE(is_temporary(Status::NxDomain));
    CHECK_FALSE(is_temporary(Status::NoData));
    CHECK(status_name(Status::NxDomain) == "nxdomain");
}

} // namespace
} // namespace ember::dns
