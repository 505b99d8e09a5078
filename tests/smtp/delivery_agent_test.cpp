#include "smtp/delivery_agent.hpp"

#include "dns/resolver.hpp"
#include "smtp/server_metrics.hpp"
#include "smtp/server_session.hpp"
#include "smtp/tls.hpp"
#include "tests/support/memory_transport.hpp"
#include "tests/support/scripted_peer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <doctest/doctest.h>
#include <fmt/core.h>
#include <prometheus/registry.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

using namespace ember;
namespace asio = boost::asio;
namespace beast = boost::beast;
using core::OutcomeKind;

namespace {

core::IpAddress ip(const char* text) {
    return *core::IpAddress::parse(text);
}

// Answers from tables; a name without an entry is NXDOMAIN for MX and
// NoData for addresses. Never suspends.
class FakeResolver final : public dns::Resolver {
public:
    std::map<std::string, dns::MxAnswer> mx_answers;
    std::map<std::string, dns::AddressAnswer> a_answers;
    std::map<std::string, dns::AddressAnswer> aaaa_answers;
    std::vector<std::string> queries;

    void host(const std::string& name, const char* v4) {
        a_answers[name] = {dns::Status::Ok, {ip(v4)}, 300};
    }
    void mx(const std::string& domain, std::vector<dns::MxRecord> records) {
        mx_answers[domain] = {dns::Status::Ok, std::move(records), 300};
    }

    asio::awaitable<dns::MxAnswer> mx(std::string domain) override {
        queries.push_back("MX " + domain);
        const auto it = mx_answers.find(domain);
        co_return it == mx_answers.end() ? dns::MxAnswer{dns::Status::NxDomain, {}, 0} : it->second;
    }
    asio::awaitable<dns::AddressAnswer> a(std::string name) override {
        queries.push_back("A " + name);
        co_return lookup(a_answers, name);
    }
    asio::awaitable<dns::AddressAnswer> aaaa(std::string name) override {
        queries.push_back("AAAA " + name);
        co_return lookup(aaaa_answers, name);
    }
    asio::awaitable<dns::TxtAnswer> txt(std::string) override {
        co_return dns::TxtAnswer{dns::Status::NoData, {}, 0};
    }
    asio::awaitable<dns::NameAnswer> ptr(core::IpAddress) override {
        co_return dns::NameAnswer{dns::Status::NoData, {}, 0};
    }

private:
    static dns::AddressAnswer lookup(const std::map<std::string, dns::AddressAnswer>& table,
                                     const std::string& name) {
        const auto it = table.find(name);
        return it == table.end() ? dns::AddressAnswer{dns::Status::NoData, {}, 0} : it->second;
    }
};

// Connects to scripted peers by IP: each connection to an address plays
// that address's next script; an address without one refuses.
class FakeConnector final : public smtp::Connector {
public:
    explicit FakeConnector(asio::io_context& io) : io_(io) {}

    std::map<std::string, std::deque<test::ScriptedPeer>> scripts;
    std::vector<smtp::ConnectRequest> requests;
    std::vector<std::shared_ptr<test::ScriptedPeer>> peers;

    asio::awaitable<smtp::ConnectResult> connect(smtp::ConnectRequest request) override {
        requests.push_back(request);
        auto& queue = scripts[request.ip.to_string()];
        if (queue.empty())
            co_return smtp::ConnectResult{smtp::error_code(asio::error::connection_refused),
                                          nullptr};
        auto peer = std::make_shared<test::ScriptedPeer>(std::move(queue.front()));
        queue.pop_front();
        peers.push_back(peer);
        beast::test::stream client(io_);
        beast::test::stream server(io_);
        client.connect(server);
        asio::co_spawn(io_, play(peer, std::move(server)), [](std::exception_ptr e) {
            if (e)
                std::rethrow_exception(e);
        });
        std::unique_ptr<smtp::Transport> transport =
            std::make_unique<test::MemoryTransport>(std::move(client));
        co_return smtp::ConnectResult{smtp::error_code{}, std::move(transport)};
    }

    [[nodiscard]] std::vector<std::string> peer_errors() const {
        std::vector<std::string> all;
        for (const auto& p : peers)
            all.insert(all.end(), p->errors().begin(), p->errors().end());
        return all;
    }

private:
    static asio::awaitable<void> play(std::shared_ptr<test::ScriptedPeer> peer,
                                      beast::test::stream stream) {
        co_await peer->run(std::move(stream));
    }

    asio::io_context& io_;
};

core::DeliveryJob job(const std::string& domain, const std::vector<std::string>& rcpts) {
    core::DeliveryJob j;
    j.message_id = 1;
    j.queue_id = "Q1";
    j.domain = domain;
    j.envelope.mail_from = "a@s.test";
    std::uint32_t index = 0;
    for (const auto& r : rcpts)
        j.recipients.push_back({index++, core::RecipientSpec{r, {}, 0}});
    j.content = std::make_shared<const std::string>("Subject: x\r\n\r\nbody\r\n");
    return j;
}

// MAIL, RCPT for each recipient, DATA and the final reply, without PIPELINING.
void transaction(test::ScriptedPeer& peer, const std::vector<std::string>& rcpts,
                 const std::string& final_reply = "250 2.0.0 queued") {
    peer.expect("MAIL FROM:<a@s.test>").send("250 ok");
    for (const auto& r : rcpts)
        peer.expect("RCPT TO:<" + r + ">").send("250 ok");
    peer.expect("DATA").send("354 go").expect_data().send(final_reply);
}

test::ScriptedPeer delivering(const std::vector<std::string>& rcpts, bool quit) {
    auto peer = test::greeted_peer("8BITMIME");
    transaction(peer, rcpts);
    if (quit)
        peer.expect("QUIT").send("221 bye");
    return peer;
}

struct Fixture {
    asio::io_context io;
    FakeResolver resolver;
    prometheus::Registry registry;
    smtp::ClientMetrics metrics{registry};
    smtp::ClientConfig config;
    std::shared_ptr<asio::ssl::context> tls;
    FakeConnector* connector = nullptr;
    std::unique_ptr<smtp::DeliveryAgent> agent;

    Fixture() { config.helo_name = "client.test"; }

    FakeConnector& start() {
        auto c = std::make_unique<FakeConnector>(io);
        connector = c.get();
        agent = std::make_unique<smtp::DeliveryAgent>(io.get_executor(), config, resolver, tls,
                                                      metrics, std::move(c));
        return *connector;
    }

    // Runs the jobs (one after the other, or all at once), then closes the
    // idle connections so the io_context runs out of work.
    std::vector<std::vector<core::Outcome>> deliver(std::vector<core::DeliveryJob> jobs,
                                                    bool concurrent = false) {
        if (!agent)
            start();
        std::vector<std::vector<core::Outcome>> results(jobs.size());
        int left = concurrent ? static_cast<int>(jobs.size()) : 1;
        auto done = [&](std::exception_ptr e) {
            if (--left == 0)
                agent->close_idle();
            if (e)
                std::rethrow_exception(e);
        };
        if (concurrent) {
            for (std::size_t i = 0; i < jobs.size(); ++i)
                asio::co_spawn(io, run_one(agent.get(), std::move(jobs[i]), &results[i]), done);
        } else {
            asio::co_spawn(io, run_all(agent.get(), std::move(jobs), &results), done);
        }
        io.run();
        io.restart();
        return results;
    }

    std::vector<core::Outcome> deliver_one(core::DeliveryJob j) {
        std::vector<core::DeliveryJob> jobs;
        jobs.push_back(std::move(j));
        return deliver(std::move(jobs)).at(0);
    }

    static asio::awaitable<void> run_one(smtp::DeliveryAgent* agent, core::DeliveryJob j,
                                         std::vector<core::Outcome>* out) {
        *out = co_await agent->deliver(std::move(j));
    }
    static asio::awaitable<void> run_all(smtp::DeliveryAgent* agent,
                                         std::vector<core::DeliveryJob> jobs,
                                         std::vector<std::vector<core::Outcome>>* out) {
        for (std::size_t i = 0; i < jobs.size(); ++i)
            (*out)[i] = co_await agent->deliver(std::move(jobs[i]));
    }

    double counter(const std::string& family, const std::map<std::string, std::string>& labels) {
        for (const auto& f : registry.Collect()) {
            if (f.name != family)
                continue;
            for (const auto& m : f.metric) {
                std::map<std::string, std::string> got;
                for (const auto& l : m.label)
                    got[l.name] = l.value;
                if (got == labels)
                    return m.counter.value;
            }
        }
        return 0;
    }
};

std::string kinds(const std::vector<core::Outcome>& outcomes) {
    std::string out;
    for (const auto& o : outcomes) {
        if (!out.empty())
            out += ' ';
        out += core::kind_name(o.kind);
    }
    return out;
}

} // namespace

TEST_CASE("routes match the exact domain, then parent domains, then the wildcard") {
    smtp::ClientConfig config;
    config.routes["example.com"] = {"10.0.0.1", 25};
    config.routes[".example.com"] = {"10.0.0.2", 25};
    config.routes["*"] = {"10.0.0.3", 587};
    config.tls_policies[".secure.test"] = smtp::TlsPolicy::Required;
    config.tls_policies["plain.test"] = smtp::TlsPolicy::None;
    struct Case {
        std::string domain;
        std::string host;
    };
    for (const auto& c : std::vector<Case>{{"example.com", "10.0.0.1"},
                                           {"a.example.com", "10.0.0.2"},
                                           {"b.a.example.com", "10.0.0.2"},
                                           {"notexample.com", "10.0.0.3"},
                                           {"other.test", "10.0.0.3"}}) {
        CAPTURE(c.domain);
        const auto* route = config.route_for(c.domain);
        REQUIRE(route);
        CHECK(route->host == c.host);
    }
    CHECK(config.tls_policy_for("mx.secure.test") == smtp::TlsPolicy::Required);
    CHECK(config.tls_policy_for("secure.test") == smtp::TlsPolicy::Opportunistic);
    CHECK(config.tls_policy_for("plain.test") == smtp::TlsPolicy::None);
    config.routes.erase("*");
    CHECK(config.route_for("other.test") == nullptr);
}

TEST_CASE("a route sends to its host and port without any MX lookup") {
    Fixture f;
    f.config.routes["*"] = {"192.0.2.10", 2525};
    auto& connector = f.start();
    connector.scripts["192.0.2.10"].push_back(delivering({"b@d.test"}, false));
    const auto out = f.deliver_one(job("d.test", {"b@d.test"}));
    CHECK(connector.peer_errors().empty());
    CHECK(kinds(out) == "delivered");
    CHECK(f.resolver.queries.empty());
    REQUIRE(connector.requests.size() == 1);
    CHECK(connector.requests[0].port == 2525);
    CHECK(connector.requests[0].server_name == "192.0.2.10");
    CHECK(out[0].remote_ip == "192.0.2.10");
}

TEST_CASE("a route given by name is resolved to its addresses, and defers when it has none") {
    Fixture f;
    f.config.routes["d.test"] = {"relay.test", 587};
    f.resolver.host("relay.test", "192.0.2.20");
    auto& connector = f.start();
    connector.scripts["192.0.2.20"].push_back(delivering({"b@d.test"}, false));
    CHECK(kinds(f.deliver_one(job("d.test", {"b@d.test"}))) == "delivered");
    CHECK(connector.requests.at(0).server_name == "relay.test");

    f.resolver.a_answers.clear();
    const auto out = f.deliver_one(job("d.test", {"b@d.test"}));
    CHECK(kinds(out) == "deferred");
    CHECK(out[0].enhanced == "4.4.3");
}

TEST_CASE("MX hosts are tried in order until one takes the transaction") {
    Fixture f;
    f.resolver.mx("d.test", {{30, "mx3.d.test"}, {10, "mx1.d.test"}, {20, "mx2.d.test"}});
    f.resolver.host("mx1.d.test", "192.0.2.1");
    f.resolver.host("mx2.d.test", "192.0.2.2");
    f.resolver.host("mx3.d.test", "192.0.2.3");
    auto& connector = f.start();
    // mx1 refuses the connection; mx2 greets with 421; mx3 delivers.
    connector.scripts["192.0.2.2"].push_back(test::ScriptedPeer().send("421 4.3.2 busy"));
    connector.scripts["192.0.2.3"].push_back(delivering({"b@d.test", "c@d.test"}, false));
    const auto out = f.deliver_one(job("d.test", {"b@d.test", "c@d.test"}));
    CHECK(connector.peer_errors().empty());
    CHECK(kinds(out) == "delivered delivered");
    REQUIRE(connector.requests.size() == 3);
    CHECK(connector.requests[0].ip == ip("192.0.2.1"));
    CHECK(connector.requests[1].ip == ip("192.0.2.2"));
    CHECK(connector.requests[2].ip == ip("192.0.2.3"));
    CHECK(connector.requests[2].server_name == "mx3.d.test");
    CHECK(connector.requests[2].port == 25);
    CHECK(out[0].remote_host == "mx3.d.test");
}

TEST_CASE("when every host fails each recipient gets the last host's failure") {
    Fixture f;
    f.resolver.mx("d.test", {{10, "mx1.d.test"}, {20, "mx2.d.test"}});
    f.resolver.host("mx1.d.test", "192.0.2.1");
    f.resolver.host("mx2.d.test", "192.0.2.2");
    const auto out = f.deliver_one(job("d.test", {"b@d.test", "c@d.test"}));
    CHECK(kinds(out) == "deferred deferred");
    CHECK(out[0].enhanced == "4.4.1");
    CHECK(out[0].remote_host == "mx2.d.test");
    CHECK(out[1] == out[0]);
}

TEST_CASE("a host that accepted MAIL FROM gives the answer; no other host is tried") {
    Fixture f;
    f.resolver.mx("d.test", {{10, "mx1.d.test"}, {20, "mx2.d.test"}});
    f.resolver.host("mx1.d.test", "192.0.2.1");
    f.resolver.host("mx2.d.test", "192.0.2.2");
    auto& connector = f.start();
    auto peer = test::greeted_peer("");
    peer.expect("MAIL FROM:<a@s.test>")
        .send("250 ok")
        .expect("RCPT TO:<b@d.test>")
        .send("550 5.1.1 no such user")
        .expect("RSET")
        .send("250 ok");
    connector.scripts["192.0.2.1"].push_back(peer);
    connector.scripts["192.0.2.2"].push_back(delivering({"b@d.test"}, false));
    const auto out = f.deliver_one(job("d.test", {"b@d.test"}));
    CHECK(connector.peer_errors().empty());
    CHECK(kinds(out) == "failed");
    CHECK(out[0].enhanced == "5.1.1");
    CHECK(connector.requests.size() == 1);
}

TEST_CASE("a site failure before MAIL FROM was accepted moves on to the next host") {
    Fixture f;
    f.resolver.mx("d.test", {{10, "mx1.d.test"}, {20, "mx2.d.test"}});
    f.resolver.host("mx1.d.test", "192.0.2.1");
    f.resolver.host("mx2.d.test", "192.0.2.2");
    auto& connector = f.start();
    auto peer = test::greeted_peer("");
    peer.expect("MAIL FROM:<a@s.test>").send("421 4.7.0 too many connections");
    connector.scripts["192.0.2.1"].push_back(peer);
    connector.scripts["192.0.2.2"].push_back(delivering({"b@d.test"}, false));
    const auto out = f.deliver_one(job("d.test", {"b@d.test"}));
    CHECK(connector.peer_errors().empty());
    CHECK(kinds(out) == "delivered");
    CHECK(connector.requests.size() == 2);
}

TEST_CASE("DNS answers that end delivery give every recipient the same local outcome") {
    struct Case {
        std::string name;
        std::function<void(FakeResolver&)> setup;
        std::string kind;
        std::string enhanced;
    };
    const std::vector<Case> cases{
        {"NXDOMAIN", [](FakeResolver&) {}, "failed", "5.1.2"},
        {"null MX",
         [](FakeResolver& r) {
             r.mx("d.test", {{0, ""}});
         },
         "failed", "5.1.10"},
        {"SERVFAIL",
         [](FakeResolver& r) {
             r.mx_answers["d.test"] = {dns::Status::ServFail, {}, 0};
         },
         "deferred", "4.4.3"},
        {"MX host without address",
         [](FakeResolver& r) {
             r.mx("d.test", {{10, "mx.d.test"}});
         },
         "failed", "5.4.4"},
        {"no MX and no address",
         [](FakeResolver& r) {
             r.mx_answers["d.test"] = {dns::Status::NoData, {}, 0};
         },
         "failed", "5.1.2"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        Fixture f;
        c.setup(f.resolver);
        auto& connector = f.start();
        const auto out = f.deliver_one(job("d.test", {"b@d.test", "c@d.test"}));
        CHECK(kinds(out) == c.kind + " " + c.kind);
        CHECK(out.at(0).enhanced == c.enhanced);
        CHECK(out.at(0).local);
        CHECK(connector.requests.empty());
    }
}

TEST_CASE("a domain without MX records is its own mail host (implicit MX)") {
    Fixture f;
    f.resolver.mx_answers["d.test"] = {dns::Status::NoData, {}, 0};
    f.resolver.host("d.test", "192.0.2.5");
    auto& connector = f.start();
    connector.scripts["192.0.2.5"].push_back(delivering({"b@d.test"}, false));
    CHECK(kinds(f.deliver_one(job("d.test", {"b@d.test"}))) == "delivered");
    CHECK(connector.requests.at(0).server_name == "d.test");
}

TEST_CASE("address_family ipv4 never connects to IPv6 addresses") {
    Fixture f;
    f.config.address_family = smtp::AddressFamily::Ipv4;
    f.resolver.mx("d.test", {{10, "mx.d.test"}});
    f.resolver.host("mx.d.test", "192.0.2.1");
    f.resolver.aaaa_answers["mx.d.test"] = {dns::Status::Ok, {ip("2001:db8::1")}, 300};
    auto& connector = f.start();
    connector.scripts["192.0.2.1"].push_back(delivering({"b@d.test"}, false));
    CHECK(kinds(f.deliver_one(job("d.test", {"b@d.test"}))) == "delivered");
    REQUIRE(connector.requests.size() == 1);
    CHECK(connector.requests[0].ip.is_v4());
}

TEST_CASE("a second job to the same destination reuses the idle connection after RSET") {
    Fixture f;
    f.resolver.mx("d.test", {{10, "mx.d.test"}});
    f.resolver.host("mx.d.test", "192.0.2.1");
    auto& connector = f.start();
    auto peer = delivering({"b@d.test"}, false);
    peer.expect("RSET").send("250 ok");
    transaction(peer, {"c@d.test"});
    connector.scripts["192.0.2.1"].push_back(peer);
    std::vector<core::DeliveryJob> jobs;
    jobs.push_back(job("d.test", {"b@d.test"}));
    jobs.push_back(job("d.test", {"c@d.test"}));
    const auto out = f.deliver(std::move(jobs));
    CHECK(connector.peer_errors().empty());
    CHECK(kinds(out.at(0)) == "delivered");
    CHECK(kinds(out.at(1)) == "delivered");
    CHECK(connector.requests.size() == 1);
    CHECK(f.counter("ember_delivery_connections_total", {{"tls", "no"}}) == 1);
    CHECK(f.counter("ember_delivery_attempts_total",
                    {{"result", "delivered"}, {"destination", "d.test"}}) == 2);
}

TEST_CASE("an idle connection that died is replaced by a new one without a failure") {
    Fixture f;
    f.resolver.mx("d.test", {{10, "mx.d.test"}});
    f.resolver.host("mx.d.test", "192.0.2.1");
    auto& connector = f.start();
    auto first = delivering({"b@d.test"}, false);
    first.expect("RSET").send("421 4.4.2 idle too long");
    connector.scripts["192.0.2.1"].push_back(first);
    connector.scripts["192.0.2.1"].push_back(delivering({"c@d.test"}, false));
    std::vector<core::DeliveryJob> jobs;
    jobs.push_back(job("d.test", {"b@d.test"}));
    jobs.push_back(job("d.test", {"c@d.test"}));
    const auto out = f.deliver(std::move(jobs));
    CHECK(connector.peer_errors().empty());
    CHECK(kinds(out.at(1)) == "delivered");
    CHECK(connector.requests.size() == 2);
}

TEST_CASE("max_messages_per_connection ends a connection with QUIT when reached") {
    Fixture f;
    f.config.max_messages_per_connection = 1;
    f.resolver.mx("d.test", {{10, "mx.d.test"}});
    f.resolver.host("mx.d.test", "192.0.2.1");
    auto& connector = f.start();
    connector.scripts["192.0.2.1"].push_back(delivering({"b@d.test"}, true));
    connector.scripts["192.0.2.1"].push_back(delivering({"c@d.test"}, true));
    std::vector<core::DeliveryJob> jobs;
    jobs.push_back(job("d.test", {"b@d.test"}));
    jobs.push_back(job("d.test", {"c@d.test"}));
    const auto out = f.deliver(std::move(jobs));
    CHECK(connector.peer_errors().empty());
    CHECK(kinds(out.at(1)) == "delivered");
    CHECK(connector.requests.size() == 2);
}

TEST_CASE("jobs beyond max_connections_per_destination wait and take the connection over") {
    Fixture f;
    f.config.max_connections_per_destination = 1;
    f.resolver.mx("d.test", {{10, "mx.d.test"}});
    f.resolver.host("mx.d.test", "192.0.2.1");
    auto& connector = f.start();
    auto peer = delivering({"b@d.test"}, false);
    for (const auto* r : {"c@d.test", "e@d.test"}) {
        peer.expect("RSET").send("250 ok");
        transaction(peer, {r});
    }
    connector.scripts["192.0.2.1"].push_back(peer);
    std::vector<core::DeliveryJob> jobs;
    for (const auto* r : {"b@d.test", "c@d.test", "e@d.test"})
        jobs.push_back(job("d.test", {r}));
    const auto out = f.deliver(std::move(jobs), true);
    CHECK(connector.peer_errors().empty());
    for (const auto& o : out)
        CHECK(kinds(o) == "delivered");
    CHECK(connector.requests.size() == 1);
}

TEST_CASE("a job waiting for a global slot gets it when another destination's job is done") {
    Fixture f;
    f.config.max_connections = 1;
    for (const auto* d : {"d1.test", "d2.test"}) {
        f.resolver.mx(d, {{10, std::string("mx.") + d}});
    }
    f.resolver.host("mx.d1.test", "192.0.2.1");
    f.resolver.host("mx.d2.test", "192.0.2.2");
    auto& connector = f.start();
    // d1's connection is not kept idle while d2 waits: it says QUIT.
    connector.scripts["192.0.2.1"].push_back(delivering({"b@d1.test"}, true));
    connector.scripts["192.0.2.2"].push_back(delivering({"b@d2.test"}, false));
    std::vector<core::DeliveryJob> jobs;
    jobs.push_back(job("d1.test", {"b@d1.test"}));
    jobs.push_back(job("d2.test", {"b@d2.test"}));
    const auto out = f.deliver(std::move(jobs), true);
    CHECK(connector.peer_errors().empty());
    CHECK(kinds(out.at(0)) == "delivered");
    CHECK(kinds(out.at(1)) == "delivered");
    CHECK(f.agent->pool().in_use() == 0);
}

TEST_CASE("opportunistic TLS whose handshake fails is retried once in plaintext") {
    Fixture f;
    std::string error;
    f.tls = smtp::make_client_tls_context("", error);
    REQUIRE_MESSAGE(f.tls, error);
    f.resolver.mx("d.test", {{10, "mx.d.test"}});
    f.resolver.host("mx.d.test", "192.0.2.1");
    auto& connector = f.start();
    auto tls_peer = test::greeted_peer("STARTTLS");
    tls_peer.expect("STARTTLS").send("220 go ahead"); // MemoryTransport cannot do TLS
    connector.scripts["192.0.2.1"].push_back(tls_peer);
    auto plain = test::greeted_peer("STARTTLS");
    transaction(plain, {"b@d.test"});
    connector.scripts["192.0.2.1"].push_back(plain);
    const auto out = f.deliver_one(job("d.test", {"b@d.test"}));
    CHECK(connector.peer_errors().empty());
    CHECK(kinds(out) == "delivered");
    REQUIRE(connector.requests.size() == 2);
    CHECK_FALSE(connector.requests[0].verify_certificate);
}

TEST_CASE("TLS policy required asks for verification against the MX name and defers without it") {
    Fixture f;
    std::string error;
    f.tls = smtp::make_client_tls_context("", error);
    REQUIRE_MESSAGE(f.tls, error);
    f.config.tls_policies["d.test"] = smtp::TlsPolicy::Required;
    f.resolver.mx("d.test", {{10, "mx.d.test"}});
    f.resolver.host("mx.d.test", "192.0.2.1");
    auto& connector = f.start();
    auto peer = test::greeted_peer("PIPELINING");
    peer.expect("QUIT").send("221 bye");
    connector.scripts["192.0.2.1"].push_back(peer);
    const auto out = f.deliver_one(job("d.test", {"b@d.test"}));
    CHECK(connector.peer_errors().empty());
    CHECK(kinds(out) == "deferred");
    CHECK(out[0].enhanced == "4.7.4");
    REQUIRE(connector.requests.size() == 1);
    CHECK(connector.requests[0].verify_certificate);
    CHECK(connector.requests[0].server_name == "mx.d.test");
}

TEST_CASE("the destination label of the attempts counter is bounded") {
    prometheus::Registry registry;
    smtp::ClientMetrics metrics(registry);
    for (std::size_t i = 0; i < smtp::ClientMetrics::kMaxDestinationLabels; ++i)
        CHECK(metrics.destination_label("d" + std::to_string(i) + ".test") ==
              "d" + std::to_string(i) + ".test");
    CHECK(metrics.destination_label("one-too-many.test") == "other");
    CHECK(metrics.destination_label("d0.test") == "d0.test");
}

namespace {

asio::awaitable<void> wait_for_slot(smtp::AsyncSlots* slots, std::string name,
                                    std::vector<std::string>* events) {
    const bool granted = co_await slots->acquire();
    events->push_back(name + (granted ? ":slot" : ":nudged"));
}

} // namespace

TEST_CASE("AsyncSlots hands released slots to waiters in order and nudges without a slot") {
    asio::io_context io;
    smtp::AsyncSlots slots(io.get_executor(), 1);
    REQUIRE(slots.try_acquire());
    std::vector<std::string> events;
    auto rethrow = [](std::exception_ptr e) {
        if (e)
            std::rethrow_exception(e);
    };
    asio::co_spawn(io, wait_for_slot(&slots, "a", &events), rethrow);
    asio::co_spawn(io, wait_for_slot(&slots, "b", &events), rethrow);
    asio::co_spawn(io, wait_for_slot(&slots, "c", &events), rethrow);
    io.poll();
    CHECK(events.empty());
    CHECK(slots.waiting() == 3);
    slots.nudge();
    io.poll();
    slots.release();
    io.poll();
    CHECK(slots.in_use() == 1);
    CHECK_FALSE(slots.try_acquire());
    slots.release();
    io.poll();
    slots.release();
    io.poll();
    CHECK(events == std::vector<std::string>{"a:nudged", "b:slot", "c:slot"});
    CHECK(slots.idle());
}

// --- Over real loopback sockets, against ember's own server with STARTTLS ---

namespace {

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "ember-tls-XXXXXX").string();
        REQUIRE(mkdtemp(pattern.data()) != nullptr);
        path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};

// A self-signed P-256 certificate for `name` (subjectAltName DNS:name), so
// it can be its own trust anchor in a CA file.
void write_self_signed(const std::filesystem::path& dir, const std::string& name) {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
        EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
    REQUIRE(key);
    std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
    X509_set_pubkey(cert.get(), key.get());
    X509_NAME* subject = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert.get(), subject);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
    const std::string san = "DNS:" + name;
    for (const auto& [nid, value] : {std::pair{NID_subject_alt_name, san.c_str()},
                                     std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
        X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
        REQUIRE(ext);
        X509_add_ext(cert.get(), ext, -1);
        X509_EXTENSION_free(ext);
    }
    REQUIRE(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0);
    std::unique_ptr<FILE, decltype(&fclose)> c(fopen((dir / "cert.pem").c_str(), "w"), fclose);
    std::unique_ptr<FILE, decltype(&fclose)> k(fopen((dir / "key.pem").c_str(), "w"), fclose);
    REQUIRE((c && k));
    REQUIRE(PEM_write_X509(c.get(), cert.get()) == 1);
    REQUIRE(PEM_write_PrivateKey(k.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1);
}

class CollectingSink final : public smtp::MessageSink {
public:
    std::string new_queue_id() override { return "S" + std::to_string(++ids_); }
    asio::awaitable<smtp::SinkStatus> commit(smtp::AcceptedMessage m) override {
        messages.push_back(std::move(m));
        co_return smtp::SinkStatus::Ok;
    }
    std::vector<smtp::AcceptedMessage> messages;

private:
    int ids_ = 0;
};

class NoUsers final : public smtp::Authenticator {
public:
    bool has_users() const override { return false; }
    asio::awaitable<bool> verify(std::string, std::string) override { co_return false; }
    bool blocked(const core::IpAddress&) override { return false; }
    void record_failure(const core::IpAddress&) override {}
};

// ember's SMTP server on 127.0.0.1 (any port), STARTTLS with the certificate
// in `dir`, relaying for loopback clients; accepts until stop().
struct LoopbackServer {
    CollectingSink sink;
    NoUsers users;
    prometheus::Registry registry;
    smtp::ServerMetrics metrics{registry};
    smtp::ServerContext ctx;
    asio::ip::tcp::acceptor acceptor;

    LoopbackServer(asio::io_context& io, const std::filesystem::path& dir)
        : ctx{settings(dir), sink, users, metrics, {}, {}},
          acceptor(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {}

    static std::shared_ptr<const smtp::ServerSettings> settings(const std::filesystem::path& dir) {
        auto s = std::make_shared<smtp::ServerSettings>();
        s->hostname = "mx.test";
        s->trusted_networks = {*core::Cidr::parse("127.0.0.0/8")};
        std::string error;
        s->tls = smtp::make_server_tls_context(
            {(dir / "cert.pem").string(), (dir / "key.pem").string(), "1.2"}, error);
        REQUIRE_MESSAGE(s->tls, error);
        return s;
    }

    std::uint16_t port() const { return acceptor.local_endpoint().port(); }
    void stop() { acceptor.close(); }

    static asio::awaitable<void> serve(LoopbackServer* server) {
        smtp::ListenerConfig listener;
        listener.tls = smtp::TlsMode::StartTls;
        while (true) {
            auto [ec, socket] =
                co_await server->acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
            if (ec)
                co_return;
            auto transport = smtp::make_tcp_transport(std::move(socket));
            asio::co_spawn(
                server->acceptor.get_executor(),
                smtp::serve_session(std::move(transport), listener, server->ctx, ip("127.0.0.1")),
                [](std::exception_ptr e) {
                    if (e)
                        std::rethrow_exception(e);
                });
        }
    }
};

struct LoopbackCase {
    std::string name;
    smtp::TlsPolicy policy;
    bool trust_cert; // tls_ca_file = the server's certificate (else the system store)
    std::string mx;  // the MX name the certificate is checked against
    std::string want_kind;
    std::string want_enhanced;
    bool want_tls;
    std::string want_text = ""; // a substring of the outcome's text
};

void run_loopback(const LoopbackCase& c) {
    TempDir dir;
    write_self_signed(dir.path, "mx.test");
    asio::io_context io;
    LoopbackServer server(io, dir.path);
    FakeResolver resolver;
    resolver.mx("d.test", {{10, c.mx}});
    resolver.host(c.mx, "127.0.0.1");
    prometheus::Registry registry;
    smtp::ClientMetrics metrics(registry);
    smtp::ClientConfig config;
    config.helo_name = "client.test";
    config.port = server.port();
    config.tls_policies["d.test"] = c.policy;
    std::string error;
    auto tls =
        smtp::make_client_tls_context(c.trust_cert ? (dir.path / "cert.pem").string() : "", error);
    REQUIRE_MESSAGE(tls, error);
    smtp::DeliveryAgent agent(io.get_executor(), config, resolver, tls, metrics);
    std::vector<core::Outcome> out;
    auto j = job("d.test", {"b@d.test"});
    j.content = std::make_shared<const std::string>(
        "From: <a@s.test>\r\nTo: <b@d.test>\r\nSubject: hi\r\n\r\nHello.\r\n");
    asio::co_spawn(io, LoopbackServer::serve(&server), [](std::exception_ptr e) {
        if (e)
            std::rethrow_exception(e);
    });
    asio::co_spawn(io, Fixture::run_one(&agent, std::move(j), &out), [&](std::exception_ptr e) {
        agent.close_idle();
        server.stop();
        if (e)
            std::rethrow_exception(e);
    });
    io.run();
    REQUIRE(out.size() == 1);
    CAPTURE(out[0].summary());
    CHECK(kinds(out) == c.want_kind);
    CHECK(out[0].enhanced == c.want_enhanced);
    CHECK(out[0].text.find(c.want_text) != std::string::npos);
    // The outcome names the protocol of a session that negotiated TLS, and
    // only of such a session.
    CHECK(out[0].tls.starts_with("TLSv1.") == c.want_tls);
    if (!c.want_tls)
        CHECK(out[0].tls.empty());
    if (c.want_kind == "delivered") {
        REQUIRE(server.sink.messages.size() == 1);
        CHECK(server.sink.messages[0].info.tls.empty() == !c.want_tls);
        CHECK(server.sink.messages[0].info.helo == "client.test");
    }
}

} // namespace

TEST_CASE("over loopback TCP the client uses STARTTLS and verifies only when required") {
    const std::vector<LoopbackCase> cases{
        {"opportunistic, untrusted certificate: encrypted, not verified",
         smtp::TlsPolicy::Opportunistic, false, "mx.test", "delivered", "2.0.0", true},
        {"required, trusted certificate for the MX name", smtp::TlsPolicy::Required, true,
         "mx.test", "delivered", "2.0.0", true},
        {"required, certificate not trusted", smtp::TlsPolicy::Required, false, "mx.test",
         "deferred", "4.7.5", false, "certificate verification failed: self-signed certificate"},
        {"required, certificate for another name", smtp::TlsPolicy::Required, true, "other.test",
         "deferred", "4.7.5", false, "certificate verification failed: hostname mismatch"},
        {"none: plaintext although STARTTLS is offered", smtp::TlsPolicy::None, false, "mx.test",
         "delivered", "2.0.0", false},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        run_loopback(c);
    }
}

TEST_CASE("a refused TCP connection defers with 4.4.1") {
    asio::io_context io;
    std::uint16_t closed_port = 0;
    {
        asio::ip::tcp::acceptor probe(
            io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        closed_port = probe.local_endpoint().port();
    }
    FakeResolver resolver;
    resolver.mx("d.test", {{10, "mx.test"}});
    resolver.host("mx.test", "127.0.0.1");
    prometheus::Registry registry;
    smtp::ClientMetrics metrics(registry);
    smtp::ClientConfig config;
    config.port = closed_port;
    smtp::DeliveryAgent agent(io.get_executor(), config, resolver, nullptr, metrics);
    std::vector<core::Outcome> out;
    asio::co_spawn(io, Fixture::run_one(&agent, job("d.test", {"b@d.test"}), &out),
                   [](std::exception_ptr e) {
                       if (e)
                           std::rethrow_exception(e);
                   });
    io.run();
    REQUIRE(out.size() == 1);
    CHECK(kinds(out) == "deferred");
    CHECK(out[0].enhanced == "4.4.1");
    CHECK(out[0].text.find("127.0.0.1") != std::string::npos);
}

TEST_CASE("a server that never greets times out as a lost connection, and the next host is tried") {
    asio::io_context io;
    asio::ip::tcp::acceptor silent(io,
                                   asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    std::vector<asio::ip::tcp::socket> held; // accepted and never answered
    silent.async_accept([&](boost::system::error_code ec, asio::ip::tcp::socket socket) {
        if (!ec)
            held.push_back(std::move(socket));
    });
    FakeResolver resolver;
    resolver.mx("d.test", {{10, "mx.test"}});
    resolver.host("mx.test", "127.0.0.1");
    prometheus::Registry registry;
    smtp::ClientMetrics metrics(registry);
    smtp::ClientConfig config;
    config.port = silent.local_endpoint().port();
    config.timeouts.greeting = std::chrono::milliseconds(200);
    smtp::DeliveryAgent agent(io.get_executor(), config, resolver, nullptr, metrics);
    std::vector<core::Outcome> out;
    asio::co_spawn(io, Fixture::run_one(&agent, job("d.test", {"b@d.test"}), &out),
                   [&](std::exception_ptr e) {
                       silent.close();
                       held.clear();
                       if (e)
                           std::rethrow_exception(e);
                   });
    io.run();
    REQUIRE(out.size() == 1);
    CHECK(kinds(out) == "deferred");
    CHECK(out[0].enhanced == "4.4.2");
    CHECK(out[0].text ==
          "conversation with mx.test[127.0.0.1] timed out while receiving the initial server "
          "greeting");
}

namespace {

// Two jobs to d.test on one connection (RSET between), with the limit of
// messages per connection of each job.
std::vector<core::DeliveryJob> jobs_with_limits(const std::vector<std::uint32_t>& limits) {
    std::vector<core::DeliveryJob> jobs;
    char name = 'b';
    for (const auto limit : limits) {
        auto j = job("d.test", {std::string(1, name++) + "@d.test"});
        j.max_messages_per_connection = limit;
        jobs.push_back(std::move(j));
    }
    return jobs;
}

} // namespace

TEST_CASE("a job's max_messages_per_connection overrides the agent's and QUITs when reached") {
    Fixture f; // the agent's own limit is 100
    f.resolver.mx("d.test", {{10, "mx.d.test"}});
    f.resolver.host("mx.d.test", "192.0.2.1");
    auto& connector = f.start();
    connector.scripts["192.0.2.1"].push_back(delivering({"b@d.test"}, true));
    connector.scripts["192.0.2.1"].push_back(delivering({"c@d.test"}, true));
    const auto out = f.deliver(jobs_with_limits({1, 1}));
    CHECK(connector.peer_errors().empty());
    CHECK(kinds(out.at(0)) == "delivered");
    CHECK(kinds(out.at(1)) == "delivered");
    CHECK(connector.requests.size() == 2);
}

TEST_CASE("an idle connection that carried a job's limit is QUIT instead of reused for it") {
    Fixture f;
    f.resolver.mx("d.test", {{10, "mx.d.test"}});
    f.resolver.host("mx.d.test", "192.0.2.1");
    auto& connector = f.start();
    auto first = delivering({"b@d.test"}, false); // limit 0: the agent's 100, pooled
    first.expect("RSET").send("250 ok");
    transaction(first, {"c@d.test"});     // limit 0 again: reused, pooled with 2 messages
    first.expect("QUIT").send("221 bye"); // the third job allows 2: not reused
    connector.scripts["192.0.2.1"].push_back(first);
    connector.scripts["192.0.2.1"].push_back(delivering({"d@d.test"}, false));
    const auto out = f.deliver(jobs_with_limits({0, 0, 2}));
    CHECK(connector.peer_errors().empty());
    for (const auto& o : out)
        CHECK(kinds(o) == "delivered");
    CHECK(connector.requests.size() == 2);
}

TEST_CASE("a reused pipelining connection sends RSET with the next transaction in one write") {
    Fixture f;
    f.resolver.mx("d.test", {{10, "mx.d.test"}});
    f.resolver.host("mx.d.test", "192.0.2.1");
    auto& connector = f.start();
    auto peer = test::greeted_peer("PIPELINING");
    for (const auto* r : {"b@d.test", "c@d.test"}) {
        if (std::string(r) == "c@d.test")
            peer.expect("RSET");
        peer.expect("MAIL FROM:<a@s.test>").expect(fmt::format("RCPT TO:<{}>", r)).expect("DATA");
        if (std::string(r) == "c@d.test")
            peer.send("250 ok");
        peer.send("250 ok").send("250 ok").send("354 go").expect_data().send("250 ok");
    }
    connector.scripts["192.0.2.1"].push_back(peer);
    const auto out = f.deliver(jobs_with_limits({0, 0}));
    CHECK(connector.peer_errors().empty());
    CHECK(kinds(out.at(1)) == "delivered");
    CHECK(connector.requests.size() == 1);
    const auto& reads = connector.peers.at(0)->reads();
    CHECK(std::find(reads.begin(), reads.end(),
                    "RSET\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n") !=
          reads.end());
}

TEST_CASE("a refused pipelined RSET moves the job to a fresh connection, nothing lost") {
    Fixture f;
    f.resolver.mx("d.test", {{10, "mx.d.test"}});
    f.resolver.host("mx.d.test", "192.0.2.1");
    auto& connector = f.start();
    auto first = test::greeted_peer("PIPELINING");
    first.expect("MAIL FROM:<a@s.test>").expect("RCPT TO:<b@d.test>").expect("DATA");
    first.send("250 ok").send("250 ok").send("354 go").expect_data().send("250 ok");
    first.expect("RSET").expect("MAIL FROM:<a@s.test>").expect("RCPT TO:<c@d.test>").expect("DATA");
    first.send("503 5.5.1 confused").send("250 ok").send("250 ok").send("354 go").expect_data();
    connector.scripts["192.0.2.1"].push_back(first);
    auto second = test::greeted_peer("PIPELINING");
    second.expect("MAIL FROM:<a@s.test>").expect("RCPT TO:<c@d.test>").expect("DATA");
    second.send("250 ok").send("250 ok").send("354 go").expect_data().send("250 ok");
    connector.scripts["192.0.2.1"].push_back(second);
    const auto out = f.deliver(jobs_with_limits({0, 0}));
    CHECK(kinds(out.at(0)) == "delivered");
    CHECK(kinds(out.at(1)) == "delivered");
    CHECK(connector.requests.size() == 2);
    CHECK(connector.peers.at(0)->bodies().size() == 1); // no content after the failed RSET
    CHECK(connector.peers.at(1)->bodies().size() == 1);
}

namespace {

// Calls `act` once `ready` holds, looking every few milliseconds (ordering,
// not timing: nothing asserts how long it took).
asio::awaitable<void> when(std::function<bool()> ready, std::function<void()> act, int tries) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (int i = 0; i < tries && !ready(); ++i) {
        timer.expires_after(std::chrono::milliseconds(5));
        auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        (void)ec;
    }
    act();
}

void spawn_when(asio::io_context& io, std::function<bool()> ready, std::function<void()> act,
                int tries = 2000) {
    asio::co_spawn(io, when(std::move(ready), std::move(act), tries), [](std::exception_ptr e) {
        if (e)
            std::rethrow_exception(e);
    });
}

} // namespace

TEST_CASE("aborting a session that waits for a greeting leaves its recipients queued") {
    Fixture f;
    f.resolver.mx("d.test", {{10, "mx1.d.test"}, {20, "mx2.d.test"}});
    f.resolver.host("mx1.d.test", "192.0.2.1");
    f.resolver.host("mx2.d.test", "192.0.2.2");
    auto& connector = f.start();
    test::ScriptedPeer tarpit; // never greets: waits for a command that never comes
    tarpit.expect("EHLO client.test");
    connector.scripts["192.0.2.1"].push_back(tarpit);
    connector.scripts["192.0.2.2"].push_back(delivering({"b@d.test", "c@d.test"}, true));
    auto* agent = f.agent.get();
    spawn_when(
        f.io, [agent] { return agent->sessions() > 0; }, [agent] { agent->abort_sessions(false); });
    const auto out = f.deliver_one(job("d.test", {"b@d.test", "c@d.test"}));
    CHECK(kinds(out) == "throttled throttled"); // not an attempt: no retry spent, no expiry
    CHECK(out[0].enhanced == "4.3.2");
    CHECK(connector.requests.size() == 1); // shutdown does not move on to the next host
    CHECK(f.agent->sessions() == 0);
}

TEST_CASE("shutdown aborts a session in DATA only when asked to, and never connects again") {
    Fixture f;
    f.resolver.mx("d.test", {{10, "mx.d.test"}});
    f.resolver.host("mx.d.test", "192.0.2.1");
    auto& connector = f.start();
    auto slow = test::greeted_peer("8BITMIME");
    slow.expect("MAIL FROM:<a@s.test>").send("250 ok").expect("RCPT TO:<b@d.test>").send("250 ok");
    slow.expect("DATA").send("354 go").expect_data().expect("never answers the dot");
    connector.scripts["192.0.2.1"].push_back(slow);
    auto* agent = f.agent.get();
    auto* peer_list = &connector.peers;
    bool alive_after_first_abort = false;
    spawn_when(
        f.io, [peer_list] { return !peer_list->empty() && !peer_list->front()->bodies().empty(); },
        [&f, agent, &alive_after_first_abort] {
            agent->abort_sessions(false); // in DATA: left alone
            spawn_when(
                f.io, [] { return false; }, // a few turns of the loop later
                [agent, &alive_after_first_abort] {
                    alive_after_first_abort = agent->sessions() == 1;
                    agent->abort_sessions(true);
                },
                5);
        });
    std::vector<core::DeliveryJob> jobs;
    jobs.push_back(job("d.test", {"b@d.test"}));
    jobs.push_back(job("d.test", {"c@d.test"})); // starts after shutdown began
    const auto out = f.deliver(std::move(jobs));
    CHECK(alive_after_first_abort);
    CHECK(kinds(out.at(0)) == "throttled");
    CHECK(kinds(out.at(1)) == "throttled");
    CHECK(connector.requests.size() == 1);
}
