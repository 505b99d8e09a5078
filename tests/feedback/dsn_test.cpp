#include "feedback/dsn.hpp"

#include <doctest/doctest.h>

using namespace ember::feedback;

TEST_CASE("an RFC 3464 report gives its per-message fields and one entry per recipient") {
    const auto ds = parse_delivery_status("Reporting-MTA: dns; mx.example.org\n"
                                          "Arrival-Date: Thu, 29 Apr 2010 23:34:45 +0900\n"
                                          "\n"
                                          "Final-Recipient: rfc822; a@example.com\n"
                                          "Action: failed\n"
                                          "Status: 5.1.1 (bad destination mailbox)\n"
                                          "Remote-MTA: dns; mx.example.com\n"
                                          "Diagnostic-Code: smtp; 550 5.1.1 <a@example.com>:\n"
                                          "    User unknown\n"
                                          "\n"
                                          "Original-Recipient: rfc822;B@example.com\n"
                                          "Final-Recipient: RFC822; <b@example.com>\n"
                                          "Action: Delayed\n"
                                          "Status: 4.4.1\n");
    CHECK(ds.reporting_mta == "mx.example.org");
    CHECK(ds.arrival_date == "Thu, 29 Apr 2010 23:34:45 +0900");
    REQUIRE(ds.recipients.size() == 2);
    CHECK(ds.recipients[0].final_recipient == "a@example.com");
    CHECK(ds.recipients[0].status == "5.1.1");
    CHECK(ds.recipients[0].remote_mta == "mx.example.com");
    CHECK(ds.recipients[0].diagnostic_type == "smtp");
    CHECK(ds.recipients[0].diagnostic == "550 5.1.1 <a@example.com>: User unknown");
    CHECK(ds.recipients[1].original_recipient == "B@example.com");
    CHECK(ds.recipients[1].final_recipient == "b@example.com");
    CHECK(ds.recipients[1].action == "delayed");
}

TEST_CASE("recipient groups without blank lines between them still separate") {
    // Postfix writes Final- before Original-Recipient; a repeated field starts the next one.
    const auto ds = parse_delivery_status("Final-Recipient: rfc822; a@x.example\n"
                                          "Original-Recipient: rfc822; a@x.example\n"
                                          "Action: failed\nStatus: 5.0.0\n"
                                          "Final-Recipient: rfc822; b@x.example\n"
                                          "Action: failed\nStatus: 5.2.2\n");
    REQUIRE(ds.recipients.size() == 2);
    CHECK(ds.recipients[0].original_recipient == "a@x.example");
    CHECK(ds.recipients[1].final_recipient == "b@x.example");
    CHECK(ds.recipients[1].status == "5.2.2");
}

TEST_CASE("a local delivery recipient keeps its whole generic address") {
    const auto ds = parse_delivery_status("Action: failed\n"
                                          "Final-Recipient: rfc822;|/usr/bin/filter a@b /home/a\n"
                                          "Status: 5.0.0\nDiagnostic-Code: X-Unix; 255\n");
    REQUIRE(ds.recipients.size() == 1);
    CHECK(ds.recipients[0].final_recipient == "|/usr/bin/filter a@b /home/a");
    CHECK(ds.recipients[0].action == "failed");
    CHECK(ds.recipients[0].diagnostic_type == "x-unix");
    CHECK(ds.recipients[0].diagnostic == "255");
}

TEST_CASE("address types are stripped from addresses") {
    CHECK(strip_address_type("rfc822; <a@b.example>") == "a@b.example");
    CHECK(strip_address_type("a@b.example") == "a@b.example");
    CHECK(strip_address_type("rfc822;") == "");
}
