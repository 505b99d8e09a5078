// One real bounce per MTA family (tests/data/bounces, from sisimai's
// set-of-emails), each read to its failed recipients and classified.

#include "feedback/bounce_parser.hpp"

#include "tests/feedback/samples.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace ember::feedback;
using ember::feedback::test::sample;

namespace {

struct Want {
    const char* recipient;
    Reason reason;
    bool hard;
    const char* status; // "" to skip the check
};

struct Case {
    const char* file;
    const char* format;
    std::vector<Want> recipients;
};

const Case kCases[] = {
    {"bounces/lhost-postfix-31.eml",
     "rfc3464",
     {{"kijitora@gmail.com", Reason::UserUnknown, true, "5.1.1"}}},
    {"bounces/lhost-sendmail-01.eml",
     "rfc3464",
     {{"userunknown@bouncehammer.jp", Reason::UserUnknown, true, "5.1.1"}}},
    {"bounces/lhost-courier-04.eml",
     "rfc3464",
     {{"kijitora@example.cat", Reason::HostUnknown, true, ""}}},
    {"bounces/lhost-office365-01.eml",
     "exchange",
     {{"kijitora@example.com", Reason::UserUnknown, true, "5.1.10"}}},
    {"bounces/lhost-qmail-02.eml",
     "qmail",
     {{"userunknown@example.jp", Reason::UserUnknown, true, "5.1.1"},
      {"filtered@example.jp", Reason::UserUnknown, true, "5.2.1"}}},
    {"bounces/lhost-exim-02.eml",
     "exim",
     {{"kijitora@example.jp", Reason::UserUnknown, true, "5.1.1"},
      {"sabatora@example.jp", Reason::UserUnknown, true, "5.2.1"}}},
    {"bounces/lhost-exchange2003-01.eml",
     "exchange",
     {{"kijitora@example.jp", Reason::UserUnknown, true, ""}}},
    {"bounces/lhost-gmail-01.eml",
     "gmail",
     {{"userunknown@example.jp", Reason::UserUnknown, true, "5.1.1"}}},
    {"bounces/lhost-yahoo-02.eml",
     "yahoo",
     {{"kijitora@example.ed.jp", Reason::MailboxFull, false, "5.2.2"}}},
    {"bounces/lhost-dragonfly-12.eml",
     "dragonfly",
     {{"mailboxfull@libsisimai.net", Reason::MailboxFull, false, "5.2.2"}}},
    {"bounces/lhost-opensmtpd-03.eml",
     "opensmtpd",
     {{"kijitora@neko.example.jp", Reason::HostUnknown, true, ""}}},
    {"bounces/lhost-amazonses-10.eml",
     "ses-json",
     {{"bounce@simulator.amazonses.com", Reason::UserUnknown, true, "5.1.1"}}},
    // The same layouts with CRLF and with CR line ends.
    {"bounces/dos-lhost-qmail-01.eml",
     "qmail",
     {{"kijitora@example.ne.jp", Reason::UserUnknown, true, "5.5.0"}}},
    {"bounces/mac-lhost-exim-01.eml",
     "exim",
     {{"kijitora@example.ed.jp", Reason::Blocked, false, "5.7.0"}}},
};

} // namespace

TEST_CASE("each MTA family's bounce yields its failed recipients, reasons and statuses") {
    for (const auto& c : kCases) {
        CAPTURE(std::string(c.file));
        const auto message = sample(c.file);
        REQUIRE(!message.empty());
        const auto report = parse_bounce(message);
        CHECK(report.kind == BounceKind::Bounce);
        CHECK(report.format == c.format);
        REQUIRE(report.recipients.size() == c.recipients.size());
        for (std::size_t i = 0; i < c.recipients.size(); ++i) {
            const auto& got = report.recipients[i];
            const auto& want = c.recipients[i];
            CAPTURE(got.diagnostic);
            CHECK(got.recipient == want.recipient);
            CHECK(reason_name(got.classification.reason) == reason_name(want.reason));
            CHECK(got.classification.hard == want.hard);
            if (*want.status != '\0')
                CHECK(got.classification.status == want.status);
        }
    }
}

TEST_CASE("the SMTP command a bounce names reaches the classification") {
    const auto exim = parse_bounce(sample("bounces/lhost-exim-02.eml"));
    REQUIRE(!exim.recipients.empty());
    CHECK(exim.recipients[0].command == Command::Rcpt);
    const auto postfix = parse_bounce(sample("bounces/lhost-postfix-31.eml"));
    REQUIRE(!postfix.recipients.empty());
    CHECK(postfix.recipients[0].command == Command::Rcpt);
    CHECK(postfix.recipients[0].remote_mta == "gmail-smtp-in.l.google.com");
    CHECK(postfix.recipients[0].reply_code == 550);
}

TEST_CASE("the returned message's headers are read from the bounce") {
    const auto report = parse_bounce(sample("bounces/lhost-postfix-31.eml"));
    CHECK(!report.original.message_id.empty());
    CHECK(report.original.message_id.find('<') == std::string::npos);
    CHECK(report.original.to.find("kijitora") != std::string::npos);
    // Inline, after qmail's "--- Below this line is a copy of the message."
    const auto qmail = parse_bounce(sample("bounces/lhost-qmail-02.eml"));
    CHECK(!qmail.original.from.empty());
}

TEST_CASE("an autoreply is not a bounce but is reported as vacation") {
    const auto report = parse_bounce(sample("bounces/rfc3834-02.eml"));
    CHECK(report.kind == BounceKind::AutoReply);
    REQUIRE(report.recipients.size() == 1);
    CHECK(report.recipients[0].recipient == "nekonyaan@example.org");
    CHECK(report.recipients[0].classification.reason == Reason::Vacation);
    CHECK_FALSE(report.recipients[0].classification.hard);
}

TEST_CASE("an ordinary message is not a bounce and yields nobody") {
    const auto report = parse_bounce(sample("bounces/is-not-bounce-01.eml"));
    CHECK(report.kind == BounceKind::NotBounce);
    CHECK(report.recipients.empty());
}
