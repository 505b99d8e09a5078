#include "smtp/server_session.hpp"

#include "smtp/server_metrics.hpp"
#include "tests/support/memory_transport.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/_experimental/test/fail_count.hpp>
#include <doctest/doctest.h>
#include <prometheus/registry.h>

#include <map>
#include <set>
#include <string>
#include <vector>

using namespace ember;
using namespace std::string_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;

namespace {

class FakeSink final : public smtp::MessageSink {
public:
    std::string new_queue_id() override { return "QID" + std::to_string(++ids_); }
    asio::awaitable<smtp::SinkStatus> commit(smtp::AcceptedMessage m) override {
        if (status == smtp::SinkStatus::Ok)
            messages.push_back(std::move(m));
        co_return status;
    }
    smtp::SinkStatus status = smtp::SinkStatus::Ok;
    std::vector<smtp::AcceptedMessage> messages;

private:
    int ids_ = 0;
};

class FakeAuth final : public smtp::Authenticator {
public:
    bool has_users() const override { return !users.empty(); }
    asio::awaitable<bool> verify(std::string user, std::string password) override {
        const auto it = users.find(user);
        co_return it != users.end() && it->second == password;
    }
    bool blocked(const core::IpAddress& ip) override { return failures[ip] >= 3; }
    void record_failure(const core::IpAddress& ip) override { ++failures[ip]; }
    std::map<std::string, std::string> users{{"alice", "secret"}};
    std::map<core::IpAddress, int> failures;
};

struct Fixture {
    asio::io_context io;
    FakeSink sink;
    FakeAuth auth;
    prometheus::Registry registry;
    smtp::ServerMetrics metrics{registry};
    smtp::ServerContext ctx{settings(), sink, auth, metrics, {}, {}};
    smtp::ListenerConfig listener;
    core::IpAddress client = *core::IpAddress::parse("127.0.0.1");

    static std::shared_ptr<const smtp::ServerSettings> settings(smtp::Limits limits = {}) {
        auto s = std::make_shared<smtp::ServerSettings>();
        s->hostname = "mx.test";
        s->limits = limits;
        s->trusted_networks = {*core::Cidr::parse("127.0.0.0/8")};
        return s;
    }

    void set_limits(smtp::Limits limits) { ctx.settings = settings(limits); }

    // Feeds `input` as if the client had sent it all at once (read in chunks
    // of `read_size` bytes), then closes; returns everything the server wrote.
    std::string run(const std::string& input, std::size_t read_size = 65536,
                    beast::test::fail_count* fail = nullptr) {
        beast::test::stream server =
            fail ? beast::test::stream(io, *fail) : beast::test::stream(io);
        beast::test::stream peer(io);
        server.connect(peer);
        server.append(input);
        server.read_size(read_size);
        peer.close(); // the client sends nothing more: EOF after the input
        asio::co_spawn(
            io,
            smtp::serve_session(std::make_unique<test::MemoryTransport>(std::move(server)),
                                listener, ctx, client),
            [](std::exception_ptr e) {
                if (e)
                    std::rethrow_exception(e);
            });
        io.run();
        io.restart();
        return std::string(peer.str());
    }
};

// The reply codes in order, e.g. "220 250 250 250 354 250 221".
std::string codes(const std::string& output) {
    std::string out;
    std::size_t pos = 0;
    while (pos < output.size()) {
        const auto end = output.find("\r\n", pos);
        const auto line = output.substr(pos, end - pos);
        if (line.size() >= 4 && line[3] == ' ')
            out += (out.empty() ? "" : " ") + line.substr(0, 3);
        if (end == std::string::npos)
            break;
        pos = end + 2;
    }
    return out;
}

const std::string kMessage = "From: <app@sender.example>\r\nTo: <a@dest.example>\r\n"
                             "Subject: hi\r\n\r\nHello.\r\n";

std::string transaction(const std::string& body = kMessage) {
    return "MAIL FROM:<app@sender.example>\r\nRCPT TO:<a@dest.example>\r\nDATA\r\n" + body +
           ".\r\n";
}

} // namespace

TEST_CASE("a complete transaction is committed and answered in order") {
    Fixture f;
    const auto out = f.run("EHLO client.test\r\n" + transaction() + "QUIT\r\n");
    CHECK(codes(out) == "220 250 250 250 354 250 221");
    CHECK(out.find("250 2.0.0 Ok: queued as QID1\r\n") != std::string::npos);
    REQUIRE(f.sink.messages.size() == 1);
    const auto& m = f.sink.messages[0];
    CHECK(m.envelope.mail_from == "app@sender.example");
    REQUIRE(m.envelope.recipients.size() == 1);
    CHECK(m.envelope.recipients[0].address == "a@dest.example");
    CHECK(m.content.starts_with("Received: from client.test ([127.0.0.1])\r\n"));
    CHECK(m.content.find("by mx.test (ember) with ESMTP id QID1\r\n\tfor <a@dest.example>;") !=
          std::string::npos);
    CHECK(m.content.find("Message-ID: <QID1@mx.test>\r\n") != std::string::npos);
    CHECK(m.content.find("\r\nDate: ") != std::string::npos);
    CHECK(m.content.ends_with(kMessage));
}

TEST_CASE("EHLO advertises the extensions; HELO answers with the host name only") {
    Fixture f;
    const auto out = f.run("EHLO c\r\nHELO c\r\n");
    for (const char* ext : {"PIPELINING", "SIZE 26214400", "8BITMIME", "SMTPUTF8",
                            "ENHANCEDSTATUSCODES", "DSN", "CHUNKING"}) {
        CAPTURE(ext);
        const bool advertised = out.find(std::string("250-") + ext) != std::string::npos ||
                                out.find(std::string("250 ") + ext) != std::string::npos;
        CHECK(advertised);
    }
    CHECK(out.find("STARTTLS") == std::string::npos); // no certificate configured
    CHECK(out.find("AUTH") == std::string::npos);     // no TLS, not allowed in the clear
    CHECK(out.find("\r\n250 mx.test\r\n") != std::string::npos);
}

TEST_CASE("pipelined input split at every byte boundary gives the same replies") {
    const std::string input = "EHLO client.test\r\n" + transaction() +
                              "MAIL FROM:<b@sender.example> SIZE=100\r\nRCPT TO:<x@d.example>\r\n"
                              "RCPT TO:<y@d.example> NOTIFY=NEVER\r\nDATA\r\n" +
                              kMessage + "..dot line\r\n.\r\nNOOP\r\nRSET\r\nQUIT\r\n";
    Fixture reference;
    const auto want = reference.run(input);
    REQUIRE(codes(want) == "220 250 250 250 354 250 250 250 250 354 250 250 250 221");
    for (std::size_t size = 1; size <= input.size(); ++size) {
        CAPTURE(size);
        Fixture f;
        const auto got = f.run(input, size);
        // Queue ids and Date: differ by run only in content, not in replies.
        CHECK(codes(got) == codes(want));
        REQUIRE(f.sink.messages.size() == 2);
        CHECK(f.sink.messages[1].content.ends_with(kMessage + ".dot line\r\n"));
    }
}

TEST_CASE("replies are held back while pipelined commands are waiting, then sent together") {
    // With everything buffered, the server writes once per batch; with
    // one-byte reads it must still answer every command exactly once.
    Fixture f;
    const auto out = f.run("EHLO c\r\nNOOP\r\nNOOP\r\nNOOP\r\nQUIT\r\n", 1);
    CHECK(codes(out) == "220 250 250 250 250 221");
}

TEST_CASE("every limit gets its RFC reply") {
    SUBCASE("too many recipients: 452 4.5.3, the accepted ones are kept") {
        Fixture f;
        smtp::Limits l;
        l.max_recipients = 2;
        f.set_limits(l);
        const auto out = f.run("EHLO c\r\nMAIL FROM:<a@s.example>\r\nRCPT TO:<1@d.example>\r\n"
                               "RCPT TO:<2@d.example>\r\nRCPT TO:<3@d.example>\r\nDATA\r\n" +
                               kMessage + ".\r\n");
        CHECK(out.find("452 4.5.3") != std::string::npos);
        REQUIRE(f.sink.messages.size() == 1);
        CHECK(f.sink.messages[0].envelope.recipients.size() == 2);
    }
    SUBCASE("SIZE over the limit: 552 5.3.4 at MAIL") {
        Fixture f;
        const auto out = f.run("EHLO c\r\nMAIL FROM:<a@s.example> SIZE=999999999\r\n");
        CHECK(out.find("552 5.3.4") != std::string::npos);
    }
    SUBCASE("content over the limit: 552 5.3.4 after the data, nothing committed") {
        Fixture f;
        smtp::Limits l;
        l.max_message_size = core::ByteSize{1024};
        f.set_limits(l);
        std::string body = kMessage;
        for (int i = 0; i < 40; ++i)
            body += std::string(70, 'x') + "\r\n";
        const auto out = f.run("EHLO c\r\n" + transaction(body) + "NOOP\r\n");
        CHECK(codes(out) == "220 250 250 250 354 552 250");
        CHECK(f.sink.messages.empty());
    }
    SUBCASE("command line over 2048 octets: 500 5.5.2, the session goes on") {
        Fixture f;
        const auto out = f.run("EHLO c\r\nNOOP " + std::string(5000, 'a') + "\r\nNOOP\r\n");
        CHECK(codes(out) == "220 250 500 250");
        CHECK(out.find("500 5.5.2 Line too long") != std::string::npos);
    }
    SUBCASE("message line over 998 octets: 500 5.5.2") {
        Fixture f;
        const auto out =
            f.run("EHLO c\r\n" + transaction(kMessage + std::string(1200, 'x') + "\r\n"));
        CHECK(codes(out) == "220 250 250 250 354 500");
        CHECK(f.sink.messages.empty());
    }
    SUBCASE("too many errors: 421 4.7.0 and the session ends") {
        Fixture f;
        smtp::Limits l;
        l.max_errors = 3;
        f.set_limits(l);
        const auto out = f.run("BOGUS\r\nBOGUS\r\nBOGUS\r\nNOOP\r\n");
        CHECK(codes(out) == "220 500 500 500 421");
    }
}

TEST_CASE("a recipient from an untrusted, unauthenticated client is refused: no open relay") {
    for (const auto mode : {smtp::ListenerMode::Submission, smtp::ListenerMode::Inbound}) {
        Fixture f;
        f.listener.mode = mode;
        f.client = *core::IpAddress::parse("203.0.113.9");
        const auto out = f.run("EHLO c\r\nMAIL FROM:<a@s.example>\r\nRCPT TO:<a@dest.example>\r\n"
                               "DATA\r\n");
        CHECK(codes(out) == "220 250 250 554 554");
        CHECK(out.find("554 5.7.1 <a@dest.example>: Relay access denied") != std::string::npos);
        CHECK(f.sink.messages.empty());
    }
}

// Answers by the recipient's local part: "local*" are ours, "gone*" are
// refused (a suppressed address), anything else is left to the relay rules.
struct ScriptedRecipients final : smtp::RecipientPolicy {
    std::vector<smtp::RecipientCheck> seen;
    smtp::RecipientVerdict check_recipient(const smtp::RecipientCheck& check) override {
        seen.push_back(check);
        smtp::RecipientVerdict v;
        if (check.recipient.starts_with("local"))
            v.kind = smtp::RecipientVerdict::Kind::Local;
        else if (check.recipient.starts_with("gone")) {
            v.kind = smtp::RecipientVerdict::Kind::Refuse;
            v.reply = {false, 550, "5.7.1", "<gone@d.example>: suppressed (unsubscribe)"};
        }
        return v;
    }
};

TEST_CASE("our own feedback addresses are taken from anyone; the relay rules stay for the rest") {
    for (const auto mode : {smtp::ListenerMode::Submission, smtp::ListenerMode::Inbound}) {
        CAPTURE(static_cast<int>(mode));
        Fixture f;
        ScriptedRecipients policy;
        f.ctx.recipients = &policy;
        f.listener.mode = mode;
        f.client = *core::IpAddress::parse("203.0.113.9");
        const auto out = f.run("EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<other@d.example>\r\n"
                               "RCPT TO:<gone@d.example>\r\nRCPT TO:<local+tok@b.example>\r\n"
                               "DATA\r\n" +
                               kMessage + ".\r\n");
        CHECK(codes(out) == "220 250 250 554 550 250 354 250");
        CHECK(out.find("550 5.7.1 <gone@d.example>: suppressed") != std::string::npos);
        REQUIRE(f.sink.messages.size() == 1);
        CHECK(f.sink.messages[0].envelope.recipients.size() == 1);
        CHECK(f.sink.messages[0].info.mode == mode);
        REQUIRE(policy.seen.size() == 3);
        CHECK_FALSE(policy.seen[0].relay_allowed);
        CHECK(policy.seen[0].mail_from.empty());
        CHECK(policy.seen[0].mode == mode);
    }
}

TEST_CASE("a refused recipient is refused even for a trusted client") {
    Fixture f;
    ScriptedRecipients policy;
    f.ctx.recipients = &policy;
    const auto out = f.run("EHLO c\r\nMAIL FROM:<a@s.example>\r\nRCPT TO:<gone@d.example>\r\n"
                           "RCPT TO:<ok@d.example>\r\n");
    CHECK(codes(out) == "220 250 250 550 250");
    REQUIRE(policy.seen.size() == 2);
    CHECK(policy.seen[0].relay_allowed);
}

TEST_CASE("SMTP smuggling: a bare LF before the dot never ends DATA") {
    Fixture f;
    const std::string smuggled = kMessage + "\n.\nMAIL FROM:<evil@x.example>\r\n";
    const auto out = f.run("EHLO c\r\n" + transaction(smuggled) + "NOOP\r\n");
    CHECK(codes(out) == "220 250 250 250 354 550 250");
    CHECK(out.find("550 5.5.2") != std::string::npos);
    CHECK(f.sink.messages.empty());
}

TEST_CASE("AUTH PLAIN and LOGIN authenticate when the listener allows AUTH in the clear") {
    Fixture f;
    f.listener.auth = smtp::AuthPolicy::Required;
    f.listener.auth_without_tls = true;
    f.client = *core::IpAddress::parse("203.0.113.9");
    // base64("\0alice\0secret") and base64("alice"), base64("secret")
    const auto out =
        f.run("EHLO c\r\nMAIL FROM:<a@s.example>\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"
              "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n" +
              transaction());
    CHECK(codes(out) == "220 250 530 235 503 250 250 354 250");
    REQUIRE(f.sink.messages.size() == 1);
    CHECK(f.sink.messages[0].info.auth_user == "alice");
    CHECK(f.sink.messages[0].content.find("(Authenticated sender: alice)") != std::string::npos);
    CHECK(f.sink.messages[0].content.find("with ESMTPA id") != std::string::npos);

    Fixture g;
    g.listener.auth = smtp::AuthPolicy::Optional;
    g.listener.auth_without_tls = true;
    const auto login = g.run("EHLO c\r\nAUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n");
    CHECK(codes(login) == "220 250 334 334 235");
    CHECK(login.find("334 VXNlcm5hbWU6") != std::string::npos);
    Fixture h;
    h.listener.auth_without_tls = true;
    const auto plain = h.run("EHLO c\r\nAUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\n");
    CHECK(codes(plain) == "220 250 334 235");
}

TEST_CASE("AUTH failures: bad credentials, cancel, garbage, proxy authzid, then rate limit") {
    Fixture f;
    f.listener.auth_without_tls = true;
    // wrong password, "*" cancel, bad base64, authzid bob for alice, then 454 once blocked
    const auto out = f.run("EHLO c\r\nAUTH PLAIN AGFsaWNlAHdyb25n\r\nAUTH PLAIN\r\n*\r\n"
                           "AUTH PLAIN !!!\r\nAUTH PLAIN Ym9iAGFsaWNlAHNlY3JldA==\r\n"
                           "AUTH CRAM-MD5\r\nAUTH PLAIN AGFsaWNlAHdyb25n\r\n"
                           "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    CHECK(codes(out) == "220 250 535 334 501 501 535 504 535 454");
    CHECK(f.auth.failures[f.client] == 3);
}

TEST_CASE("AUTH needs TLS unless allowed in the clear: 538 5.7.11") {
    Fixture f;
    f.listener.auth = smtp::AuthPolicy::Optional;
    const auto out = f.run("EHLO c\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
    CHECK(codes(out) == "220 250 538");
    CHECK(out.find("AUTH PLAIN LOGIN") == std::string::npos);
}

TEST_CASE("plaintext pipelined behind STARTTLS is never executed") {
    Fixture f;
    f.listener.tls = smtp::TlsMode::StartTls;
    auto s = Fixture::settings();
    auto tls = std::make_shared<smtp::ServerSettings>(*s);
    tls->tls = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    f.ctx.settings = tls;
    const auto out = f.run("EHLO c\r\nSTARTTLS\r\nNOOP\r\nNOOP\r\n");
    // 220 for STARTTLS, then the (in-memory) handshake fails and the
    // session ends without answering the injected NOOPs.
    CHECK(codes(out) == "220 250 220");
}

TEST_CASE("BDAT: chunks form one message; refused chunks are still consumed") {
    Fixture f;
    const std::string half1 = kMessage.substr(0, 20);
    const std::string half2 = kMessage.substr(20);
    const auto out =
        f.run("EHLO c\r\nBDAT 5\r\nhelloMAIL FROM:<a@s.example>\r\n"
              "RCPT TO:<r@d.example>\r\nBDAT " +
              std::to_string(half1.size()) + "\r\n" + half1 + "BDAT " +
              std::to_string(half2.size()) + " LAST\r\n" + half2 + "DATA\r\nBDAT x\r\n");
    CHECK(codes(out) == "220 250 503 250 250 250 250 503 501");
    CHECK(out.find("250 2.0.0 20 octets received") != std::string::npos);
    REQUIRE(f.sink.messages.size() == 1);
    CHECK(f.sink.messages[0].content.ends_with(kMessage));
}

TEST_CASE("submissions need well-formed headers; inbound mail is taken as it comes") {
    const std::string no_from = "Subject: x\r\n\r\nbody\r\n";
    Fixture f;
    const auto out = f.run("EHLO c\r\n" + transaction(no_from));
    CHECK(codes(out) == "220 250 250 250 354 550");
    CHECK(out.find("550 5.6.0") != std::string::npos);
    Fixture g;
    g.listener.mode = smtp::ListenerMode::Inbound;
    const auto in = g.run("EHLO c\r\n" + transaction(no_from));
    CHECK(codes(in) == "220 250 250 250 354 250");
    REQUIRE(g.sink.messages.size() == 1);
    CHECK(g.sink.messages[0].content.find("Message-ID:") == std::string::npos);
}

TEST_CASE("storage failures are temporary replies and nothing is acknowledged") {
    const std::pair<smtp::SinkStatus, const char*> cases[] = {
        {smtp::SinkStatus::StorageFull, "452 4.3.1"},
        {smtp::SinkStatus::LocalError, "451 4.3.0"},
        {smtp::SinkStatus::ShuttingDown, "421 4.3.2"}};
    for (const auto& [status, reply] : cases) {
        CAPTURE(reply);
        Fixture f;
        f.sink.status = status;
        const auto out = f.run("EHLO c\r\n" + transaction());
        CHECK(out.find(reply) != std::string::npos);
        CHECK(out.find("queued as") == std::string::npos);
    }
}

TEST_CASE("failing the Nth stream operation never commits a partial message") {
    const std::string input = "EHLO c\r\n" + transaction() + "QUIT\r\n";
    for (std::size_t n = 1; n <= 40; ++n) {
        CAPTURE(n);
        Fixture f;
        beast::test::fail_count fail(n);
        const auto out = f.run(input, 7, &fail);
        const bool acknowledged = out.find("queued as") != std::string::npos;
        if (acknowledged) {
            REQUIRE(f.sink.messages.size() == 1);
        }
        for (const auto& m : f.sink.messages)
            CHECK(m.content.ends_with(kMessage));
    }
}

TEST_CASE("HTTP requests on the SMTP port end the session") {
    Fixture f;
    const auto out = f.run("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(codes(out) == "220 421");
}

namespace {

class FakePolicy final : public smtp::ContentPolicy {
public:
    asio::awaitable<smtp::PolicyVerdict> check(smtp::ContentCheck c) override {
        seen.push_back(c);
        co_return verdict;
    }
    smtp::PolicyVerdict verdict;
    std::vector<smtp::ContentCheck> seen;
};

} // namespace

TEST_CASE("the content policy sees From domains and its refusal is the reply, nothing queued") {
    const std::pair<smtp::PolicyVerdict, std::string> cases[] = {
        {{false, 550, "5.7.26", "From domain sender.example would fail DMARC"}, "550 5.7.26"},
        {{false, 451, "4.4.3", "DNS lookup failed"}, "451 4.4.3"}};
    for (const auto& [verdict, want] : cases) {
        CAPTURE(want);
        Fixture f;
        FakePolicy policy;
        policy.verdict = verdict;
        f.ctx.policy = &policy;
        const auto out = f.run("EHLO c\r\n" +
                               transaction("From: A <a@Sender.Example>, b@other.example\r\n"
                                           "Sender: a@sender.example\r\n\r\nHi\r\n") +
                               "NOOP\r\n");
        CHECK(out.find(want) != std::string::npos);
        CHECK(f.sink.messages.empty());
        REQUIRE(policy.seen.size() == 1);
        CHECK(policy.seen[0].from_domains ==
              std::vector<std::string>{"sender.example", "other.example"});
        CHECK(policy.seen[0].envelope.mail_from == "app@sender.example");
    }
    Fixture ok;
    FakePolicy pass;
    ok.ctx.policy = &pass;
    (void)ok.run("EHLO c\r\n" + transaction());
    CHECK(ok.sink.messages.size() == 1);
}
