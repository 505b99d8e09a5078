#pragma once
// The trace fields ember adds to a submitted message: Received: (RFC 5321
// 4.4, with RFC 3848 / RFC 6531 protocol keywords, the TLS version and
// cipher, and the AUTH user), plus Message-ID: and Date: for submissions
// that lack them (RFC 5322 3.6, RFC 6409 8). Pure functions, no clock: the
// caller passes the time.

#include <cstdint>
#include <string>
#include <string_view>

namespace ember::smtp {

struct ReceivedFields {
    std::string helo; // as the client sent it; sanitized here
    std::string client_ip;
    std::string hostname; // ours
    bool esmtp = true;
    std::string tls;       // "TLSv1.3 TLS_AES_256_GCM_SHA384" or empty
    std::string auth_user; // empty when not authenticated
    bool smtputf8 = false;
    std::string queue_id;
    std::string recipient; // named only when the message has exactly one
    std::int64_t unix_seconds = 0;
};

// "SMTP", "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA", "UTF8SMTP", "UTF8SMTPSA", ...
[[nodiscard]] std::string protocol_keyword(bool esmtp, bool tls, bool auth, bool smtputf8);

// A complete, folded "Received: ...\r\n" header field.
[[nodiscard]] std::string build_received(const ReceivedFields& f);

// "Message-ID: <QUEUEID@hostname>\r\n"
[[nodiscard]] std::string build_message_id(std::string_view queue_id, std::string_view hostname);

// Printable ASCII only, at most 255 octets, without characters that would
// end a comment or the header: what goes into a header from a client.
[[nodiscard]] std::string sanitize_for_header(std::string_view text);

} // namespace ember::smtp
