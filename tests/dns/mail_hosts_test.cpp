#include "dns/mail_hosts.hpp"

#include "tests/dns/fake_resolver.hpp"
#include "tests/dns/run.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <set>

namespace ember::dns {
namespace {

using namespace test;

std::vector<std::string> hosts_of(const std::vector<MxRecord>& records) {
    std::vector<std::string> out;
    out.reserve(records.size());
    for (const auto& r : records)
        out.push_back(r.host);
    return out;
}

std::vector<std::string> names_of(const MailHosts& found) {
    std::vector<std::string> out;
    for (const auto& h : found.hosts)
        out.push_back(h.name);
    return out;
}

MailHosts find(FakeResolver& resolver, std::string domain, std::uint64_t seed = 1) {
    boost::asio::io_context ctx;
    std::mt19937_64 rng(seed);
    return run(ctx, find_mail_hosts(resolver, std::move(domain), rng));
}

// --- order_mx ---------------------------------------------------------------

TEST_CASE("MX records are ordered by ascending preference") {
    std::mt19937_64 rng(7);
    const auto ordered =
        order_mx({{30, "c.example.test"}, {10, "a.example.test"}, {20, "b.example.test"}}, rng);
    CHECK(hosts_of(ordered) ==
          std::vector<std::string>{"a.example.test", "b.example.test", "c.example.test"});
}

TEST_CASE("equal preferences come in random order: both orders occur over many seeds") {
    std::set<std::vector<std::string>> seen;
    for (std::uint64_t seed = 0; seed < 200; ++seed) {
        std::mt19937_64 rng(seed);
        const auto ordered =
            order_mx({{20, "z.example.test"}, {10, "a.example.test"}, {10, "b.example.test"}}, rng);
        CAPTURE(seed);
        REQUIRE(ordered.size() == 3);
        CHECK(ordered[2].host == "z.example.test"); // never ahead of a better preference
        seen.insert(hosts_of(ordered));
    }
    CHECK(seen.size() == 2);
    CHECK(seen.count({"a.example.test", "b.example.test", "z.example.test"}) == 1);
    CHECK(seen.count({"b.example.test", "a.example.test", "z.example.test"}) == 1);
}

TEST_CASE("the same seed gives the same order") {
    const std::vector<MxRecord> records = {
        {10, "a.example.test"}, {10, "b.example.test"}, {10, "c.example.test"}};
    std::mt19937_64 one(99);
    std::mt19937_64 two(99);
    CHECK(order_mx(records, one) == order_mx(records, two));
}

TEST_CASE("duplicate hosts keep their most preferred entry, names normalized") {
    std::mt19937_64 rng(3);
    const auto ordered = order_mx(
        {{20, "MX.example.test."}, {10, "mx.example.test"}, {30, "other.example.test"}}, rng);
    REQUIRE(ordered.size() == 2);
    CHECK(ordered[0] == MxRecord{10, "mx.example.test"});
    CHECK(ordered[1] == MxRecord{30, "other.example.test"});
}

TEST_CASE("a null MX target among real ones is dropped") {
    std::mt19937_64 rng(3);
    const auto ordered = order_mx({{0, ""}, {10, "mx.example.test"}}, rng);
    CHECK(hosts_of(ordered) == std::vector<std::string>{"mx.example.test"});
}

// --- find_mail_hosts ----------------------------------------------------------

TEST_CASE("MX hosts come in preference order with IPv6 then IPv4 addresses") {
    FakeResolver r;
    r.mx_answers["example.test"] =
        ok<MxRecord>({{20, "mx2.example.test"}, {10, "mx1.example.test"}});
    r.a_answers["mx1.example.test"] = ok(ips({"192.0.2.1"}));
    r.aaaa_answers["mx1.example.test"] = ok(ips({"2001:db8::1"}));
    r.a_answers["mx2.example.test"] = ok(ips({"192.0.2.2", "192.0.2.3"}));
    r.aaaa_answers["mx2.example.test"] = with_status<AddressAnswer>(Status::NoData);

    const auto found = find(r, "Example.TEST.");
    REQUIRE(found.ok());
    CHECK_FALSE(found.permanent());
    CHECK(found.enhanced_status() == "");
    CHECK_FALSE(found.implicit_mx);
    REQUIRE(found.hosts.size() == 2);
    CHECK(found.hosts[0] == MailHost{"mx1.example.test", 10, ips({"2001:db8::1", "192.0.2.1"})});
    CHECK(found.hosts[1] == MailHost{"mx2.example.test", 20, ips({"192.0.2.2", "192.0.2.3"})});
    CHECK(r.asked.front() == "MX example.test");
}

TEST_CASE("a null MX fails permanently with 5.1.10 and looks nothing else up") {
    FakeResolver r;
    r.mx_answers["null.example.test"] = ok<MxRecord>({{0, ""}});
    const auto found = find(r, "null.example.test");
    CHECK(found.error == MailHostsError::NullMx);
    CHECK(found.permanent());
    CHECK(found.enhanced_status() == "5.1.10");
    CHECK(found.hosts.empty());
    CHECK(r.asked == std::vector<std::string>{"MX null.example.test"});
}

TEST_CASE("an NXDOMAIN destination fails permanently with 5.1.2") {
    FakeResolver r; // every name is NXDOMAIN
    const auto found = find(r, "nope.example.test");
    CHECK(found.error == MailHostsError::NoSuchDomain);
    CHECK(found.permanent());
    CHECK(found.enhanced_status() == "5.1.2");
    CHECK(found.detail.find("nope.example.test") != std::string::npos);
}

TEST_CASE("a temporary MX lookup failure defers with 4.4.3") {
    for (const Status s : {Status::ServFail, Status::Timeout, Status::Malformed}) {
        CAPTURE(status_name(s));
        FakeResolver r;
        r.mx_answers["example.test"] = with_status<MxAnswer>(s);
        const auto found = find(r, "example.test");
        CHECK(found.error == MailHostsError::Temporary);
        CHECK_FALSE(found.permanent());
        CHECK(found.enhanced_status() == "4.4.3");
    }
}

TEST_CASE("without MX records the domain's own address is the implicit MX") {
    FakeResolver r;
    r.mx_answers["example.test"] = with_status<MxAnswer>(Status::NoData);
    r.a_answers["example.test"] = ok(ips({"192.0.2.7"}));
    r.aaaa_answers["example.test"] = with_status<AddressAnswer>(Status::NoData);
    const auto found = find(r, "example.test");
    REQUIRE(found.ok());
    CHECK(found.implicit_mx);
    REQUIRE(found.hosts.size() == 1);
    CHECK(found.hosts[0] == MailHost{"example.test", 0, ips({"192.0.2.7"})});
}

TEST_CASE("no MX and no address fails permanently with 5.1.2") {
    FakeResolver r;
    r.mx_answers["example.test"] = with_status<MxAnswer>(Status::NoData);
    r.a_answers["example.test"] = with_status<AddressAnswer>(Status::NoData);
    r.aaaa_answers["example.test"] = with_status<AddressAnswer>(Status::NoData);
    const auto found = find(r, "example.test");
    CHECK(found.error == MailHostsError::NoMailHosts);
    CHECK(found.permanent());
    CHECK(found.enhanced_status() == "5.1.2");
}

TEST_CASE("no MX and a temporary address failure defers with 4.4.3") {
    FakeResolver r;
    r.mx_answers["example.test"] = with_status<MxAnswer>(Status::NoData);
    r.a_answers["example.test"] = with_status<AddressAnswer>(Status::Timeout);
    r.aaaa_answers["example.test"] = with_status<AddressAnswer>(Status::NoData);
    const auto found = find(r, "example.test");
    CHECK(found.error == MailHostsError::Temporary);
    CHECK(found.enhanced_status() == "4.4.3");
}

TEST_CASE("MX hosts that do not exist fail permanently with 5.4.4, as in Postfix") {
    FakeResolver r;
    r.mx_answers["example.test"] =
        ok<MxRecord>({{10, "gone1.example.test"}, {20, "gone2.example.test"}});
    r.a_answers["gone2.example.test"] = with_status<AddressAnswer>(Status::NoData);
    const auto found = find(r, "example.test");
    CHECK(found.error == MailHostsError::NoAddress);
    CHECK(found.permanent());
    CHECK(found.enhanced_status() == "5.4.4");
}

TEST_CASE("MX hosts none of which resolve, one temporarily, defer with 4.4.3") {
    FakeResolver r;
    r.mx_answers["example.test"] =
        ok<MxRecord>({{10, "gone.example.test"}, {20, "flaky.example.test"}});
    r.aaaa_answers["flaky.example.test"] = with_status<AddressAnswer>(Status::ServFail);
    const auto found = find(r, "example.test");
    CHECK(found.error == MailHostsError::Temporary);
    CHECK(found.enhanced_status() == "4.4.3");
    CHECK(found.detail.find("flaky.example.test") != std::string::npos);
}

TEST_CASE("hosts that resolve are used even when another failed temporarily") {
    FakeResolver r;
    r.mx_answers["example.test"] =
        ok<MxRecord>({{10, "flaky.example.test"}, {20, "good.example.test"}});
    r.a_answers["flaky.example.test"] = with_status<AddressAnswer>(Status::Timeout);
    r.a_answers["good.example.test"] = ok(ips({"192.0.2.9"}));
    const auto found = find(r, "example.test");
    REQUIRE(found.ok());
    CHECK(names_of(found) == std::vector<std::string>{"good.example.test"});
}

TEST_CASE("one host's AAAA failing temporarily still leaves its IPv4 addresses") {
    FakeResolver r;
    r.mx_answers["example.test"] = ok<MxRecord>({{10, "mx.example.test"}});
    r.aaaa_answers["mx.example.test"] = with_status<AddressAnswer>(Status::ServFail);
    r.a_answers["mx.example.test"] = ok(ips({"192.0.2.1"}));
    const auto found = find(r, "example.test");
    REQUIRE(found.ok());
    REQUIRE(found.hosts.size() == 1);
    CHECK(found.hosts[0].addresses == ips({"192.0.2.1"}));
}

TEST_CASE("duplicate hosts and addresses are listed once, at their best preference") {
    FakeResolver r;
    r.mx_answers["example.test"] = ok<MxRecord>({{10, "a.example.test"},
                                                 {20, "A.example.test"},
                                                 {30, "b.example.test"},
                                                 {40, "c.example.test"}});
    r.a_answers["a.example.test"] = ok(ips({"192.0.2.1", "192.0.2.1"}));
    r.a_answers["b.example.test"] = ok(ips({"192.0.2.1", "192.0.2.2"}));
    r.a_answers["c.example.test"] = ok(ips({"192.0.2.2"})); // nothing new: dropped
    const auto found = find(r, "example.test");
    REQUIRE(found.ok());
    REQUIRE(found.hosts.size() == 2);
    CHECK(found.hosts[0] == MailHost{"a.example.test", 10, ips({"192.0.2.1"})});
    CHECK(found.hosts[1] == MailHost{"b.example.test", 30, ips({"192.0.2.2"})});
    const auto a_lookups = std::count(r.asked.begin(), r.asked.end(), "A a.example.test");
    CHECK(a_lookups == 1);
}

TEST_CASE("equal-preference MX hosts are shuffled by the RNG passed in") {
    FakeResolver r;
    r.mx_answers["example.test"] = ok<MxRecord>({{10, "a.example.test"}, {10, "b.example.test"}});
    r.a_answers["a.example.test"] = ok(ips({"192.0.2.1"}));
    r.a_answers["b.example.test"] = ok(ips({"192.0.2.2"}));
    std::set<std::vector<std::string>> seen;
    for (std::uint64_t seed = 0; seed < 50; ++seed)
        seen.insert(names_of(find(r, "example.test", seed)));
    CHECK(seen.size() == 2);
}

} // namespace
} // namespace ember::dns
