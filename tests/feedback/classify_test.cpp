#include "feedback/classify.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace ember::feedback;

namespace {

struct Case {
    const char* reply;
    Command command;
    Reason want;
    bool hard;
};

// One everyday reply per reason, in the words real receivers use.
const Case kCases[] = {
    {"550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual "
     "mailbox table",
     Command::Rcpt, Reason::UserUnknown, true},
    {"550 No such user here", Command::Rcpt, Reason::UserUnknown, true},
    {"550 5.1.2 Host unknown (Name server: example.invalid: host not found)", Command::Rcpt,
     Reason::HostUnknown, true},
    {"452 4.2.2 The email account that you tried to reach is over quota", Command::Rcpt,
     Reason::MailboxFull, false},
    {"552 5.2.3 Message exceeds the recipient's size limit", Command::Data, Reason::ExceedLimit,
     false},
    {"552 5.3.4 Message size exceeds fixed maximum message size", Command::Data,
     Reason::EmailTooLarge, false},
    {"550 5.7.1 Refused due to recipient preferences", Command::Data, Reason::Filtered, false},
    {"550 User unknown", Command::Data, Reason::Filtered, false},
    {"553 5.1.8 <bounce@nowhere.invalid>: Sender address rejected: Domain not found", Command::Mail,
     Reason::Rejected, false},
    {"554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
     Command::Rcpt, Reason::Blocked, false},
    {"550 5.7.1 Message rejected as spam by Content Filtering", Command::Data, Reason::SpamDetected,
     false},
    {"554 5.7.0 Reject, id=12345 - INFECTED: Eicar-Test-Signature", Command::Data,
     Reason::VirusDetected, false},
    {"550 5.7.1 Message rejected due to local policy", Command::Data, Reason::PolicyViolation,
     false},
    {"550 5.7.26 This message does not pass authentication checks (SPF and DKIM both do not "
     "pass)",
     Command::Data, Reason::AuthFailure, false},
    {"550 5.7.25 The IP address sending this message does not have a PTR record setup",
     Command::Mail, Reason::RequirePtr, false},
    {"554 5.7.1 Your IP has a poor reputation", Command::Connect, Reason::BadReputation, false},
    {"450 4.7.1 Rate limit exceeded, try again later", Command::Rcpt, Reason::RateLimited, false},
    {"421 4.7.0 Too many concurrent SMTP connections; please try again later", Command::Connect,
     Reason::TooManyConn, false},
    {"530 5.7.0 Authentication required", Command::Mail, Reason::SecurityError, false},
    {"556 5.1.10 Recipient address has null MX", Command::Rcpt, Reason::NotAccept, true},
    {"554 5.7.1 <x@example.org>: Relay access denied", Command::Rcpt, Reason::NoRelaying, false},
    {"550 5.2.1 The email account that you tried to reach is disabled", Command::Rcpt,
     Reason::Suspend, false},
    {"550 5.1.6 Recipient has moved; no forwarding address", Command::Rcpt, Reason::HasMoved, true},
    {"501 5.5.2 Syntax error in parameters or arguments", Command::Mail, Reason::SyntaxError,
     false},
    {"554 5.6.0 Message contains invalid MIME headers", Command::Data, Reason::ContentError, false},
    {"554 5.3.0 unknown mailer error 255", Command::Data, Reason::MailerError, false},
    {"451 4.4.6 Too many hops", Command::Data, Reason::NetworkError, false},
    {"451 4.3.0 Internal server error", Command::Data, Reason::SystemError, false},
    {"452 4.3.1 Insufficient system storage", Command::Mail, Reason::SystemFull, false},
    {"421 4.4.7 Delivery time expired", Command::Unknown, Reason::Expired, false},
    {"550 5.7.1 This message is not RFC 5322 compliant", Command::Data, Reason::NotCompliantRfc,
     false},
    {"530 5.7.0 Must issue a STARTTLS command first", Command::Mail, Reason::FailedStartTls, false},
    {"550 Something went wrong", Command::Rcpt, Reason::OnHold, false},
    {"250 2.0.0 Ok: queued as 4Q2Lbx1m6Nz", Command::Data, Reason::Delivered, false},
};

} // namespace

TEST_CASE("one everyday reply per reason gets that reason and its hard/soft verdict") {
    for (const auto& c : kCases) {
        CAPTURE(std::string(c.reply));
        const auto got = classify(0, "", c.reply, c.command, Rules::builtin());
        CHECK(reason_name(got.reason) == reason_name(c.want));
        CHECK(got.hard == c.hard);
    }
}

TEST_CASE("nothing to judge is undefined, text no rule knows is onhold") {
    CHECK(classify(0, "", "", Rules::builtin()).reason == Reason::Undefined);
    CHECK(classify(0, "", "   \r\n", Rules::builtin()).reason == Reason::Undefined);
    CHECK(classify(0, "", "zorglub", Rules::builtin()).reason == Reason::OnHold);
}

TEST_CASE("code and status are taken from the text when not given separately") {
    const auto c = classify(0, "",
                            "550-5.1.1 The email account that you tried to reach does "
                            "not exist. Please try 550-5.1.1 double-checking",
                            Rules::builtin());
    CHECK(c.status == "5.1.1");
    CHECK_FALSE(c.status_synthesized);
    CHECK(c.reason == Reason::UserUnknown);
    CHECK(c.hard);
}

TEST_CASE("a precise status decides over the text, a vague one is refined by it") {
    // x.2.2 says full; the text's "unknown" does not change that.
    CHECK(classify(552, "5.2.2", "user unknown", Rules::builtin()).reason == Reason::MailboxFull);
    // 5.7.1 says "policy"; the text says which policy.
    CHECK(classify(554, "5.7.1", "Relay access denied", Rules::builtin()).reason ==
          Reason::NoRelaying);
    CHECK(classify(554, "5.7.1", "", Rules::builtin()).reason == Reason::SecurityError);
}

TEST_CASE("a transient answer is never hard, even for an unknown user") {
    const auto c = classify(450, "4.1.1",
                            "<a@example.com>: Recipient address rejected: "
                            "unverified address",
                            Command::Rcpt, Rules::builtin());
    CHECK(c.reason == Reason::UserUnknown);
    CHECK_FALSE(c.hard);
}

TEST_CASE("without a status the standard code for the reason is synthesized") {
    const auto c = classify(550, "", "Mailbox full", Rules::builtin());
    CHECK(c.reason == Reason::MailboxFull);
    CHECK(c.status == "5.2.2");
    CHECK(c.status_synthesized);
    const auto t = classify(452, "", "Mailbox full", Rules::builtin());
    CHECK(t.status == "4.2.2");
    CHECK(standard_status(Reason::Feedback, '5').empty());
}

TEST_CASE("the rule that decided is named") {
    const auto c = classify(550, "5.1.1", "whatever", Rules::builtin());
    CHECK(c.rule.starts_with("bounce-rules.toml:"));
    CHECK_FALSE(c.by_text);
    const auto t = classify(550, "", "Relay access denied", Rules::builtin());
    CHECK(t.by_text);
}

TEST_CASE("delivery outcomes from smtp/ are classified with their command") {
    ember::core::Outcome o;
    o.kind = ember::core::OutcomeKind::Failed;
    o.code = 550;
    o.text = "User unknown";
    o.command = "end of data";
    CHECK(classify(o, Rules::builtin()).reason == Reason::Filtered);
    o.command = "RCPT TO";
    CHECK(classify(o, Rules::builtin()).reason == Reason::UserUnknown);
    o.command = "MAIL FROM";
    o.text = "Sender address rejected: Domain not found";
    CHECK(classify(o, Rules::builtin()).reason == Reason::Rejected);
}

TEST_CASE("reply codes and statuses are found inside sentences, not inside addresses") {
    CHECK(find_reply_code("host mx.example.com[192.0.2.1] said: 550 5.1.1 no") == 550);
    CHECK(find_reply_code("(#5.5.0) remote host 192.0.2.153 said: 421 try later") == 421);
    CHECK(find_reply_code("192.0.2.250 and 2013") == 0);
    CHECK(find_reply_code("exit status 255") == 0);
    CHECK(find_status("Remote host said: 550 5.2.2 <a@b>... full") == "5.2.2");
    CHECK(find_status("qmail says (#4.4.1)") == "4.4.1");
    CHECK(find_status("version 1.2.3.4") == "");
}

TEST_CASE("a multi-line reply joined into one line is matched as one sentence") {
    const auto c = classify(550, "",
                            "550-5.7.1 Messages with multiple 550 5.7.1 addresses in "
                            "From: header are not accepted",
                            Command::Data, Rules::builtin());
    CHECK(c.reason == Reason::NotCompliantRfc);
}

TEST_CASE("ember's own local failures get the reason they describe") {
    struct Case {
        int code;
        const char* enhanced;
        const char* text;
        const char* command;
        Reason want;
        bool hard;
    };
    const Case cases[] = {
        // Sisimai's reading of 4.4.1 "no answer from host": an expiry to come.
        {421, "4.4.1", "connect to mx.example.com[192.0.2.1]:25: Connection refused", "connect",
         Reason::Expired, false},
        {421, "4.4.2", "lost connection with mx.example.com[192.0.2.1] while sending RCPT TO",
         "RCPT TO", Reason::NetworkError, false},
        {554, "5.0.0", "No SMTP service here", "greeting", Reason::Blocked, false},
        {450, "4.7.5", "TLS with mx.example.com[192.0.2.1] failed: certificate verify failed",
         "STARTTLS", Reason::FailedStartTls, false},
        {450, "4.7.4", "TLS is required, but the server does not offer STARTTLS", "STARTTLS",
         Reason::FailedStartTls, false},
        {451, "4.4.7", "delivery time expired; last deferral: 452 4.2.2 Mailbox full", "queue",
         Reason::Expired, false},
        {550, "5.1.2", "example.invalid: no such domain (NXDOMAIN)", "dns", Reason::HostUnknown,
         true},
        {556, "5.1.10", "example.com publishes a null MX (RFC 7505)", "dns", Reason::NotAccept,
         true},
        {552, "5.3.4", "message size 30000000 exceeds size limit 10485760 of server mx",
         "MAIL FROM", Reason::EmailTooLarge, false},
    };
    for (const auto& c : cases) {
        CAPTURE(std::string(c.text));
        ember::core::Outcome o;
        o.code = c.code;
        o.enhanced = c.enhanced;
        o.text = c.text;
        o.command = c.command;
        o.local = true;
        const auto got = classify(o, Rules::builtin());
        CHECK(reason_name(got.reason) == reason_name(c.want));
        CHECK(got.hard == c.hard);
    }
}
