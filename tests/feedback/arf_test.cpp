#include "feedback/arf.hpp"

#include "feedback/bounce_parser.hpp"

#include "tests/feedback/samples.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace ember::feedback;
using ember::feedback::test::sample;

TEST_CASE("an RFC 5965 abuse report gives its fields and the complained-about recipient") {
    const auto fb = parse_feedback(sample("arf/mail-auth-002.eml"));
    REQUIRE(fb.has_value());
    CHECK(fb->format == "arf");
    CHECK(fb->feedback_type == "abuse");
    CHECK(fb->user_agent == "SomeGenerator/1.0");
    CHECK(fb->version == "1");
    CHECK(fb->original_mail_from == "somespammer@example.net");
    REQUIRE(fb->original_rcpt_to.size() == 1);
    CHECK(fb->original_rcpt_to[0] == "user@example.com");
    CHECK(fb->source_ip == "192.0.2.1");
    CHECK(fb->reporting_mta == "mail.example.com");
    REQUIRE(fb->reported_domains.size() == 1);
    CHECK(fb->reported_domains[0] == "example.net");
    CHECK(fb->reported_uris.size() == 2);
    CHECK(!fb->arrival_date.empty());
    CHECK(fb->authentication_results.find("spf=fail") != std::string::npos);
    CHECK(fb->recipients() == std::vector<std::string>{"user@example.com"});
    CHECK(!fb->original_headers.fields.empty());
}

TEST_CASE("an RFC 6591 auth-failure report names the failed mechanism") {
    const auto fb = parse_feedback(sample("arf/mail-auth-003.eml"));
    REQUIRE(fb.has_value());
    CHECK(fb->feedback_type == "auth-failure");
    CHECK(fb->auth_failure == "bodyhash");
}

TEST_CASE("a Yahoo abuse report maps back through the original message's headers") {
    const auto fb = parse_feedback(sample("arf/arf-01.eml"));
    REQUIRE(fb.has_value());
    CHECK(fb->feedback_type == "abuse");
    CHECK(fb->original.return_path == "support@example.ed.jp");
    CHECK(fb->recipients() == std::vector<std::string>{"redacted@example.net"});
}

TEST_CASE("an opt-out report with text/rfc822-header names the removal recipient") {
    const auto fb = parse_feedback(sample("arf/arf-12.eml"));
    REQUIRE(fb.has_value());
    CHECK(fb->feedback_type == "opt-out");
    CHECK(fb->recipients() == std::vector<std::string>{"user@example.com"});
}

TEST_CASE("a report about several recipients lists each of them") {
    const auto fb = parse_feedback(sample("arf/arf-16.eml"));
    REQUIRE(fb.has_value());
    CHECK(fb->recipients().size() == 7);
    const auto report = parse_bounce(sample("arf/arf-16.eml"));
    CHECK(report.kind == BounceKind::Feedback);
    CHECK(report.feedback_type == "abuse");
    REQUIRE(report.recipients.size() == 7);
    CHECK(report.recipients[0].classification.reason == Reason::Feedback);
}

TEST_CASE("a Hotmail JMRP complaint, which is not ARF, is read as an abuse report") {
    const auto fb = parse_feedback(sample("arf/arf-23.eml"));
    REQUIRE(fb.has_value());
    CHECK(fb->format == "jmrp");
    CHECK(fb->feedback_type == "abuse");
    CHECK(fb->recipients() == std::vector<std::string>{"kijitora@example.com"});
    CHECK(!fb->original.message_id.empty());
}

TEST_CASE("Apple Mail's unsubscribe message is an opt-out by its sender") {
    const auto fb = parse_feedback(sample("arf/arf-26.eml"));
    REQUIRE(fb.has_value());
    CHECK(fb->format == "apple-unsubscribe");
    CHECK(fb->feedback_type == "opt-out");
    CHECK(fb->recipients() == std::vector<std::string>{"example@icloud.com"});
}

TEST_CASE("an Amazon SES complaint notification is a complaint") {
    const auto fb = parse_feedback(sample("arf/lhost-amazonses-11.eml"));
    REQUIRE(fb.has_value());
    CHECK(fb->format == "ses-json");
    CHECK(fb->recipients() == std::vector<std::string>{"complaint@simulator.amazonses.com"});
}

TEST_CASE("a fraud report is a fraud report, and the X-Ember-ID of the original is read") {
    const std::string fraud =
        "From: fbl@isp.example\nSubject: FW: offer\nMIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=feedback-report; boundary=\"p\"\n\n"
        "--p\nContent-Type: text/plain\n\nThis is a fraud report.\n"
        "--p\nContent-Type: message/feedback-report\n\n"
        "Feedback-Type: Fraud\nUser-Agent: ISP-FBL/2.0\nVersion: 1\n"
        "Original-Mail-From: <bounces+q7.r1@mail.example.net>\n"
        "Original-Rcpt-To: <victim@isp.example>\n"
        "Arrival-Date: Tue, 2 May 2023 10:00:00 +0000\nSource-IP: 192.0.2.25\n\n"
        "--p\nContent-Type: message/rfc822\n\n"
        "Return-Path: <bounces+q7.r1@mail.example.net>\nX-Ember-ID: q7\n"
        "Message-ID: <q7@mail.example.net>\nTo: victim@isp.example\n\nbody\n--p--\n";
    const auto fb = parse_feedback(fraud);
    REQUIRE(fb.has_value());
    CHECK(fb->feedback_type == "fraud");
    CHECK(fb->original_mail_from == "bounces+q7.r1@mail.example.net");
    CHECK(fb->original.ember_id == "q7");
    CHECK(fb->original.message_id == "q7@mail.example.net");
    CHECK(verp_token(fb->original.return_path, "bounces+") == std::optional<std::string>("q7.r1"));
}

TEST_CASE("a bounce is not a complaint") {
    CHECK_FALSE(parse_feedback(sample("bounces/lhost-qmail-02.eml")).has_value());
    CHECK_FALSE(parse_feedback("").has_value());
}

TEST_CASE("a report maps back by VERP token first, then X-Ember-ID, then Message-ID") {
    OriginalMessage o;
    o.return_path = "bounces+q9.r3@mail.example.net";
    o.ember_id = "q9";
    o.message_id = "q9@mail.example.net";
    // A bounce: the envelope recipient it came back to is the VERP address.
    auto key = trace_key(o, "bounces+q9.r4@mail.example.net", "bounces+");
    CHECK(key.kind == TraceKey::Kind::Verp);
    CHECK(key.value == "q9.r4");
    // A complaint arrives at the loop address: the quoted return path serves.
    key = trace_key(o, "fbl@mail.example.net", "bounces+");
    CHECK(key.kind == TraceKey::Kind::Verp);
    CHECK(key.value == "q9.r3");
    o.return_path.clear();
    key = trace_key(o, "fbl@mail.example.net", "bounces+");
    CHECK(key.kind == TraceKey::Kind::EmberId);
    CHECK(key.value == "q9");
    o.ember_id.clear();
    CHECK(trace_key(o, "", "bounces+").kind == TraceKey::Kind::MessageId);
    o.message_id.clear();
    CHECK(trace_key(o, "", "bounces+").kind == TraceKey::Kind::None);
}
