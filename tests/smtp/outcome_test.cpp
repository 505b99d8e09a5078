#include "smtp/outcome.hpp"

#include "dns/mail_hosts.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace ember;
using core::OutcomeKind;
using core::OutcomeScope;

namespace {

const smtp::PeerName kPeer{"mx.d.test", "192.0.2.7"};

std::string kind_of(OutcomeKind k) {
    return std::string(core::kind_name(k));
}

} // namespace

TEST_CASE("reply codes map to delivered, deferred or failed with an enhanced code") {
    struct Case {
        std::string wire; // code, optional enhanced code, text
        std::string command;
        std::string kind;
        std::string enhanced;
        OutcomeScope scope;
    };
    const auto rcpt = OutcomeScope::Recipient;
    const auto msg = OutcomeScope::Message;
    const auto site = OutcomeScope::Site;
    const std::vector<Case> cases{
        {"250 2.0.0 ok", "end of data", "delivered", "2.0.0", msg},
        {"250 ok", "end of data", "delivered", "2.0.0", msg},
        {"251 2.1.5 will forward", "RCPT TO", "delivered", "2.1.5", rcpt},
        {"450 4.2.1 busy", "RCPT TO", "deferred", "4.2.1", rcpt},
        {"450 busy", "RCPT TO", "deferred", "4.2.0", rcpt},
        {"451 error", "MAIL FROM", "deferred", "4.3.0", msg},
        {"452 full", "end of data", "deferred", "4.3.1", msg},
        {"452 too many recipients", "RCPT TO", "deferred", "4.5.3", rcpt},
        {"421 closing", "RCPT TO", "deferred", "4.4.2", site},
        {"421 4.7.0 rate limited", "MAIL FROM", "deferred", "4.7.0", site},
        {"499 odd", "RCPT TO", "deferred", "4.0.0", rcpt},
        {"500 what", "MAIL FROM", "failed", "5.5.2", msg},
        {"501 syntax", "RCPT TO", "failed", "5.5.4", rcpt},
        {"502 no", "MAIL FROM", "failed", "5.5.1", msg},
        {"503 sequence", "DATA", "failed", "5.5.1", msg},
        {"504 param", "MAIL FROM", "failed", "5.5.4", msg},
        {"521 no mail here", "MAIL FROM", "failed", "5.3.2", msg},
        {"550 5.1.1 unknown user", "RCPT TO", "failed", "5.1.1", rcpt},
        {"550 unknown", "RCPT TO", "failed", "5.0.0", rcpt},
        {"551 not local", "RCPT TO", "failed", "5.1.6", rcpt},
        {"552 too big", "MAIL FROM", "failed", "5.3.4", msg},
        {"552 mailbox full", "end of data", "failed", "5.2.2", msg},
        {"552 too many recipients", "RCPT TO", "deferred", "4.5.3", rcpt},
        {"553 bad mailbox", "RCPT TO", "failed", "5.1.3", rcpt},
        {"554 5.7.1 spam", "end of data", "failed", "5.7.1", msg},
        {"554 rejected", "end of data", "failed", "5.0.0", msg},
        {"555 bad param", "MAIL FROM", "failed", "5.5.4", msg},
        {"556 5.1.10 null MX", "RCPT TO", "failed", "5.1.10", rcpt},
        {"556 nope", "RCPT TO", "failed", "5.1.10", rcpt},
        {"599 odd", "RCPT TO", "failed", "5.0.0", rcpt},
        {"554 5.7.1 go away", "greeting", "deferred", "5.7.1", site},
        {"354 go ahead", "end of data", "deferred", "4.5.0", msg},
    };
    for (const auto& c : cases) {
        CAPTURE(c.wire);
        CAPTURE(c.command);
        smtp::ReplyParser parser;
        parser.feed(c.wire + "\r\n");
        const auto reply = parser.next();
        REQUIRE(reply);
        const OutcomeScope asked = c.scope == site && c.command != "greeting" ? msg : c.scope;
        const auto o = smtp::from_reply(*reply, c.command, asked, kPeer);
        CHECK(kind_of(o.kind) == c.kind);
        CHECK(o.enhanced == c.enhanced);
        CHECK(o.scope == c.scope);
        CHECK(o.code == reply->code);
        CHECK(o.command == c.command);
        CHECK(o.remote_host == "mx.d.test");
        CHECK(o.remote_ip == "192.0.2.7");
        CHECK_FALSE(o.local);
    }
}

TEST_CASE("reply text keeps every line and loses control characters") {
    const auto reply = smtp::make_reply(550, "5.7.1", "first line\nsecond\tline\x01");
    const auto o = smtp::from_reply(reply, "RCPT TO", OutcomeScope::Recipient, kPeer);
    CHECK(o.text == "first line second\tline ");
    CHECK(o.summary() == "host mx.d.test[192.0.2.7] said: 550 5.7.1 first line second\tline  "
                         "(in reply to RCPT TO command)");
}

TEST_CASE("local failures carry the enhanced codes of RFC 3463 and a clear text") {
    struct Case {
        std::string name;
        core::Outcome outcome;
        std::string kind;
        int code;
        std::string enhanced;
        OutcomeScope scope;
        std::string text_has;
    };
    const auto site = OutcomeScope::Site;
    const std::vector<Case> cases{
        {"connect", smtp::connect_failed(kPeer, "Connection refused"), "deferred", 421, "4.4.1",
         site, "connect to mx.d.test[192.0.2.7]: Connection refused"},
        {"lost", smtp::connection_lost("DATA", kPeer, "sending DATA", false), "deferred", 421,
         "4.4.2", site, "lost connection with mx.d.test[192.0.2.7] while sending DATA"},
        {"timeout", smtp::connection_lost("greeting", kPeer, "receiving the greeting", true),
         "deferred", 421, "4.4.2", site, "timed out while receiving the greeting"},
        {"protocol", smtp::protocol_error("MAIL FROM", kPeer, "bad"), "deferred", 451, "4.5.0",
         site, "protocol error with mx.d.test[192.0.2.7]: bad"},
        {"dns", smtp::dns_temporary("MX lookup for d.test failed: servfail"), "deferred", 451,
         "4.4.3", site, "servfail"},
        {"nxdomain", smtp::domain_not_found("d.test: no such domain"), "failed", 550, "5.1.2", site,
         "no such domain"},
        {"null mx", smtp::null_mx("d.test accepts no mail"), "failed", 556, "5.1.10", site,
         "accepts no mail"},
        {"no address", smtp::no_route("no MX host has an address"), "failed", 550, "5.4.4", site,
         "no MX host"},
        {"tls absent", smtp::tls_unavailable(kPeer, "was not offered by host x"), "deferred", 450,
         "4.7.4", site, "TLS is required, but was not offered by host x"},
        {"tls failed", smtp::tls_failed(kPeer, "certificate verify failed"), "deferred", 450,
         "4.7.5", site, "certificate verify failed"},
        {"smtputf8", smtp::smtputf8_unsupported(kPeer), "failed", 550, "5.6.7",
         OutcomeScope::Message, "SMTPUTF8 is required, but was not offered by host mx.d.test"},
        {"size", smtp::message_too_big(kPeer, 2000, 1000), "failed", 552, "5.3.4",
         OutcomeScope::Message, "message size 2000 exceeds size limit 1000"},
        {"expired", smtp::expired("450 4.2.1 busy"), "failed", 451, "4.4.7",
         OutcomeScope::Recipient, "delivery time expired; last deferral: 450 4.2.1 busy"},
        {"cancelled", smtp::cancelled("shutting down"), "throttled", 421, "4.3.2", site,
         "shutting down"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        CAPTURE(c.outcome.summary());
        CHECK(kind_of(c.outcome.kind) == c.kind);
        CHECK(c.outcome.code == c.code);
        CHECK(c.outcome.enhanced == c.enhanced);
        CHECK(c.outcome.scope == c.scope);
        CHECK(c.outcome.local);
        CHECK(c.outcome.text.find(c.text_has) != std::string::npos);
        CHECK(c.outcome.enhanced.front() == static_cast<char>('0' + c.outcome.code / 100));
    }
}

TEST_CASE("every reason find_mail_hosts gives up becomes the matching outcome") {
    struct Case {
        dns::MailHostsError error;
        std::string kind;
        std::string enhanced;
    };
    for (const auto& c : std::vector<Case>{{dns::MailHostsError::NullMx, "failed", "5.1.10"},
                                           {dns::MailHostsError::NoSuchDomain, "failed", "5.1.2"},
                                           {dns::MailHostsError::NoMailHosts, "failed", "5.1.2"},
                                           {dns::MailHostsError::NoAddress, "failed", "5.4.4"},
                                           {dns::MailHostsError::Temporary, "deferred", "4.4.3"}}) {
        CAPTURE(static_cast<int>(c.error));
        dns::MailHosts hosts;
        hosts.error = c.error;
        hosts.detail = "detail text";
        const auto o = smtp::from_mail_hosts(hosts);
        CHECK(kind_of(o.kind) == c.kind);
        CHECK(o.enhanced == c.enhanced);
        CHECK(o.enhanced == hosts.enhanced_status()); // the DNS layer agrees
        CHECK(o.text == "detail text");
        CHECK(o.command == "dns");
    }
}
