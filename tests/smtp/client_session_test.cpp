#include "smtp/client_session.hpp"

#include "smtp/tls.hpp"
#include "tests/support/memory_transport.hpp"
#include "tests/support/scripted_peer.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

using namespace ember;
namespace asio = boost::asio;
namespace beast = boost::beast;
using core::OutcomeKind;
using core::OutcomeScope;

namespace {

struct Run {
    std::optional<core::Outcome> opened; // open()'s failure, if any
    std::vector<smtp::TransactionResult> results;
    bool tls_handshake_failed = false;
    bool usable_after = false;
    std::vector<std::string> peer_errors;
    std::vector<std::string> reads; // what the peer read, read by read
    std::vector<std::string> bodies;
};

struct Plan {
    std::vector<smtp::Transaction> transactions;
    bool reset_between = false; // RSET before every transaction but the first (reuse)
    bool send_reused = false;   // send_reused() for every transaction but the first
};

smtp::SessionSettings settings(smtp::TlsPolicy tls = smtp::TlsPolicy::None) {
    smtp::SessionSettings s;
    s.helo_name = "client.test";
    s.tls = tls;
    s.peer = {"mx.test", "192.0.2.1"};
    return s;
}

std::shared_ptr<const std::string> text(std::string content) {
    return std::make_shared<const std::string>(std::move(content));
}

const std::string kContent = "Subject: hi\r\n\r\nHello.\r\n";

smtp::Transaction transaction(std::vector<std::string> rcpts, std::string content = kContent) {
    smtp::Transaction t;
    t.envelope.mail_from = "a@s.test";
    for (auto& r : rcpts)
        t.recipients.push_back(core::RecipientSpec{std::move(r), {}, 0});
    t.content = text(std::move(content));
    return t;
}

asio::awaitable<void> drive(std::unique_ptr<smtp::Transport> transport,
                            smtp::SessionSettings session_settings, Plan plan, Run* out) {
    smtp::ClientSession session(std::move(transport), std::move(session_settings));
    out->opened = co_await session.open();
    out->tls_handshake_failed = session.tls_handshake_failed();
    for (std::size_t i = 0; i < plan.transactions.size() && !out->opened; ++i) {
        if (i > 0 && plan.reset_between) {
            const bool reset = co_await session.reset();
            (void)reset;
        }
        smtp::TransactionResult result;
        if (i > 0 && plan.send_reused)
            result = co_await session.send_reused(std::move(plan.transactions[i]));
        else
            result = co_await session.send(std::move(plan.transactions[i]));
        out->results.push_back(std::move(result));
    }
    out->usable_after = session.usable();
    co_await session.quit();
}

using Wrap = std::function<std::unique_ptr<smtp::Transport>(std::unique_ptr<smtp::Transport>)>;

Run run(test::ScriptedPeer peer, Plan plan, smtp::SessionSettings s = settings(),
        const Wrap& wrap = {}) {
    asio::io_context io;
    beast::test::stream client(io);
    beast::test::stream server(io);
    client.connect(server);
    Run out;
    int running = 2;
    // A safety net against a script that waits forever, not a timing assertion.
    asio::steady_timer watchdog(io);
    watchdog.expires_after(std::chrono::seconds(20));
    watchdog.async_wait([&peer](boost::system::error_code ec) {
        if (!ec)
            peer.abort();
    });
    auto done = [&](std::exception_ptr e) {
        if (--running == 0)
            watchdog.cancel();
        if (e)
            std::rethrow_exception(e);
    };
    std::unique_ptr<smtp::Transport> transport =
        std::make_unique<test::MemoryTransport>(std::move(client));
    if (wrap)
        transport = wrap(std::move(transport));
    asio::co_spawn(io, peer.run(std::move(server)), done);
    asio::co_spawn(io, drive(std::move(transport), std::move(s), std::move(plan), &out), done);
    io.run();
    out.peer_errors = peer.errors();
    out.reads = peer.reads();
    out.bodies = peer.bodies();
    return out;
}

std::string kinds(const std::vector<core::Outcome>& outcomes) {
    std::string out;
    for (const auto& o : outcomes) {
        if (!out.empty())
            out += ' ';
        out += core::kind_name(o.kind);
    }
    return out;
}

std::string received(const Run& r) {
    std::string all;
    for (const auto& read : r.reads)
        all += read;
    return all;
}

bool has_read(const Run& r, const std::string& bytes) {
    return std::find(r.reads.begin(), r.reads.end(), bytes) != r.reads.end();
}

// Greeting and EHLO with the given keywords (one per line after the name).
test::ScriptedPeer greeted(const std::string& keywords) {
    return test::greeted_peer(keywords);
}

} // namespace

TEST_CASE("a pipelined transaction sends MAIL, every RCPT and DATA in one write") {
    auto peer = greeted("PIPELINING\n8BITMIME");
    peer.expect("MAIL FROM:<a@s.test>")
        .expect("RCPT TO:<b@d.test>")
        .expect("RCPT TO:<c@d.test>")
        .expect("DATA")
        .send("250 2.1.0 ok")
        .send("250 2.1.5 ok")
        .send("250 ok")
        .send("354 go ahead")
        .expect_data()
        .send("250 2.0.0 queued as X1")
        .expect("QUIT")
        .send("221 bye");
    const Run r = run(peer, {{transaction({"b@d.test", "c@d.test"})}});
    CHECK(r.peer_errors.empty());
    CHECK_FALSE(r.opened);
    REQUIRE(r.results.size() == 1);
    CHECK(kinds(r.results[0].outcomes) == "delivered delivered");
    CHECK(r.results[0].mail_accepted);
    CHECK(has_read(r,
                   "MAIL FROM:<a@s.test>\r\nRCPT TO:<b@d.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n"));
    const auto& o = r.results[0].outcomes[0];
    CHECK(o.code == 250);
    CHECK(o.enhanced == "2.0.0");
    CHECK(o.text == "queued as X1");
    CHECK(o.command == "end of data");
    CHECK(o.remote_host == "mx.test");
    CHECK(o.remote_ip == "192.0.2.1");
    CHECK_FALSE(o.local);
    CHECK(o.tls.empty()); // clear text
    REQUIRE(r.bodies.size() == 1);
    CHECK(r.bodies[0] == kContent + ".\r\n");
}

TEST_CASE("without PIPELINING every command waits for its reply") {
    auto peer = greeted("8BITMIME");
    peer.expect("MAIL FROM:<a@s.test>")
        .send("250 ok")
        .expect("RCPT TO:<b@d.test>")
        .send("250 ok")
        .expect("DATA")
        .send("354 go ahead")
        .expect_data()
        .send("250 queued")
        .expect("QUIT")
        .send("221 bye");
    const Run r = run(peer, {{transaction({"b@d.test"})}});
    CHECK(r.peer_errors.empty());
    REQUIRE(r.results.size() == 1);
    CHECK(kinds(r.results[0].outcomes) == "delivered");
    CHECK(has_read(r, "MAIL FROM:<a@s.test>\r\n"));
    CHECK(has_read(r, "RCPT TO:<b@d.test>\r\n"));
    CHECK(has_read(r, "DATA\r\n"));
}

TEST_CASE("a server that refuses EHLO with 5xx is greeted with HELO and gets no extensions") {
    for (const std::string refusal : {"500 5.5.2 what?", "502 5.5.1 not implemented", "550 no"}) {
        CAPTURE(refusal);
        test::ScriptedPeer peer;
        peer.send("220 old.test SMTP")
            .expect("EHLO client.test")
            .send(refusal)
            .expect("HELO client.test")
            .send("250 old.test")
            .expect("MAIL FROM:<a@s.test>")
            .send("250 ok")
            .expect("RCPT TO:<b@d.test>")
            .send("250 ok")
            .expect("DATA")
            .send("354 go")
            .expect_data()
            .send("250 ok")
            .expect("QUIT")
            .send("221 bye");
        auto t = transaction({"b@d.test"});
        t.envelope.body = core::BodyType::EightBitMime; // not announced: HELO has no 8BITMIME
        const Run r = run(peer, {{t}});
        CHECK(r.peer_errors.empty());
        REQUIRE(r.results.size() == 1);
        CHECK(kinds(r.results[0].outcomes) == "delivered");
    }
}

TEST_CASE("a 4xx reply to EHLO is the site's answer, not a reason to try HELO") {
    test::ScriptedPeer peer;
    peer.send("220 mx.test").expect("EHLO client.test").send("421 4.3.2 busy").hang_up();
    const Run r = run(peer, {{transaction({"b@d.test"})}});
    REQUIRE(r.opened);
    CHECK(r.opened->kind == OutcomeKind::Deferred);
    CHECK(r.opened->scope == OutcomeScope::Site);
    CHECK(r.opened->code == 421);
    CHECK(r.opened->command == "EHLO");
    CHECK(r.results.empty());
}

TEST_CASE("greetings other than 2xx defer the site, a 5xx one included") {
    struct Case {
        std::string greeting;
        int code;
        std::string enhanced;
    };
    for (const auto& c : std::vector<Case>{{"421 4.3.2 try later", 421, "4.3.2"},
                                           {"450 busy", 450, "4.2.0"},
                                           {"554 5.7.1 go away", 554, "5.7.1"},
                                           {"554 no SMTP service here", 554, "5.0.0"}}) {
        CAPTURE(c.greeting);
        test::ScriptedPeer peer;
        peer.send(c.greeting).expect("QUIT").send("221 bye");
        const Run r = run(peer, {{transaction({"b@d.test"})}});
        REQUIRE(r.opened);
        CHECK(r.opened->kind == OutcomeKind::Deferred);
        CHECK(r.opened->scope == OutcomeScope::Site);
        CHECK(r.opened->code == c.code);
        CHECK(r.opened->enhanced == c.enhanced);
        CHECK(r.opened->command == "greeting");
    }
}

TEST_CASE("multi-line replies are read whole and their lines joined in the outcome") {
    auto peer = greeted("PIPELINING\nSIZE 1000000\nDSN\nENHANCEDSTATUSCODES");
    peer.expect("MAIL FROM:<a@s.test> SIZE=" + std::to_string(kContent.size()))
        .expect("RCPT TO:<b@d.test>")
        .expect("DATA")
        .send("250 2.1.0 ok")
        .send("550-5.1.1 The email account that you tried to reach does not exist.\r\n"
              "550-5.1.1 Please try double-checking the recipient's email\r\n"
              "550 5.1.1 address for typos.")
        .send("554 5.5.1 no valid recipients")
        .expect("RSET")
        .send("250 2.0.0 flushed")
        .expect("QUIT")
        .send("221 bye");
    const Run r = run(peer, {{transaction({"b@d.test"})}});
    CHECK(r.peer_errors.empty());
    REQUIRE(r.results.size() == 1);
    const auto& o = r.results[0].outcomes.at(0);
    CHECK(o.kind == OutcomeKind::Failed);
    CHECK(o.scope == OutcomeScope::Recipient);
    CHECK(o.code == 550);
    CHECK(o.enhanced == "5.1.1");
    CHECK(o.command == "RCPT TO");
    CHECK(o.text == "The email account that you tried to reach does not exist. Please try "
                    "double-checking the recipient's email address for typos.");
}

TEST_CASE("each recipient keeps its own RCPT answer and the accepted ones get the final reply") {
    for (const bool pipelining : {true, false}) {
        CAPTURE(pipelining);
        auto peer = greeted(pipelining ? "PIPELINING" : "8BITMIME");
        if (pipelining) {
            peer.expect("MAIL FROM:<a@s.test>")
                .expect("RCPT TO:<ok@d.test>")
                .expect("RCPT TO:<later@d.test>")
                .expect("RCPT TO:<never@d.test>")
                .expect("DATA")
                .send("250 ok")
                .send("250 ok")
                .send("450 4.2.1 mailbox busy")
                .send("550 5.1.1 no such user")
                .send("354 go");
        } else {
            peer.expect("MAIL FROM:<a@s.test>")
                .send("250 ok")
                .expect("RCPT TO:<ok@d.test>")
                .send("250 ok")
                .expect("RCPT TO:<later@d.test>")
                .send("450 4.2.1 mailbox busy")
                .expect("RCPT TO:<never@d.test>")
                .send("550 5.1.1 no such user")
                .expect("DATA")
                .send("354 go");
        }
        peer.expect_data().send("250 2.0.0 ok").expect("QUIT").send("221 bye");
        const Run r = run(peer, {{transaction({"ok@d.test", "later@d.test", "never@d.test"})}});
        CHECK(r.peer_errors.empty());
        REQUIRE(r.results.size() == 1);
        const auto& out = r.results[0].outcomes;
        CHECK(kinds(out) == "delivered deferred failed");
        CHECK(out.at(1).enhanced == "4.2.1");
        CHECK(out.at(1).scope == OutcomeScope::Recipient);
        CHECK(out.at(2).enhanced == "5.1.1");
    }
}

TEST_CASE("a refused MAIL FROM decides every recipient and the session is reset") {
    struct Case {
        std::string reply;
        std::string kinds;
        std::string enhanced;
    };
    for (const auto& c : std::vector<Case>{{"451 4.7.1 greylisted", "deferred deferred", "4.7.1"},
                                           {"550 5.7.1 sender rejected", "failed failed", "5.7.1"},
                                           {"552 too big", "failed failed", "5.3.4"}}) {
        for (const bool pipelining : {true, false}) {
            CAPTURE(c.reply);
            CAPTURE(pipelining);
            auto peer = greeted(pipelining ? "PIPELINING" : "DSN");
            if (pipelining) {
                peer.expect("MAIL FROM:<a@s.test>")
                    .expect("RCPT TO:<b@d.test>")
                    .expect("RCPT TO:<c@d.test>")
                    .expect("DATA")
                    .send(c.reply)
                    .send("503 5.5.1 need MAIL")
                    .send("503 5.5.1 need MAIL")
                    .send("503 5.5.1 need RCPT");
            } else {
                peer.expect("MAIL FROM:<a@s.test>").send(c.reply);
            }
            peer.expect("RSET").send("250 ok").expect("QUIT").send("221 bye");
            const Run r = run(peer, {{transaction({"b@d.test", "c@d.test"})}});
            CHECK(r.peer_errors.empty());
            REQUIRE(r.results.size() == 1);
            CHECK(kinds(r.results[0].outcomes) == c.kinds);
            CHECK(r.results[0].outcomes.at(0).enhanced == c.enhanced);
            CHECK(r.results[0].outcomes.at(0).scope == OutcomeScope::Message);
            CHECK(r.results[0].outcomes.at(0).command == "MAIL FROM");
            CHECK_FALSE(r.results[0].mail_accepted);
            CHECK(r.usable_after);
        }
    }
}

TEST_CASE("the reply to the final dot decides every accepted recipient") {
    struct Case {
        std::string reply;
        std::string kind;
        std::string enhanced;
    };
    for (const auto& c : std::vector<Case>{{"452 4.3.1 disk full", "deferred", "4.3.1"},
                                           {"451 local error", "deferred", "4.3.0"},
                                           {"554 5.7.1 spam", "failed", "5.7.1"},
                                           {"550 rejected", "failed", "5.0.0"}}) {
        CAPTURE(c.reply);
        auto peer = greeted("PIPELINING");
        peer.expect("MAIL FROM:<a@s.test>")
            .expect("RCPT TO:<b@d.test>")
            .expect("DATA")
            .send("250 ok")
            .send("250 ok")
            .send("354 go")
            .expect_data()
            .send(c.reply)
            .expect("QUIT")
            .send("221 bye");
        const Run r = run(peer, {{transaction({"b@d.test"})}});
        CHECK(r.peer_errors.empty());
        REQUIRE(r.results.size() == 1);
        const auto& o = r.results[0].outcomes.at(0);
        CHECK(kinds(r.results[0].outcomes) == c.kind);
        CHECK(o.enhanced == c.enhanced);
        CHECK(o.scope == OutcomeScope::Message);
        CHECK(o.command == "end of data");
        CHECK(r.usable_after);
    }
}

TEST_CASE("a refused DATA defers or fails the accepted recipients and resets") {
    auto peer = greeted("8BITMIME");
    peer.expect("MAIL FROM:<a@s.test>")
        .send("250 ok")
        .expect("RCPT TO:<b@d.test>")
        .send("250 ok")
        .expect("DATA")
        .send("451 4.3.0 try later")
        .expect("RSET")
        .send("250 ok")
        .expect("QUIT")
        .send("221 bye");
    const Run r = run(peer, {{transaction({"b@d.test"})}});
    CHECK(r.peer_errors.empty());
    REQUIRE(r.results.size() == 1);
    CHECK(kinds(r.results[0].outcomes) == "deferred");
    CHECK(r.results[0].outcomes[0].command == "DATA");
}

TEST_CASE("a pipelining server that says 354 with no recipient left gets an empty message") {
    auto peer = greeted("PIPELINING");
    peer.expect("MAIL FROM:<a@s.test>")
        .expect("RCPT TO:<b@d.test>")
        .expect("DATA")
        .send("250 ok")
        .send("550 5.1.1 unknown")
        .send("354 go")
        .expect_data()
        .send("554 5.5.1 no recipients")
        .expect("RSET")
        .send("250 ok")
        .expect("QUIT")
        .send("221 bye");
    const Run r = run(peer, {{transaction({"b@d.test"})}});
    CHECK(r.peer_errors.empty());
    REQUIRE(r.bodies.size() == 1);
    CHECK(r.bodies[0] == ".\r\n");
    REQUIRE(r.results.size() == 1);
    CHECK(kinds(r.results[0].outcomes) == "failed");
    CHECK(r.results[0].outcomes[0].command == "RCPT TO");
}

TEST_CASE("content is dot-stuffed on the wire and always ends with CRLF") {
    auto peer = greeted("PIPELINING");
    peer.expect("MAIL FROM:<a@s.test>")
        .expect("RCPT TO:<b@d.test>")
        .expect("DATA")
        .send("250 ok")
        .send("250 ok")
        .send("354 go")
        .expect_data()
        .send("250 ok")
        .expect("QUIT")
        .send("221 bye");
    const std::string content = ".starts\r\nmiddle\r\n.\r\n..x\r\nlast line without CRLF";
    const Run r = run(peer, {{transaction({"b@d.test"}, content)}});
    CHECK(r.peer_errors.empty());
    REQUIRE(r.bodies.size() == 1);
    CHECK(r.bodies[0] == "..starts\r\nmiddle\r\n..\r\n...x\r\nlast line without CRLF\r\n.\r\n");
}

TEST_CASE("DotStuffer gives the same wire form for any chunk size") {
    struct Case {
        std::string content;
        std::string wire;
    };
    const std::vector<Case> cases{
        {"", ".\r\n"},
        {"\r\n", "\r\n.\r\n"},
        {".", "..\r\n.\r\n"},
        {"a\r\n.\r\n", "a\r\n..\r\n.\r\n"},
        {"a\r\n..x\r\n", "a\r\n...x\r\n.\r\n"},
        {"no end", "no end\r\n.\r\n"},
        {"bare\nlf\n.x", "bare\r\nlf\r\n..x\r\n.\r\n"},
        {"bare\rcr\r.\r\n", "bare\r\ncr\r\n..\r\n.\r\n"},
        {"smuggle\r\n.\n", "smuggle\r\n..\r\n.\r\n"},
        {"x.\r\n y", "x.\r\n y\r\n.\r\n"},
    };
    for (const auto& c : cases) {
        for (std::size_t chunk = 1; chunk <= c.content.size() + 8; ++chunk) {
            CAPTURE(c.content);
            CAPTURE(chunk);
            smtp::DotStuffer stuffer(c.content);
            std::string wire;
            int rounds = 0;
            while (!stuffer.done() && rounds++ < 1000) {
                const std::size_t before = wire.size();
                (void)stuffer.next(wire, chunk);
                CHECK(wire.size() - before <= chunk + 8);
            }
            CHECK(wire == c.wire);
        }
    }
}

TEST_CASE("a message larger than the server's SIZE fails with 5.3.4 before MAIL is sent") {
    auto peer = greeted("PIPELINING\nSIZE 30");
    peer.expect("MAIL FROM:<a@s.test> SIZE=5")
        .expect("RCPT TO:<b@d.test>")
        .expect("DATA")
        .send("250 ok")
        .send("250 ok")
        .send("354 go")
        .expect_data()
        .send("250 ok")
        .expect("QUIT")
        .send("221 bye");
    const Run r = run(peer, {{transaction({"b@d.test", "c@d.test"}, std::string(31, 'x')),
                              transaction({"b@d.test"}, "small")}});
    CHECK(r.peer_errors.empty());
    REQUIRE(r.results.size() == 2);
    CHECK(kinds(r.results[0].outcomes) == "failed failed");
    const auto& o = r.results[0].outcomes[0];
    CHECK(o.code == 552);
    CHECK(o.enhanced == "5.3.4");
    CHECK(o.local);
    CHECK(o.scope == OutcomeScope::Message);
    CHECK_FALSE(r.results[0].mail_accepted);
    CHECK(kinds(r.results[1].outcomes) == "delivered");
}

TEST_CASE("SMTPUTF8 is required only when the message needs it and fails 5.6.7 without it") {
    SUBCASE("a UTF-8 recipient to a server without SMTPUTF8 fails, nothing is sent") {
        auto peer = greeted("PIPELINING");
        peer.expect("QUIT").send("221 bye");
        auto t = transaction({"j\xc3\xb6rg@d.test"});
        t.envelope.smtputf8 = true;
        const Run r = run(peer, {{t}});
        CHECK(r.peer_errors.empty());
        REQUIRE(r.results.size() == 1);
        CHECK(kinds(r.results[0].outcomes) == "failed");
        CHECK(r.results[0].outcomes[0].enhanced == "5.6.7");
        CHECK(r.results[0].outcomes[0].code == 550);
    }
    SUBCASE("a declared but all-ASCII message goes without SMTPUTF8") {
        auto peer = greeted("PIPELINING");
        peer.expect("MAIL FROM:<a@s.test>")
            .expect("RCPT TO:<b@d.test>")
            .expect("DATA")
            .send("250 ok")
            .send("250 ok")
            .send("354 go")
            .expect_data()
            .send("250 ok")
            .expect("QUIT")
            .send("221 bye");
        auto t = transaction({"b@d.test"});
        t.envelope.smtputf8 = true;
        const Run r = run(peer, {{t}});
        CHECK(r.peer_errors.empty());
        REQUIRE(r.results.size() == 1);
        CHECK(kinds(r.results[0].outcomes) == "delivered");
    }
    SUBCASE("a UTF-8 header in a declared message to a server with SMTPUTF8 says so in MAIL") {
        auto peer = greeted("PIPELINING\nSMTPUTF8\n8BITMIME");
        peer.expect("MAIL FROM:<a@s.test> BODY=8BITMIME SMTPUTF8")
            .expect("RCPT TO:<b@d.test>")
            .expect("DATA")
            .send("250 ok")
            .send("250 ok")
            .send("354 go")
            .expect_data()
            .send("250 ok")
            .expect("QUIT")
            .send("221 bye");
        auto t = transaction({"b@d.test"}, "Subject: gr\xc3\xbc\xc3\x9f"
                                           "e\r\n\r\nbody\r\n");
        t.envelope.smtputf8 = true;
        t.envelope.body = core::BodyType::EightBitMime;
        const Run r = run(peer, {{t}});
        CHECK(r.peer_errors.empty());
        REQUIRE(r.results.size() == 1);
        CHECK(kinds(r.results[0].outcomes) == "delivered");
    }
}

TEST_CASE("needs_smtputf8 looks at envelope addresses always and headers only when declared") {
    core::Envelope env;
    env.mail_from = "a@s.test";
    const std::vector<core::RecipientSpec> ascii{{"b@d.test", {}, 0}};
    const std::vector<core::RecipientSpec> utf8{{"\xc3\xa9@d.test", {}, 0}};
    const std::string utf8_header = "Subject: \xc3\xa9\r\n\r\nx\r\n";
    const std::string utf8_body = "Subject: x\r\n\r\n\xc3\xa9\r\n";
    CHECK_FALSE(smtp::needs_smtputf8(env, ascii, utf8_header));
    CHECK(smtp::needs_smtputf8(env, utf8, "x"));
    env.smtputf8 = true;
    CHECK(smtp::needs_smtputf8(env, ascii, utf8_header));
    CHECK_FALSE(smtp::needs_smtputf8(env, ascii, utf8_body));
    env.mail_from = "\xc3\xa9@s.test";
    env.smtputf8 = false;
    CHECK(smtp::needs_smtputf8(env, ascii, "x"));
}

TEST_CASE("DSN parameters go out only to servers that offer DSN") {
    core::Envelope env;
    env.mail_from = "a@s.test";
    env.ret = core::DsnRet::Full;
    env.envid = "id+1 x";
    const core::RecipientSpec rcpt{"b@d.test", "rfc822;B+x@d.test",
                                   core::kNotifySuccess | core::kNotifyFailure};
    smtp::Capabilities with;
    with.dsn = true;
    const smtp::Capabilities without;
    CHECK(smtp::mail_command(env, 10, false, with) ==
          "MAIL FROM:<a@s.test> RET=FULL ENVID=id+2B1+20x");
    CHECK(smtp::mail_command(env, 10, false, without) == "MAIL FROM:<a@s.test>");
    CHECK(smtp::rcpt_command(rcpt, with) ==
          "RCPT TO:<b@d.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+2Bx@d.test");
    CHECK(smtp::rcpt_command(rcpt, without) == "RCPT TO:<b@d.test>");
    const core::RecipientSpec never{"b@d.test", "", core::kNotifyNever};
    CHECK(smtp::rcpt_command(never, with) == "RCPT TO:<b@d.test> NOTIFY=NEVER");
    env.ret = core::DsnRet::Headers;
    env.envid.clear();
    CHECK(smtp::mail_command(env, 10, false, with) == "MAIL FROM:<a@s.test> RET=HDRS");

    // The same through a session, so the parameters really reach the server.
    auto peer = greeted("PIPELINING\nDSN");
    peer.expect("MAIL FROM:<a@s.test> RET=HDRS")
        .expect("RCPT TO:<b@d.test> NOTIFY=NEVER")
        .expect("DATA")
        .send("250 ok")
        .send("250 ok")
        .send("354 go")
        .expect_data()
        .send("250 ok")
        .expect("QUIT")
        .send("221 bye");
    auto t = transaction({});
    t.envelope = env;
    t.recipients = {never};
    const Run r = run(peer, {{t}});
    CHECK(r.peer_errors.empty());
    REQUIRE(r.results.size() == 1);
    CHECK(kinds(r.results[0].outcomes) == "delivered");
}

TEST_CASE("EHLO keywords are parsed case-insensitively with the SIZE limit") {
    const auto caps = smtp::parse_capabilities(smtp::make_reply(
        250, "", "mx.test\npipelining\nSize 1000\nSTARTTLS\nCHUNKING\nDSN\nSMTPUTF8\n8bitmime"));
    CHECK(caps.esmtp);
    CHECK(caps.pipelining);
    CHECK(caps.starttls);
    CHECK(caps.chunking);
    CHECK(caps.dsn);
    CHECK(caps.smtputf8);
    CHECK(caps.eightbitmime);
    REQUIRE(caps.size);
    CHECK(*caps.size == 1000);
    CHECK(*smtp::parse_capabilities(smtp::make_reply(250, "", "mx\nSIZE")).size == 0);
    CHECK_FALSE(smtp::parse_capabilities(smtp::make_reply(250, "", "mx\nSIZE lots")).size);
    CHECK_FALSE(
        smtp::parse_capabilities(smtp::make_reply(250, "", "mx.test PIPELINING")).pipelining);
}

TEST_CASE("RSET between messages keeps a reused connection in step") {
    auto peer = greeted("PIPELINING");
    for (int i = 0; i < 2; ++i) {
        if (i == 1)
            peer.expect("RSET").send("250 ok");
        peer.expect("MAIL FROM:<a@s.test>")
            .expect("RCPT TO:<b@d.test>")
            .expect("DATA")
            .send("250 ok")
            .send("250 ok")
            .send("354 go")
            .expect_data()
            .send("250 ok");
    }
    peer.expect("QUIT").send("221 bye");
    Plan plan{{transaction({"b@d.test"}), transaction({"b@d.test"})}, true};
    const Run r = run(peer, plan);
    CHECK(r.peer_errors.empty());
    REQUIRE(r.results.size() == 2);
    CHECK(kinds(r.results[1].outcomes) == "delivered");
}

TEST_CASE("a 421 in the middle of the transaction defers the rest and ends the session") {
    auto peer = greeted("8BITMIME");
    peer.expect("MAIL FROM:<a@s.test>")
        .send("250 ok")
        .expect("RCPT TO:<b@d.test>")
        .send("550 5.1.1 unknown")
        .expect("RCPT TO:<c@d.test>")
        .send("421 4.3.2 shutting down")
        .hang_up();
    const Run r = run(peer, {{transaction({"b@d.test", "c@d.test", "e@d.test"})}});
    CHECK(r.peer_errors.empty());
    REQUIRE(r.results.size() == 1);
    const auto& out = r.results[0].outcomes;
    CHECK(kinds(out) == "failed deferred deferred");
    CHECK(out.at(1).code == 421);
    CHECK(out.at(1).scope == OutcomeScope::Site);
    CHECK(out.at(2).code == 421);
    CHECK_FALSE(r.usable_after);
}

TEST_CASE("garbage from the peer defers with a protocol error and never delivers") {
    struct Case {
        std::string name;
        test::ScriptedPeer peer;
    };
    std::vector<Case> cases;
    cases.push_back({"garbage greeting", test::ScriptedPeer().send_raw("hello there\r\n")});
    cases.push_back({"code out of range", test::ScriptedPeer().send_raw("999 what\r\n")});
    cases.push_back({"mixed codes", greeted("PIPELINING")
                                        .expect("MAIL FROM:<a@s.test>")
                                        .expect("RCPT TO:<b@d.test>")
                                        .expect("DATA")
                                        .send_raw("250-ok\r\n550 no\r\n")});
    cases.push_back({"3xx to MAIL", greeted("").expect("MAIL FROM:<a@s.test>").send("354 what")});
    cases.push_back({"2xx to DATA", greeted("")
                                        .expect("MAIL FROM:<a@s.test>")
                                        .send("250 ok")
                                        .expect("RCPT TO:<b@d.test>")
                                        .send("250 ok")
                                        .expect("DATA")
                                        .send("250 ok")});
    cases.push_back({"garbage after the dot", greeted("PIPELINING")
                                                  .expect("MAIL FROM:<a@s.test>")
                                                  .expect("RCPT TO:<b@d.test>")
                                                  .expect("DATA")
                                                  .send("250 ok")
                                                  .send("250 ok")
                                                  .send("354 go")
                                                  .expect_data()
                                                  .send_raw("25O queued\r\n")});
    cases.push_back({"354 after the dot", greeted("PIPELINING")
                                              .expect("MAIL FROM:<a@s.test>")
                                              .expect("RCPT TO:<b@d.test>")
                                              .expect("DATA")
                                              .send("250 ok")
                                              .send("250 ok")
                                              .send("354 go")
                                              .expect_data()
                                              .send("354 again")});
    std::string endless = "250-mx.test\r\n";
    for (int i = 0; i < 5000; ++i)
        endless += "250-FILLER keyword to exhaust memory\r\n";
    cases.push_back(
        {"endless EHLO reply",
         test::ScriptedPeer().send("220 mx.test").expect("EHLO client.test").send_raw(endless)});
    cases.push_back({"line without end", test::ScriptedPeer().send_raw(std::string(5000, '2'))});
    for (auto& c : cases) {
        CAPTURE(c.name);
        const Run r = run(c.peer, {{transaction({"b@d.test"})}});
        std::vector<core::Outcome> all;
        if (r.opened)
            all.push_back(*r.opened);
        for (const auto& t : r.results)
            all.insert(all.end(), t.outcomes.begin(), t.outcomes.end());
        REQUIRE_FALSE(all.empty());
        for (const auto& o : all) {
            CAPTURE(o.summary());
            CHECK(o.kind == OutcomeKind::Deferred);
            CHECK(o.enhanced == "4.5.0");
        }
    }
}

namespace {

// A complete, successful pipelined conversation; the final reply carries a
// marker the fault tests look for.
test::ScriptedPeer full_script() {
    auto peer = greeted("PIPELINING\nSIZE 100000");
    peer.expect("MAIL FROM:<a@s.test> SIZE=" + std::to_string(kContent.size()))
        .expect("RCPT TO:<b@d.test>")
        .expect("RCPT TO:<c@d.test>")
        .expect("DATA")
        .send("250 ok")
        .send("250 ok")
        .send("250 ok")
        .send("354 go")
        .expect_data()
        .send("250 2.0.0 MARKER-queued")
        .expect("QUIT")
        .send("221 bye");
    return peer;
}

} // namespace

TEST_CASE("a peer that hangs up at any step never yields a delivered recipient") {
    const auto script = full_script();
    for (std::size_t steps = 0; steps <= script.size(); ++steps) {
        CAPTURE(steps);
        const Run r = run(script.truncated(steps), {{transaction({"b@d.test", "c@d.test"})}});
        // Step 12 sends the final 250; only a script that got that far delivers.
        const bool final_reply_sent = steps > 12;
        std::vector<core::Outcome> all;
        if (r.opened)
            all.push_back(*r.opened);
        for (const auto& t : r.results)
            all.insert(all.end(), t.outcomes.begin(), t.outcomes.end());
        REQUIRE_FALSE(all.empty());
        for (const auto& o : all) {
            CAPTURE(o.summary());
            if (final_reply_sent) {
                CHECK(o.kind == OutcomeKind::Delivered);
            } else {
                CHECK(o.kind == OutcomeKind::Deferred);
                CHECK(o.enhanced == "4.4.2");
                CHECK(o.local);
            }
        }
    }
}

TEST_CASE("failing the Nth read or write, for every N, defers unless the final 250 was read") {
    for (const auto fault :
         {test::FaultyTransport::Fault::Reset, test::FaultyTransport::Fault::Timeout}) {
        bool completed = false;
        for (std::size_t n = 1; n < 100 && !completed; ++n) {
            CAPTURE(n);
            CAPTURE(static_cast<int>(fault));
            auto log = std::make_shared<test::OperationLog>();
            const Wrap wrap = [&](std::unique_ptr<smtp::Transport> inner) {
                return std::make_unique<test::FaultyTransport>(std::move(inner), n, fault, log);
            };
            const Run r =
                run(full_script(), {{transaction({"b@d.test", "c@d.test"})}}, settings(), wrap);
            std::erase_if(log->entries, [](const auto& e) { return e.rfind("d:", 0) == 0; });
            const auto failed_at =
                std::find(log->entries.begin(), log->entries.end(), std::string("x:"));
            completed = failed_at == log->entries.end();
            const bool marker_read =
                std::any_of(log->entries.begin(), failed_at, [](const auto& e) {
                    return e.rfind("r:", 0) == 0 && e.find("MARKER") != std::string::npos;
                });
            std::vector<core::Outcome> all;
            if (r.opened)
                all.push_back(*r.opened);
            for (const auto& t : r.results)
                all.insert(all.end(), t.outcomes.begin(), t.outcomes.end());
            REQUIRE_FALSE(all.empty());
            for (const auto& o : all) {
                CAPTURE(o.summary());
                if (marker_read) {
                    CHECK(o.kind == OutcomeKind::Delivered);
                    continue;
                }
                CHECK(o.kind == OutcomeKind::Deferred);
                CHECK(o.enhanced == "4.4.2");
                const bool says_timeout = o.text.find("timed out") != std::string::npos;
                CHECK(says_timeout == (fault == test::FaultyTransport::Fault::Timeout));
            }
        }
        CHECK(completed);
    }
}

TEST_CASE("every phase runs under its own deadline from ClientTimeouts") {
    auto s = settings();
    auto& t = s.timeouts;
    t.greeting = std::chrono::milliseconds(1);
    t.ehlo = std::chrono::milliseconds(2);
    t.mail = std::chrono::milliseconds(3);
    t.rcpt = std::chrono::milliseconds(4);
    t.data = std::chrono::milliseconds(5);
    t.data_block = std::chrono::milliseconds(6);
    t.dot = std::chrono::milliseconds(7);
    t.rset = std::chrono::milliseconds(8);
    t.quit = std::chrono::milliseconds(9);
    auto peer = greeted("8BITMIME");
    peer.expect("MAIL FROM:<a@s.test>")
        .send("250 ok")
        .expect("RCPT TO:<b@d.test>")
        .send("250 ok")
        .expect("DATA")
        .send("354 go")
        .expect_data()
        .send("250 ok")
        .expect("RSET")
        .send("250 ok")
        .expect("QUIT")
        .send("221 bye");
    auto log = std::make_shared<test::OperationLog>();
    const Wrap wrap = [&](std::unique_ptr<smtp::Transport> inner) {
        return std::make_unique<test::FaultyTransport>(std::move(inner), 0,
                                                       test::FaultyTransport::Fault::Reset, log);
    };
    Plan plan{{transaction({"b@d.test"}), transaction({})}, true};
    const Run r = run(peer, plan, s, wrap);
    CHECK(r.peer_errors.empty());
    // Each deadline, then the operation it covers (reads and writes abridged).
    std::string got;
    for (const auto& e : log->entries) {
        if (e.rfind("d:", 0) == 0)
            got += (got.empty() ? "" : " ") + e.substr(2);
        else if (e.rfind("w:", 0) == 0)
            got += "w";
        else if (e.rfind("r:", 0) == 0)
            got += "r";
    }
    CHECK(got == "1r 2w 2r 3w 3r 4w 4r 5w 5r 6w 7r 8w 8r 9w 9r");
}

namespace {

std::shared_ptr<asio::ssl::context> client_tls() {
    std::string error;
    auto ctx = smtp::make_client_tls_context("", error);
    REQUIRE_MESSAGE(ctx, error);
    return ctx;
}

} // namespace

TEST_CASE("TLS policy required defers with 4.7.4 when STARTTLS is not offered or refused") {
    SUBCASE("not offered") {
        auto peer = greeted("PIPELINING");
        peer.expect("QUIT").send("221 bye");
        auto s = settings(smtp::TlsPolicy::Required);
        s.tls_context = client_tls();
        const Run r = run(peer, {{transaction({"b@d.test"})}}, s);
        CHECK(r.peer_errors.empty());
        REQUIRE(r.opened);
        CHECK(r.opened->kind == OutcomeKind::Deferred);
        CHECK(r.opened->enhanced == "4.7.4");
        CHECK(r.opened->text == "TLS is required, but was not offered by host mx.test[192.0.2.1]");
    }
    SUBCASE("refused") {
        auto peer = greeted("STARTTLS");
        peer.expect("STARTTLS").send("454 4.7.0 TLS not available").expect("QUIT").send("221 bye");
        auto s = settings(smtp::TlsPolicy::Required);
        s.tls_context = client_tls();
        const Run r = run(peer, {{transaction({"b@d.test"})}}, s);
        CHECK(r.peer_errors.empty());
        REQUIRE(r.opened);
        CHECK(r.opened->enhanced == "4.7.4");
    }
    SUBCASE("no client TLS context") {
        auto peer = greeted("STARTTLS");
        peer.expect("QUIT").send("221 bye");
        const Run r = run(peer, {{transaction({"b@d.test"})}}, settings(smtp::TlsPolicy::Required));
        REQUIRE(r.opened);
        CHECK(r.opened->enhanced == "4.7.4");
    }
}

TEST_CASE("opportunistic TLS goes on in plaintext when STARTTLS is refused") {
    auto peer = greeted("STARTTLS\nPIPELINING");
    peer.expect("STARTTLS")
        .send("454 4.7.0 not now")
        .expect("MAIL FROM:<a@s.test>")
        .expect("RCPT TO:<b@d.test>")
        .expect("DATA")
        .send("250 ok")
        .send("250 ok")
        .send("354 go")
        .expect_data()
        .send("250 ok")
        .expect("QUIT")
        .send("221 bye");
    auto s = settings(smtp::TlsPolicy::Opportunistic);
    s.tls_context = client_tls();
    const Run r = run(peer, {{transaction({"b@d.test"})}}, s);
    CHECK(r.peer_errors.empty());
    REQUIRE(r.results.size() == 1);
    CHECK(kinds(r.results[0].outcomes) == "delivered");
}

TEST_CASE("a failed TLS handshake defers with 4.7.5 and is reported for a plaintext retry") {
    auto peer = greeted("STARTTLS");
    peer.expect("STARTTLS").send("220 2.0.0 go ahead").hang_up();
    auto s = settings(smtp::TlsPolicy::Opportunistic);
    s.tls_context = client_tls();
    const Run r = run(peer, {{transaction({"b@d.test"})}}, s); // MemoryTransport has no TLS
    REQUIRE(r.opened);
    CHECK(r.opened->kind == OutcomeKind::Deferred);
    CHECK(r.opened->enhanced == "4.7.5");
    CHECK(r.tls_handshake_failed);
}

TEST_CASE("plaintext sent after the 220 to STARTTLS is refused as response injection") {
    auto peer = greeted("STARTTLS");
    peer.expect("STARTTLS").send("220 go ahead\r\n250 injected").hang_up();
    auto s = settings(smtp::TlsPolicy::Opportunistic);
    s.tls_context = client_tls();
    const Run r = run(peer, {{transaction({"b@d.test"})}}, s);
    REQUIRE(r.opened);
    CHECK(r.opened->enhanced == "4.5.0");
    CHECK(r.opened->text.find("injection") != std::string::npos);
    CHECK_FALSE(r.tls_handshake_failed);
}

namespace {

// One delivered pipelined transaction for b@d.test.
void pipelined_delivery(test::ScriptedPeer& peer) {
    peer.expect("MAIL FROM:<a@s.test>")
        .expect("RCPT TO:<b@d.test>")
        .expect("DATA")
        .send("250 ok")
        .send("250 ok")
        .send("354 go")
        .expect_data()
        .send("250 ok");
}

} // namespace

TEST_CASE("on a reused connection with PIPELINING, RSET leads the MAIL/RCPT/DATA group") {
    auto peer = greeted("PIPELINING");
    pipelined_delivery(peer);
    peer.expect("RSET")
        .expect("MAIL FROM:<a@s.test>")
        .expect("RCPT TO:<b@d.test>")
        .expect("DATA")
        .send("250 2.0.0 reset")
        .send("250 ok")
        .send("250 ok")
        .send("354 go")
        .expect_data()
        .send("250 2.0.0 queued");
    peer.expect("QUIT").send("221 bye");
    Plan plan{{transaction({"b@d.test"}), transaction({"b@d.test"})}};
    plan.send_reused = true;
    const Run r = run(peer, plan);
    CHECK(r.peer_errors.empty());
    REQUIRE(r.results.size() == 2);
    CHECK_FALSE(r.results[1].reset_failed);
    CHECK(kinds(r.results[1].outcomes) == "delivered");
    CHECK(has_read(r, "RSET\r\nMAIL FROM:<a@s.test>\r\nRCPT TO:<b@d.test>\r\nDATA\r\n"));
    CHECK(r.bodies.size() == 2);
}

TEST_CASE("a failed pipelined RSET drops the connection and decides nothing") {
    struct Case {
        std::string name;
        std::string rset_reply; // "" hangs up instead of answering
    };
    const std::vector<Case> cases{
        {"transient refusal", "451 4.3.0 try again"},
        {"permanent refusal", "502 5.5.1 RSET not implemented"},
        {"421 closing", "421 4.4.2 idle too long"},
        {"hang-up", ""},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        auto peer = greeted("PIPELINING");
        pipelined_delivery(peer);
        peer.expect("RSET")
            .expect("MAIL FROM:<a@s.test>")
            .expect("RCPT TO:<b@d.test>")
            .expect("DATA");
        if (c.rset_reply.empty())
            peer.hang_up();
        else // the rest of the group is answered; the client must not go on
            peer.send(c.rset_reply).send("250 ok").send("250 ok").send("354 go").expect_data();
        Plan plan{{transaction({"b@d.test"}), transaction({"b@d.test"})}};
        plan.send_reused = true;
        const Run r = run(peer, plan);
        REQUIRE(r.results.size() == 2);
        CHECK(r.results[1].reset_failed);
        CHECK_FALSE(r.results[1].mail_accepted);
        REQUIRE(r.results[1].outcomes.size() == 1);
        CHECK(r.results[1].outcomes[0].kind != OutcomeKind::Delivered);
        CHECK_FALSE(r.usable_after);
        CHECK(r.bodies.size() == 1); // no content went out after the failed RSET
        CHECK(received(r).find("QUIT") == std::string::npos); // would be read as content
    }
}

TEST_CASE("without PIPELINING a refused RSET is answered with QUIT and decides nothing") {
    auto peer = greeted("8BITMIME");
    peer.expect("MAIL FROM:<a@s.test>")
        .send("250 ok")
        .expect("RCPT TO:<b@d.test>")
        .send("250 ok")
        .expect("DATA")
        .send("354 go")
        .expect_data()
        .send("250 ok");
    peer.expect("RSET").send("500 5.5.1 no").expect("QUIT").send("221 bye");
    Plan plan{{transaction({"b@d.test"}), transaction({"b@d.test"})}};
    plan.send_reused = true;
    const Run r = run(peer, plan);
    CHECK(r.peer_errors.empty());
    REQUIRE(r.results.size() == 2);
    CHECK(r.results[1].reset_failed);
    CHECK(kinds(r.results[1].outcomes) == "failed"); // what RSET got; the agent discards it
    CHECK(received(r).find("MAIL FROM", received(r).find("RSET")) == std::string::npos);
}
