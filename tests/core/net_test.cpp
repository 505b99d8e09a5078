#include "core/net.hpp"

#include <doctest/doctest.h>

using namespace ember::core;

TEST_CASE("networks contain exactly the addresses under their prefix") {
    const auto net = Cidr::parse("10.1.0.0/16");
    REQUIRE(net);
    CHECK(net->contains(*IpAddress::parse("10.1.255.3")));
    CHECK_FALSE(net->contains(*IpAddress::parse("10.2.0.1")));
    const auto odd = Cidr::parse("192.168.1.128/25");
    REQUIRE(odd);
    CHECK(odd->contains(*IpAddress::parse("192.168.1.200")));
    CHECK_FALSE(odd->contains(*IpAddress::parse("192.168.1.100")));
    const auto v6 = Cidr::parse("2001:db8::/32");
    REQUIRE(v6);
    CHECK(v6->contains(*IpAddress::parse("2001:db8:1::5")));
    CHECK_FALSE(v6->contains(*IpAddress::parse("2001:db9::5")));
    CHECK_FALSE(v6->contains(*IpAddress::parse("10.0.0.1")));
    CHECK(Cidr::parse("0.0.0.0/0")->contains(*IpAddress::parse("8.8.8.8")));
}

TEST_CASE("IPv4-mapped IPv6 client addresses match IPv4 networks") {
    const auto loopback = Cidr::parse("127.0.0.0/8");
    const auto mapped = IpAddress::parse("::ffff:127.0.0.1");
    REQUIRE(mapped);
    CHECK(mapped->is_v4());
    CHECK(mapped->is_loopback());
    CHECK(loopback->contains(*mapped));
    CHECK(mapped->to_string() == "127.0.0.1");
}

TEST_CASE("malformed networks are rejected") {
    for (const char* bad :
         {"", "10.0.0.0/33", "10.0.0/8", "::1/129", "10.0.0.0/", "10.0.0.0/x", "host"}) {
        CAPTURE(bad);
        CHECK_FALSE(Cidr::parse(bad).has_value());
    }
}

TEST_CASE("endpoints parse host:port and [v6]:port") {
    auto e = Endpoint::parse("127.0.0.1:2525");
    REQUIRE(e);
    CHECK(e->host == "127.0.0.1");
    CHECK(e->port == 2525);
    e = Endpoint::parse("[::1]:25");
    REQUIRE(e);
    CHECK(e->host == "::1");
    CHECK(e->to_string() == "[::1]:25");
    e = Endpoint::parse("mx.example.com:25");
    REQUIRE(e);
    CHECK(e->host == "mx.example.com");
    for (const char* bad : {"", "127.0.0.1", ":25", "host:", "host:0", "host:65536", "::1:25",
                            "[nothost]:25", "[::1]25"}) {
        CAPTURE(bad);
        CHECK_FALSE(Endpoint::parse(bad).has_value());
    }
}
