#include "smtp/received.hpp"

#include <doctest/doctest.h>

using namespace ember::smtp;

TEST_CASE("protocol keywords follow RFC 3848 and RFC 6531") {
    CHECK(protocol_keyword(false, false, false, false) == "SMTP");
    CHECK(protocol_keyword(true, false, false, false) == "ESMTP");
    CHECK(protocol_keyword(true, true, false, false) == "ESMTPS");
    CHECK(protocol_keyword(true, false, true, false) == "ESMTPA");
    CHECK(protocol_keyword(true, true, true, false) == "ESMTPSA");
    CHECK(protocol_keyword(true, true, true, true) == "UTF8SMTPSA");
}

TEST_CASE("Received: names TLS, the AUTH user and a single recipient, folded") {
    ReceivedFields f;
    f.helo = "client.example";
    f.client_ip = "192.0.2.7";
    f.hostname = "mta.example.com";
    f.tls = "TLSv1.3 TLS_AES_256_GCM_SHA384";
    f.auth_user = "app";
    f.queue_id = "0123456789ABC";
    f.recipient = "user@dest.example";
    f.unix_seconds = 0;
    CHECK(build_received(f) == "Received: from client.example ([192.0.2.7])\r\n"
                               "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n"
                               "\t(Authenticated sender: app)\r\n"
                               "\tby mta.example.com (ember) with ESMTPSA id 0123456789ABC\r\n"
                               "\tfor <user@dest.example>; Thu, 1 Jan 1970 00:00:00 +0000\r\n");
}

TEST_CASE("client-supplied text cannot break out of a header comment or line") {
    CHECK(sanitize_for_header("evil)\r\nX-Injected: 1") == "evil???X-Injected:?1");
    CHECK(sanitize_for_header("") == "unknown");
    CHECK(sanitize_for_header(std::string(400, 'a')).size() == 255);
}
