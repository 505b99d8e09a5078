#include "smtp/received.hpp"

#include "smtp/message_header.hpp"

#include <fmt/core.h>

namespace ember::smtp {

std::string protocol_keyword(bool esmtp, bool tls, bool auth, bool smtputf8) {
    if (!esmtp)
        return "SMTP";
    std::string keyword = smtputf8 ? "UTF8SMTP" : "ESMTP";
    if (tls)
        keyword += 'S';
    if (auth)
        keyword += 'A';
    return keyword;
}

std::string sanitize_for_header(std::string_view text) {
    std::string out;
    for (const char c : text.substr(0, 255)) {
        const auto u = static_cast<unsigned char>(c);
        const bool printable = u > 0x20 && u < 0x7f && c != '(' && c != ')' && c != '\\';
        out += printable ? c : '?';
    }
    return out.empty() ? std::string("unknown") : out;
}

std::string build_received(const ReceivedFields& f) {
    std::string out =
        fmt::format("Received: from {} ([{}])\r\n", sanitize_for_header(f.helo), f.client_ip);
    if (!f.tls.empty()) {
        const auto space = f.tls.find(' ');
        out += fmt::format("\t(using {} with cipher {})\r\n", f.tls.substr(0, space),
                           space == std::string::npos ? "unknown" : f.tls.substr(space + 1));
    }
    if (!f.auth_user.empty())
        out += fmt::format("\t(Authenticated sender: {})\r\n", sanitize_for_header(f.auth_user));
    out += fmt::format("\tby {} (ember) with {} id {}", f.hostname,
                       protocol_keyword(f.esmtp, !f.tls.empty(), !f.auth_user.empty(), f.smtputf8),
                       f.queue_id);
    if (!f.recipient.empty())
        out += fmt::format("\r\n\tfor <{}>", f.recipient);
    out += fmt::format("; {}\r\n", format_rfc5322_date(f.unix_seconds));
    return out;
}

std::string build_message_id(std::string_view queue_id, std::string_view hostname) {
    return fmt::format("Message-ID: <{}@{}>\r\n", queue_id, hostname);
}

} // namespace ember::smtp
