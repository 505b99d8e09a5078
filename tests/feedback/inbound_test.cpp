#include "feedback/inbound.hpp"

#include "tests/feedback/samples.hpp"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

using namespace ember::feedback;
using ember::feedback::test::sample;

namespace {

constexpr std::uint64_t kQueueId = 0x018BD0A2'54C00003ULL;
const std::string kRcpt = "bob@example.net";

TokenSigner make_signer() {
    std::string error;
    auto s = TokenSigner::create({{"k1", "0123456789abcdef0123456789abcdef"}}, error);
    REQUIRE(s.has_value());
    return std::move(*s);
}

struct World {
    TokenSigner signer = make_signer();
    InboundPolicy policy{config(), make_signer()};
    std::string verp = signer.verp_address(
        "bounces", make_verp_id(kQueueId, 2, "example.com", kRcpt), "bounce.example.com");
    std::string ember_id = signer.ember_id(kQueueId, 2, kRcpt);

    static InboundConfig config() {
        InboundConfig c;
        c.report_addresses = {"FBL@example.com"};
        c.sending_domains = {"shop.example", "Example.com"};
        return c;
    }
};

std::string fill(std::string text, const std::map<std::string, std::string>& values) {
    for (const auto& [name, value] : values) {
        const auto key = "%" + name + "%";
        for (auto pos = text.find(key); pos != std::string::npos;
             pos = text.find(key, pos + value.size()))
            text.replace(pos, key.size(), value);
    }
    return text;
}

std::string dsn(const World& w, const std::string& rcpt, const std::string& action = "failed",
                const std::string& status = "5.1.1") {
    return fill(sample("feedback/dsn.eml"), {{"VERP", w.verp},
                                             {"EMBER_ID", w.ember_id},
                                             {"RCPT", rcpt},
                                             {"ACTION", action},
                                             {"STATUS", status}});
}

template <typename T> const T& only(const std::vector<InboundAction>& actions) {
    REQUIRE(actions.size() == 1);
    const auto* got = std::get_if<T>(&actions.front());
    REQUIRE(got != nullptr);
    return *got;
}

std::string ignored_why(const std::vector<InboundAction>& actions) {
    return only<IgnoreAction>(actions).why;
}

} // namespace

TEST_CASE("RCPT: valid VERP, unsubscribe, report and postmaster addresses are taken, the rest "
          "refused") {
    World w;
    struct Case {
        std::string address;
        bool accept;
        RcptKind kind;
    };
    auto tampered = w.verp;
    tampered[10] = tampered[10] == 'a' ? 'b' : 'a';
    const auto mailto =
        "unsubscribe+" + w.signer.unsubscribe_mailto_token(kRcpt, "example.com") + "@example.com";
    const Case cases[] = {
        {w.verp, true, RcptKind::Verp},
        {"<" + w.verp + ">", true, RcptKind::Verp},
        {"BOUNCES+" + w.verp.substr(8), true, RcptKind::Verp},
        {tampered, false, RcptKind::Verp},
        {"bounces+abc@bounce.example.com", false, RcptKind::Verp},
        {mailto, true, RcptKind::Unsubscribe},
        {"unsubscribe+nope@example.com", false, RcptKind::Unsubscribe},
        {"fbl@EXAMPLE.com", true, RcptKind::Report},
        {"PostMaster@bounce.example.com", true, RcptKind::Postmaster},
        {"bounces@bounce.example.com", false, RcptKind::Unknown},
        {"someone@elsewhere.example", false, RcptKind::Unknown},
    };
    for (const auto& c : cases) {
        CAPTURE(c.address);
        const auto got = w.policy.check_rcpt(c.address);
        CHECK(got.accept == c.accept);
        CHECK(got.kind == c.kind);
        if (!c.accept) {
            CHECK(got.code == 550);
            CHECK(got.enhanced == "5.1.1");
            CHECK_FALSE(got.text.empty());
        }
    }
    CHECK(w.policy.check_rcpt(tampered).token == TokenStatus::BadSignature);
}

TEST_CASE("a DSN to a VERP address becomes a bounce of that message's recipient") {
    World w;
    const auto actions = w.policy.decide({"", {w.verp}}, dsn(w, kRcpt));
    const auto& b = only<BounceAction>(actions);
    CHECK(b.trace.via == TraceRef::Via::Verp);
    CHECK(b.trace.queue_id == kQueueId);
    CHECK(b.trace.recipient_index == std::optional<std::uint32_t>(2));
    CHECK(b.trace.message_id == "20231114221320.4Rk2@example.com");
    CHECK(b.sending_domain == "example.com");
    CHECK(b.recipient == kRcpt);
    CHECK(b.recipient_verified);
    CHECK(b.reason == Reason::UserUnknown);
    CHECK(b.hard);
    CHECK(b.status == "5.1.1");
    CHECK(b.diagnostic.find("User unknown") != std::string::npos);
    CHECK(b.format == "rfc3464");
}

TEST_CASE("a soft DSN is a soft bounce") {
    World w;
    const auto actions = w.policy.decide({"", {w.verp}}, dsn(w, kRcpt, "failed", "5.2.2"));
    const auto& b = only<BounceAction>(actions);
    CHECK_FALSE(b.hard);
    CHECK(b.recipient_verified);
}

TEST_CASE("a DSN naming another recipient than the token's is not trusted with the address") {
    World w;
    const auto actions = w.policy.decide({"", {w.verp}}, dsn(w, "victim@example.org"));
    const auto& b = only<BounceAction>(actions);
    CHECK(b.trace.queue_id == kQueueId);
    CHECK(b.recipient == "victim@example.org");
    CHECK_FALSE(b.recipient_verified);
}

TEST_CASE("a delay notice and an autoreply at a VERP address are ignored") {
    World w;
    CHECK(ignored_why(w.policy.decide({"", {w.verp}}, dsn(w, kRcpt, "delayed", "4.4.7")))
              .find("no failed recipient") != std::string::npos);
    const auto autoreply = fill(sample("feedback/autoreply.eml"), {{"VERP", w.verp}});
    CHECK(ignored_why(w.policy.decide({"", {w.verp}}, autoreply)) == "autoreply");
    CHECK(ignored_why(w.policy.decide({"someone@example.net", {w.verp}}, "hello\r\n\r\nthere")) ==
          "not a bounce or complaint report");
}

TEST_CASE("a DSN to postmaster maps back through the returned message's X-Ember-ID") {
    World w;
    auto text = dsn(w, kRcpt);
    // No VERP anywhere: the return path of the quoted message is plain.
    const auto plain = std::string("news@example.com");
    for (auto pos = text.find(w.verp); pos != std::string::npos; pos = text.find(w.verp))
        text.replace(pos, w.verp.size(), plain);
    const auto actions = w.policy.decide({"", {"postmaster@example.com"}}, text);
    const auto& b = only<BounceAction>(actions);
    CHECK(b.trace.via == TraceRef::Via::EmberId);
    CHECK(b.trace.queue_id == kQueueId);
    CHECK(b.recipient_verified);
    CHECK(b.sending_domain == "example.com"); // from the quoted From:
}

TEST_CASE("a bounce that maps to nothing ember sent is ignored") {
    World w;
    auto text = dsn(w, kRcpt);
    for (const auto& key :
         {w.verp, w.ember_id, std::string("Message-ID: <20231114221320.4Rk2@example.com>")})
        for (auto pos = text.find(key); pos != std::string::npos; pos = text.find(key))
            text.replace(pos, key.size(), "x@y.example");
    CHECK(ignored_why(w.policy.decide({"", {"postmaster@example.com"}}, text)) ==
          "bounce maps to no message ember sent");
}

TEST_CASE("an ARF report to the feedback-loop address is a complaint mapped by the quoted "
          "return path") {
    World w;
    const auto text =
        fill(sample("feedback/arf.eml"),
             {{"VERP", w.verp}, {"EMBER_ID", w.ember_id}, {"RCPT", kRcpt}, {"TO", kRcpt}});
    const auto actions = w.policy.decide({"staff@fbl.example.net", {"fbl@example.com"}}, text);
    const auto& c = only<ComplaintAction>(actions);
    CHECK(c.trace.via == TraceRef::Via::Verp);
    CHECK(c.trace.queue_id == kQueueId);
    CHECK(c.recipient == kRcpt);
    CHECK(c.recipient_verified);
    CHECK(c.feedback_type == "abuse");
    CHECK(c.format == "arf");
    CHECK(c.user_agent == "ExampleFBL/1.0");
    CHECK(c.source_ip == "192.0.2.10");
    CHECK(c.sending_domain == "example.com");
}

TEST_CASE("a complaint with a redacted recipient is verified through X-Ember-ID and To") {
    World w;
    const auto text = fill(sample("feedback/arf.eml"), {{"VERP", "news@example.com"},
                                                        {"EMBER_ID", w.ember_id},
                                                        {"RCPT", "redacted@example.net"},
                                                        {"TO", "Bob <" + kRcpt + ">"}});
    const auto actions = w.policy.decide({"staff@fbl.example.net", {"fbl@example.com"}}, text);
    const auto& c = only<ComplaintAction>(actions);
    CHECK(c.trace.via == TraceRef::Via::EmberId);
    CHECK(c.recipient == kRcpt);
    CHECK(c.recipient_verified);
}

TEST_CASE("a complaint naming someone the token was not made for is counted, not trusted") {
    World w;
    const auto text = fill(sample("feedback/arf.eml"), {{"VERP", w.verp},
                                                        {"EMBER_ID", "garbage"},
                                                        {"RCPT", "victim@example.org"},
                                                        {"TO", "victim@example.org"}});
    const auto actions = w.policy.decide({"x@y.example", {"fbl@example.com"}}, text);
    const auto& c = only<ComplaintAction>(actions);
    CHECK(c.trace.via == TraceRef::Via::Verp);
    CHECK(c.recipient == "victim@example.org");
    CHECK_FALSE(c.recipient_verified);
}

TEST_CASE("mail to an unsubscribe address from the recipient unsubscribes; from anyone else, "
          "nothing") {
    World w;
    const auto token = w.signer.unsubscribe_mailto_token(kRcpt, "shop.example");
    const auto to = "unsubscribe+" + token + "@mail.shop.example";
    const auto request = [&](const std::string& from) {
        return fill(sample("feedback/unsubscribe.eml"), {{"FROM", from}, {"TO", to}});
    };
    const auto actions = w.policy.decide({"Bob@Example.net", {to}}, request(kRcpt));
    const auto& u = only<UnsubscribeAction>(actions);
    CHECK(u.who == Unsubscriber{kRcpt, "shop.example"});
    CHECK(u.key_id == "k1");

    CHECK(ignored_why(w.policy.decide({"eve@example.org", {to}}, request("eve@example.org")))
              .find("not issued to the sender") != std::string::npos);
    CHECK(ignored_why(w.policy.decide({"", {to}}, request(kRcpt))).find("null sender") !=
          std::string::npos);
    const auto automatic = "Auto-Submitted: auto-replied\r\n" + request(kRcpt);
    CHECK(ignored_why(w.policy.decide({kRcpt, {to}}, automatic)).find("auto-submitted") !=
          std::string::npos);
}

TEST_CASE("garbage and truncated reports never crash and are ignored") {
    World w;
    const auto full = dsn(w, kRcpt);
    for (std::size_t cut = 0; cut < full.size(); cut += 97) {
        CAPTURE(cut);
        const auto actions = w.policy.decide({"", {w.verp}}, full.substr(0, cut));
        CHECK_FALSE(actions.empty());
    }
    CHECK(ignored_why(w.policy.decide({"", {"nobody@example.com"}}, full)) ==
          "no recipient of ours");
}
