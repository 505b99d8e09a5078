#include "feedback/bounce_text.hpp"

#include "feedback/original_message.hpp"
#include "feedback/ses_notification.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace ember::feedback;

TEST_CASE("the SMTP command is found in each MTA's wording") {
    struct Case {
        const char* text;
        Command want;
    };
    const Case cases[] = {
        {"said: 550 5.1.1 no such user (in reply to RCPT TO command)", Command::Rcpt},
        {"(in reply to end of DATA command)", Command::Data},
        {"SMTP error from remote mail server after MAIL FROM:<a@b> SIZE=100:", Command::Mail},
        {"SMTP error from remote mail server after initial connection:", Command::Connect},
        {"192.0.2.1 does not like recipient.", Command::Rcpt},
        {"Connected to 192.0.2.1 but my name was rejected.", Command::Ehlo},
        {">>> DATA\n<<< 554 5.7.1 spam", Command::Data},
        {"Mailbox Full [RCPT_TO]", Command::Rcpt},
        {"did not like our MAIL FROM:", Command::Mail},
        {"no command here", Command::Unknown},
    };
    for (const auto& c : cases) {
        CAPTURE(std::string(c.text));
        CHECK(find_command(c.text) == c.want);
    }
}

TEST_CASE("HTML is reduced to text, but angle-bracketed addresses are not tags") {
    CHECK(html_to_text("<p>User &lt;unknown&gt;</p><br/>x&nbsp;y") == "\nUser <unknown>\n\nx y");
    CHECK(html_to_text("<b>to</b> <a@example.com>") == "to <a@example.com>");
    CHECK(html_to_text("5 < 6 &amp; &bogus;") == "5 < 6 & &bogus;");
}

TEST_CASE("known layouts are named by their fixed sentences") {
    CHECK(detect_format("Hi. This is the qmail-send program at x.") == "qmail");
    CHECK(detect_format("This is the mail system at host mx.") == "postfix");
    CHECK(detect_format("This message was created automatically by mail delivery software.") ==
          "exim");
    CHECK(detect_format("----- The following addresses had permanent fatal errors -----") ==
          "sendmail");
    CHECK(detect_format("Your message did not reach the following recipient(s):") == "exchange");
    CHECK(detect_format("lunch at noon?") == "");
}

TEST_CASE("recipients are read in each layout, up to where the returned message starts") {
    const auto r = read_bounce_text("I'm afraid I wasn't able to deliver your message.\n\n"
                                    "<a@example.com>:\n"
                                    "192.0.2.1 does not like recipient.\n"
                                    "Remote host said: 550 5.1.1 <a@example.com>... User unknown\n"
                                    "\n"
                                    "  b@example.org\n"
                                    "    host mx.example.org [192.0.2.2]: 452 4.2.2 Mailbox full\n"
                                    "c@example.net on Thu, 29 Apr 2010 00:00:00 -0000\n"
                                    "    The recipient name is not recognized\n"
                                    "\n"
                                    "--- Below this line is a copy of the message.\n\n"
                                    "To: <d@example.com>\n");
    REQUIRE(r.recipients.size() == 3);
    CHECK(r.recipients[0].address == "a@example.com");
    CHECK(r.recipients[0].diagnostic == "550 5.1.1 <a@example.com>... User unknown");
    CHECK(r.recipients[0].command == Command::Rcpt);
    CHECK(r.recipients[1].address == "b@example.org");
    CHECK(r.recipients[1].diagnostic == "452 4.2.2 Mailbox full");
    CHECK(r.recipients[2].address == "c@example.net");
    CHECK(r.recipients[2].diagnostic == "The recipient name is not recognized");
    CHECK(r.rest.starts_with("--- Below this line"));
}

TEST_CASE("addresses are taken from header values") {
    CHECK(first_address("\"Neko, Nyaan\" <nekonyaan@example.org>") == "nekonyaan@example.org");
    CHECK(first_address("plain@example.org.") == "plain@example.org");
    CHECK(first_address("no address") == "");
}

TEST_CASE("SES notifications parse raw and inside the SNS envelope") {
    const std::string raw =
        R"({"notificationType":"Bounce","bounce":{"bounceType":"Permanent",)"
        R"("bouncedRecipients":[{"emailAddress":"a@example.com","action":"failed",)"
        R"("status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 user unknown"}]},)"
        R"("mail":{"messageId":"m1","source":"bounces+q1@example.net","headers":)"
        R"([{"name":"X-Ember-ID","value":"q1"}]}})";
    const auto n = parse_ses_notification("junk before " + raw + "\n--\ntrailer");
    REQUIRE(n.has_value());
    CHECK(n->type == SesNotification::Type::Bounce);
    REQUIRE(n->recipients.size() == 1);
    CHECK(n->recipients[0].status == "5.1.1");
    CHECK(n->original.ember_id == "q1");
    CHECK(n->original.return_path == "bounces+q1@example.net");

    std::string escaped;
    for (const char c : raw) {
        if (c == '"')
            escaped += '\\';
        escaped += c;
    }
    const auto wrapped =
        parse_ses_notification(R"({"Type" : "Notification", "Message" : ")" + escaped + "\"}");
    REQUIRE(wrapped.has_value());
    CHECK(wrapped->recipients.size() == 1);
    CHECK_FALSE(parse_ses_notification("{not json").has_value());
    CHECK_FALSE(parse_ses_notification(R"({"notificationType":"Other"})").has_value());
}
