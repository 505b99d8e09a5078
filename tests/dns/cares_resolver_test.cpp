#include "dns/cares_resolver.hpp"

#include "dns/mail_hosts.hpp"
#include "tests/dns/run.hpp"
#include "tests/support/dns_server_process.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>
#include <fmt/core.h>

#include <algorithm>
#include <memory>
#include <set>

namespace ember::dns {
namespace {

namespace asio = boost::asio;
using std::chrono::seconds;
using test::run;

// 300 'a', 300 'b', 100 'c': the server splits it into 255-byte strings and
// the answer (over 512 bytes) only fits over TCP.
std::string long_text() {
    return std::string(300, 'a') + std::string(300, 'b') + std::string(100, 'c');
}

std::string zones() {
    return fmt::format(R"({{
  "zones": ["example.test", "2.0.192.in-addr.arpa", "8.b.d.0.1.0.0.2.ip6.arpa"],
  "negative_ttl": 60,
  "records": [
    {{"name": "example.test", "type": "MX", "value": "10 mx1.example.test", "ttl": 300}},
    {{"name": "example.test", "type": "MX", "value": "20 mx2.example.test", "ttl": 120}},
    {{"name": "mx1.example.test", "type": "A", "value": "192.0.2.1", "ttl": 300}},
    {{"name": "mx1.example.test", "type": "A", "value": "192.0.2.11", "ttl": 200}},
    {{"name": "mx1.example.test", "type": "AAAA", "value": "2001:db8::1"}},
    {{"name": "example.test", "type": "TXT", "value": ["v=spf1 ", "ip4:192.0.2.0/24", " -all"]}},
    {{"name": "example.test", "type": "TXT", "value": "second record"}},
    {{"name": "long.example.test", "type": "TXT", "value": "{}"}},
    {{"name": "1.2.0.192.in-addr.arpa", "type": "PTR", "value": "mx1.example.test"}},
    {{"name": "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
      "type": "PTR", "value": "mx1.example.test"}},
    {{"name": "nomx.example.test", "type": "A", "value": "192.0.2.5"}},
    {{"name": "null.example.test", "type": "MX", "value": "0 ."}},
    {{"name": "tc.example.test", "type": "A", "value": "192.0.2.9"}},
    {{"name": "zero.example.test", "type": "A", "value": "192.0.2.10", "ttl": 0}}
  ],
  "behaviours": [
    {{"name": "servfail.example.test", "behaviour": "servfail"}},
    {{"name": "refused.example.test", "behaviour": "refused"}},
    {{"name": "timeout.example.test", "behaviour": "timeout"}},
    {{"name": "malformed.example.test", "behaviour": "malformed"}},
    {{"name": "tc.example.test", "behaviour": "truncate"}}
  ]
}})",
                       long_text());
}

// One server for the whole binary: starting Python costs a few hundred ms.
ember::test::DnsServerProcess& server() {
    static ember::test::DnsServerProcess process(zones());
    REQUIRE_MESSAGE(process.ok(), process.error());
    return process;
}

struct Fixture {
    asio::io_context ctx;
    Cache::TimePoint now{std::chrono::hours(1000)};
    std::unique_ptr<CaresResolver> resolver;

    explicit Fixture(ResolverConfig config = {}) {
        config.servers = {server().endpoint()};
        std::string error;
        resolver = CaresResolver::create(ctx.get_executor(), config, error, [this] { return now; });
        REQUIRE_MESSAGE(resolver != nullptr, error);
    }
};

ResolverConfig no_cache() {
    ResolverConfig c;
    c.cache_entries = 0;
    return c;
}

std::set<std::string> strings(const std::vector<core::IpAddress>& addresses) {
    std::set<std::string> out;
    for (const auto& a : addresses)
        out.insert(a.to_string());
    return out;
}

TEST_CASE("MX records come back with their preferences and the smallest TTL") {
    Fixture f;
    const auto mx = run(f.ctx, f.resolver->mx("Example.Test."));
    REQUIRE(mx.status == Status::Ok);
    CHECK(mx.ttl == 120u);
    auto records = mx.records;
    std::sort(records.begin(), records.end(),
              [](const auto& x, const auto& y) { return x.preference < y.preference; });
    CHECK(records == std::vector<MxRecord>{{10, "mx1.example.test"}, {20, "mx2.example.test"}});
}

TEST_CASE("A and AAAA records come back with their TTLs") {
    Fixture f;
    const auto v4 = run(f.ctx, f.resolver->a("mx1.example.test"));
    REQUIRE(v4.status == Status::Ok);
    CHECK(strings(v4.records) == std::set<std::string>{"192.0.2.1", "192.0.2.11"});
    CHECK(v4.ttl == 200u);
    const auto v6 = run(f.ctx, f.resolver->aaaa("mx1.example.test"));
    REQUIRE(v6.status == Status::Ok);
    CHECK(strings(v6.records) == std::set<std::string>{"2001:db8::1"});
    CHECK(v6.ttl == 300u);
}

TEST_CASE("TXT records come back one string per record, their strings concatenated") {
    Fixture f;
    const auto txt = run(f.ctx, f.resolver->txt("example.test"));
    REQUIRE(txt.status == Status::Ok);
    const std::set<std::string> got(txt.records.begin(), txt.records.end());
    CHECK(got == std::set<std::string>{"v=spf1 ip4:192.0.2.0/24 -all", "second record"});
}

TEST_CASE("a TXT record too long for UDP is fetched over TCP, whole and in order") {
    Fixture f;
    const auto txt = run(f.ctx, f.resolver->txt("long.example.test"));
    REQUIRE(txt.status == Status::Ok);
    REQUIRE(txt.records.size() == 1);
    CHECK(txt.records[0] == long_text());
    const auto lines = server().queries();
    CHECK(std::count(lines.begin(), lines.end(), "tcp long.example.test TXT") >= 1);
}

TEST_CASE("PTR lookups work for IPv4 and IPv6 addresses") {
    Fixture f;
    for (const char* ip : {"192.0.2.1", "2001:db8::1"}) {
        CAPTURE(ip);
        const auto names = run(f.ctx, f.resolver->ptr(*core::IpAddress::parse(ip)));
        REQUIRE(names.status == Status::Ok);
        CHECK(names.records == std::vector<std::string>{"mx1.example.test"});
    }
}

TEST_CASE("NXDOMAIN and NoData are told apart, with the zone's negative TTL") {
    Fixture f;
    const auto missing = run(f.ctx, f.resolver->a("nope.example.test"));
    CHECK(missing.status == Status::NxDomain);
    CHECK(missing.ttl == 60u);
    const auto empty = run(f.ctx, f.resolver->mx("nomx.example.test"));
    CHECK(empty.status == Status::NoData);
    CHECK(empty.ttl == 60u);
    const auto outside = run(f.ctx, f.resolver->a("host.invalid"));
    CHECK(outside.status == Status::NxDomain);
}

TEST_CASE("a null MX comes back as one record with an empty host") {
    Fixture f;
    const auto mx = run(f.ctx, f.resolver->mx("null.example.test"));
    REQUIRE(mx.status == Status::Ok);
    CHECK(mx.records == std::vector<MxRecord>{{0, ""}});
}

TEST_CASE("SERVFAIL and REFUSED are ServFail, garbage is Malformed") {
    Fixture f;
    CHECK(run(f.ctx, f.resolver->mx("servfail.example.test")).status == Status::ServFail);
    CHECK(run(f.ctx, f.resolver->a("refused.example.test")).status == Status::ServFail);
    CHECK(run(f.ctx, f.resolver->mx("malformed.example.test")).status == Status::Malformed);
}

TEST_CASE("a server that never answers gives Timeout within the configured timeout") {
    ResolverConfig config;
    config.timeout = std::chrono::milliseconds(300);
    config.tries = 1;
    Fixture f(config);
    CHECK(run(f.ctx, f.resolver->txt("timeout.example.test")).status == Status::Timeout);
}

TEST_CASE("with several servers the overall deadline still bounds the question") {
    // c-ares alone would take 2 servers x (133 + 266) ms; the deadline answers at 400 ms.
    ResolverConfig config;
    config.timeout = std::chrono::milliseconds(400);
    config.tries = 2;
    Fixture f(config);
    std::string error;
    config.servers = {server().endpoint(), server().endpoint()};
    auto resolver = CaresResolver::create(f.ctx.get_executor(), config, error);
    REQUIRE(resolver != nullptr);
    CHECK(run(f.ctx, resolver->mx("timeout.example.test")).status == Status::Timeout);
    CHECK(resolver->stats().deadlines == 1);
}

TEST_CASE("a truncated UDP answer is retried over TCP") {
    Fixture f;
    const auto a = run(f.ctx, f.resolver->a("tc.example.test"));
    REQUIRE(a.status == Status::Ok);
    CHECK(strings(a.records) == std::set<std::string>{"192.0.2.9"});
    const auto lines = server().queries();
    CHECK(std::count(lines.begin(), lines.end(), "udp tc.example.test A") >= 1);
    CHECK(std::count(lines.begin(), lines.end(), "tcp tc.example.test A") >= 1);
}

TEST_CASE("a second question within the TTL is answered from the cache, not the server") {
    Fixture f;
    const auto before = server().count("mx1.example.test", "A");
    const auto first = run(f.ctx, f.resolver->a("mx1.example.test"));
    REQUIRE(first.status == Status::Ok);
    CHECK(server().count("mx1.example.test", "A") == before + 1);

    f.now += seconds(150);
    const auto second = run(f.ctx, f.resolver->a("MX1.example.test"));
    REQUIRE(second.status == Status::Ok);
    CHECK(second.ttl == 50u);
    CHECK(server().count("mx1.example.test", "A") == before + 1);
    CHECK(f.resolver->stats().cache_hits == 1);

    f.now += seconds(51); // past the smallest TTL (200 s)
    CHECK(run(f.ctx, f.resolver->a("mx1.example.test")).status == Status::Ok);
    CHECK(server().count("mx1.example.test", "A") == before + 2);
}

TEST_CASE("NXDOMAIN is cached for the negative TTL") {
    Fixture f;
    const auto before = server().count("gone.example.test", "MX");
    CHECK(run(f.ctx, f.resolver->mx("gone.example.test")).status == Status::NxDomain);
    CHECK(run(f.ctx, f.resolver->mx("gone.example.test")).status == Status::NxDomain);
    CHECK(server().count("gone.example.test", "MX") == before + 1);
    f.now += seconds(61);
    CHECK(run(f.ctx, f.resolver->mx("gone.example.test")).status == Status::NxDomain);
    CHECK(server().count("gone.example.test", "MX") == before + 2);
}

TEST_CASE("a TTL of zero and temporary failures are asked again every time") {
    Fixture f;
    for (const char* name : {"zero.example.test", "servfail.example.test"}) {
        CAPTURE(name);
        const auto before = server().count(name, "A");
        (void)run(f.ctx, f.resolver->a(name));
        const auto after_one = server().count(name, "A");
        CHECK(after_one > before);
        (void)run(f.ctx, f.resolver->a(name));
        CHECK(server().count(name, "A") > after_one);
    }
}

// Exceptions escape to the test, never swallowed (unlike rethrow).
void rethrow(const std::exception_ptr& e) {
    if (e)
        std::rethrow_exception(e);
}

asio::awaitable<void> ask_mx(Resolver* resolver, std::string name, std::vector<MxAnswer>* out) {
    MxAnswer answer = co_await resolver->mx(std::move(name));
    out->push_back(std::move(answer));
}

TEST_CASE("concurrent identical questions share one query") {
    Fixture f(no_cache());
    const auto before = server().count("example.test", "MX");
    std::vector<MxAnswer> answers;
    for (const char* name : {"example.test", "EXAMPLE.test.", "example.TEST"})
        asio::co_spawn(f.ctx, ask_mx(f.resolver.get(), name, &answers), rethrow);
    const auto give_up = std::chrono::steady_clock::now() + seconds(30);
    while (answers.size() < 3 && std::chrono::steady_clock::now() < give_up)
        f.ctx.run_one_for(std::chrono::milliseconds(100));
    REQUIRE(answers.size() == 3);
    for (const auto& a : answers) {
        CHECK(a.status == Status::Ok);
        CHECK(a.records.size() == 2);
    }
    CHECK(server().count("example.test", "MX") == before + 1);
    CHECK(f.resolver->stats().coalesced == 2);
    CHECK(f.resolver->stats().queries == 1);
}

TEST_CASE("destroying the resolver with a question pending resumes it with Timeout") {
    ResolverConfig config;
    config.timeout = seconds(30);
    Fixture f(config);
    std::vector<MxAnswer> answers;
    asio::co_spawn(f.ctx, ask_mx(f.resolver.get(), "timeout.example.test", &answers), rethrow);
    f.ctx.poll(); // the coroutine runs up to its co_await: the query is on the wire
    REQUIRE(answers.empty());
    f.resolver.reset();
    f.ctx.restart();
    f.ctx.run_for(seconds(10));
    REQUIRE(answers.size() == 1);
    CHECK(answers[0].status == Status::Timeout);
}

TEST_CASE("an awaitable awaited after its resolver is gone completes with Timeout") {
    Fixture f;
    auto pending = f.resolver->a("mx1.example.test");
    f.resolver.reset();
    CHECK(run(f.ctx, std::move(pending)).status == Status::Timeout);
}

TEST_CASE("mail hosts for a domain resolve end to end through c-ares") {
    Fixture f;
    std::mt19937_64 rng(1);
    const auto found = run(f.ctx, find_mail_hosts(*f.resolver, "example.test", rng));
    REQUIRE(found.ok());
    REQUIRE(found.hosts.size() == 1); // mx2.example.test has no address
    CHECK(found.hosts[0].name == "mx1.example.test");
    CHECK(found.hosts[0].addresses.front().to_string() == "2001:db8::1");
    CHECK(found.hosts[0].addresses.size() == 3);

    const auto null_mx = run(f.ctx, find_mail_hosts(*f.resolver, "null.example.test", rng));
    CHECK(null_mx.enhanced_status() == "5.1.10");
}

TEST_CASE("a server given by name is refused at start-up") {
    asio::io_context ctx;
    ResolverConfig config;
    config.servers = {core::Endpoint{"dns.example.test", 53}};
    std::string error;
    CHECK(make_resolver(ctx.get_executor(), config, error) == nullptr);
    CHECK(error.find("dns.example.test") != std::string::npos);
}

TEST_CASE("without servers the resolver starts from /etc/resolv.conf") {
    asio::io_context ctx;
    std::string error;
    CHECK(make_resolver(ctx.get_executor(), ResolverConfig{}, error) != nullptr);
    CHECK(error.empty());
}

} // namespace
} // namespace ember::dns
