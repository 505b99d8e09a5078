#include "feedback/bounce_parser.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace ember::feedback;

namespace {

std::string with_line_ends(const std::string& lf, const std::string& eol) {
    std::string out;
    for (const char c : lf) {
        if (c == '\n')
            out += eol;
        else
            out += c;
    }
    return out;
}

const std::string kDsn =
    "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n"
    "To: bounces+q1.r2@mail.example.net\n"
    "Subject: Undelivered Mail Returned to Sender\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"\n"
    "\n"
    "--B1\n"
    "Content-Type: text/plain\n"
    "\n"
    "This is the mail system at host mx.example.org.\n"
    "\n"
    "<gone@example.com>: host mx.example.com[192.0.2.1] said: 550 5.1.1\n"
    "    <gone@example.com>: Recipient address rejected: User unknown (in reply to\n"
    "    RCPT TO command)\n"
    "\n"
    "<full@example.com>: host mx.example.com[192.0.2.1] said: 452 4.2.2 Mailbox\n"
    "    full (in reply to RCPT TO command)\n"
    "\n"
    "--B1\n"
    "Content-Type: message/delivery-status\n"
    "\n"
    "Reporting-MTA: dns; mx.example.org\n"
    "\n"
    "Final-Recipient: rfc822; gone@example.com\n"
    "Action: failed\n"
    "Status: 5.1.1\n"
    "Remote-MTA: dns; mx.example.com\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <gone@example.com>: Recipient address rejected:\n"
    "    User unknown\n"
    "\n"
    "Final-Recipient: rfc822; full@example.com\n"
    "Action: delayed\n"
    "Status: 4.2.2\n"
    "Diagnostic-Code: smtp; 452 4.2.2 Mailbox full\n"
    "\n"
    "--B1\n"
    "Content-Type: text/rfc822-headers\n"
    "\n"
    "Return-Path: <bounces+q1.r2@mail.example.net>\n"
    "Message-ID: <q1@mail.example.net>\n"
    "X-Ember-ID: q1\n"
    "From: news@example.net\n"
    "To: gone@example.com\n"
    "Subject: =?utf-8?q?Hello_there?=\n"
    "\n"
    "--B1--\n";

void check_dsn(const BounceReport& r) {
    CHECK(r.kind == BounceKind::Bounce);
    CHECK(r.format == "rfc3464");
    REQUIRE(r.recipients.size() == 2);
    const auto& gone = r.recipients[0];
    CHECK(gone.recipient == "gone@example.com");
    CHECK(gone.action == "failed");
    CHECK(gone.status == "5.1.1");
    CHECK(gone.reply_code == 550);
    CHECK(gone.command == Command::Rcpt);
    CHECK(gone.remote_mta == "mx.example.com");
    CHECK(gone.diagnostic_type == "smtp");
    CHECK(gone.classification.reason == Reason::UserUnknown);
    CHECK(gone.classification.hard);
    const auto& full = r.recipients[1];
    CHECK(full.action == "delayed");
    CHECK(full.classification.reason == Reason::MailboxFull);
    CHECK_FALSE(full.classification.hard);
    CHECK(r.original.ember_id == "q1");
    CHECK(r.original.message_id == "q1@mail.example.net");
    CHECK(r.original.return_path == "bounces+q1.r2@mail.example.net");
    CHECK(r.original.subject == "Hello there");
}

} // namespace

TEST_CASE("an RFC 3464 report is read recipient by recipient, with LF, CRLF and CR") {
    for (const char* eol : {"\n", "\r\n", "\r"}) {
        CAPTURE(static_cast<int>(eol[0]) + static_cast<int>(eol[1]));
        check_dsn(parse_bounce(with_line_ends(kDsn, eol)));
    }
}

TEST_CASE("the VERP token of the returned message's return path is at hand") {
    const auto r = parse_bounce(kDsn);
    const auto token = verp_token(r.original.return_path, "bounces+");
    REQUIRE(token.has_value());
    CHECK(*token == "q1.r2");
    CHECK_FALSE(verp_token("someone@example.net", "bounces+").has_value());
    CHECK(verp_token("BOUNCES+x@example.net", "bounces+") == std::optional<std::string>("x"));
}

TEST_CASE("a delay report without a cause is an expiry to come, and soft") {
    const std::string delayed =
        "From: MAILER-DAEMON@mx.example.org\nSubject: Delayed Mail (still being retried)\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n"
        "--x\nContent-Type: message/delivery-status\n\n"
        "Final-Recipient: rfc822; slow@example.com\nAction: delayed\nStatus: 4.0.0\n\n--x--\n";
    const auto r = parse_bounce(delayed);
    REQUIRE(r.recipients.size() == 1);
    CHECK(r.recipients[0].classification.reason == Reason::Expired);
    CHECK_FALSE(r.recipients[0].classification.hard);
}

TEST_CASE("a Postfix text bounce without a report is read from its sentences") {
    const std::string text =
        "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n"
        "Subject: Undelivered Mail Returned to Sender\n\n"
        "This is the mail system at host mx.example.org.\n\n"
        "<filtered@example.jp>: host mx.example.jp[192.0.2.9] said: 550 User unknown (in\n"
        "    reply to end of DATA command)\n\n"
        "<moved@example.jp>: host mx.example.jp[192.0.2.9] said: 550 5.1.6 Mailbox has\n"
        "    moved (in reply to RCPT TO command)\n";
    const auto r = parse_bounce(text);
    CHECK(r.format == "postfix");
    REQUIRE(r.recipients.size() == 2);
    CHECK(r.recipients[0].command == Command::Data);
    CHECK(r.recipients[0].classification.reason == Reason::Filtered);
    CHECK(r.recipients[1].classification.reason == Reason::HasMoved);
    CHECK(r.recipients[1].classification.hard);
}

TEST_CASE("X-Failed-Recipients keeps only the addresses it names") {
    const std::string text = "From: Mail Delivery System <Mailer-Daemon@mx.example.org>\n"
                             "X-Failed-Recipients: b@example.com\n"
                             "Subject: Mail delivery failed\n\n"
                             "This message was created automatically by mail delivery software.\n\n"
                             "  a@example.com\n    retry later\n"
                             "  b@example.com\n    SMTP error from remote mail server after RCPT "
                             "TO:<b@example.com>:\n    550 5.1.1 No such user\n";
    const auto r = parse_bounce(text);
    REQUIRE(r.recipients.size() == 1);
    CHECK(r.recipients[0].recipient == "b@example.com");
    CHECK(r.recipients[0].classification.reason == Reason::UserUnknown);
}

TEST_CASE("a bounce forwarded as an attachment is read from the attachment") {
    const std::string inner = "From: MAILER-DAEMON@mx.example.org\n"
                              "Subject: failure notice\n\n"
                              "Hi. This is the qmail-send program at mx.example.org.\n\n"
                              "<x@example.com>:\nSorry, no mailbox here by that name. (#5.1.1)\n";
    const std::string outer = "From: helpdesk@example.net\nSubject: Fwd: bounce\n"
                              "Content-Type: multipart/mixed; boundary=f\n\n"
                              "--f\nContent-Type: text/plain\n\nSee below.\n"
                              "--f\nContent-Type: message/rfc822\n\n" +
                              inner + "--f--\n";
    const auto r = parse_bounce(outer);
    CHECK(r.kind == BounceKind::Bounce);
    REQUIRE(r.recipients.size() == 1);
    CHECK(r.recipients[0].recipient == "x@example.com");
    CHECK(r.recipients[0].classification.reason == Reason::UserUnknown);
}

TEST_CASE("an out-of-office reply is an autoreply, not a bounce") {
    const std::string ooo = "From: Jane <jane@example.com>\nTo: news@example.net\n"
                            "Auto-Submitted: auto-replied\nSubject: Out of Office: Hello\n\n"
                            "I am away until Monday.\n";
    const auto r = parse_bounce(ooo);
    CHECK(r.kind == BounceKind::AutoReply);
    REQUIRE(r.recipients.size() == 1);
    CHECK(r.recipients[0].recipient == "jane@example.com");
    CHECK(r.recipients[0].classification.reason == Reason::Vacation);
}

TEST_CASE("nothing and garbage are not bounces") {
    CHECK(parse_bounce("").kind == BounceKind::NotBounce);
    CHECK(parse_bounce("\r\n\r\n").kind == BounceKind::NotBounce);
    CHECK(parse_bounce(std::string(1000, '\xff')).kind == BounceKind::NotBounce);
    const auto plain =
        parse_bounce("From: friend@example.com\nSubject: lunch?\n\nSee you at noon.\n");
    CHECK(plain.kind == BounceKind::NotBounce);
    CHECK(plain.recipients.empty());
}

TEST_CASE("bounce kinds have names") {
    CHECK(bounce_kind_name(BounceKind::Bounce) == "bounce");
    CHECK(bounce_kind_name(BounceKind::NotBounce) == "not-bounce");
    CHECK(bounce_kind_name(BounceKind::AutoReply) == "autoreply");
    CHECK(bounce_kind_name(BounceKind::Feedback) == "feedback");
}
