#pragma once
// SMTP replies (RFC 5321 4.2) with enhanced status codes (RFC 3463, RFC 2034):
// building and formatting the replies the server sends, and ReplyParser, the
// client side's incremental reader of a server's replies.
// Sans-I/O: bytes in, replies out. Not thread-safe per object; no Asio.
// This file formats and parses; interpreting what a code means for delivery
// (scope, retry) belongs to the one classifier that owns that.

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::smtp {

struct Reply {
    int code = 0;
    std::string enhanced;           // "2.0.0", or empty when there is none
    std::vector<std::string> lines; // text after the code (and enhanced code), one per line
    friend bool operator==(const Reply&, const Reply&) = default;
};

// text may hold '\n' (or "\r\n") to make several lines; one trailing newline
// is ignored; empty text makes one empty line.
[[nodiscard]] Reply make_reply(int code, std::string_view enhanced, std::string_view text);

// The wire form: "250-2.0.0 first\r\n250 2.0.0 last\r\n". The enhanced code is
// repeated on every line (RFC 2034 4). Control characters in the text (CR and
// LF above all) become spaces so text taken from a client can never forge a
// reply line. The code must be 200-599 (asserted: a bug, not input).
[[nodiscard]] std::string format_reply(const Reply& reply);

// One line for logs: "550 5.1.1 first line second line".
[[nodiscard]] std::string reply_summary(const Reply& reply);

// RFC 5321 4.2.1: 2yz and 3yz are positive, 4yz transient, 5yz permanent.
[[nodiscard]] constexpr bool is_positive(int code) {
    return code >= 200 && code < 400;
}
[[nodiscard]] constexpr bool is_transient(int code) {
    return code >= 400 && code < 500;
}
[[nodiscard]] constexpr bool is_permanent(int code) {
    return code >= 500 && code < 600;
}
[[nodiscard]] inline bool is_positive(const Reply& r) {
    return is_positive(r.code);
}
[[nodiscard]] inline bool is_transient(const Reply& r) {
    return is_transient(r.code);
}
[[nodiscard]] inline bool is_permanent(const Reply& r) {
    return is_permanent(r.code);
}

// The longest reply line the client reads, CRLF included. RFC 5321
// 4.5.3.1.5 says 512; real servers exceed it, and 2048 still bounds memory.
inline constexpr std::size_t kMaxReplyLine = 2048;

// Reads a server's replies from a byte stream split anywhere. A line ends in
// LF; a CR before it is dropped (a bare-LF server is tolerated, as Postfix's
// client does: a reply cannot smuggle anything). Malformed input (a code that
// is not three digits starting 2-5, a fourth character that is neither SP nor
// "-", lines of one reply with different codes, a line over kMaxReplyLine)
// puts the parser in a permanent error state: the client must drop the
// connection rather than guess. Replies completed before the error are kept.
class ReplyParser {
public:
    // Consumes all of bytes; ignored once in the error state.
    void feed(std::string_view bytes);
    // The oldest complete reply not yet taken.
    [[nodiscard]] std::optional<Reply> next();

    [[nodiscard]] bool has_error() const { return !error_.empty(); }
    [[nodiscard]] const std::string& error() const { return error_; }
    // Bytes are held beyond the replies taken with next(): a partial reply or
    // complete replies not yet taken. After taking the 220 to STARTTLS this
    // must be false, or the peer injected plaintext that would be read as if
    // it came over TLS (CVE-2011-0411, client side).
    [[nodiscard]] bool has_pending_input() const {
        return !partial_.empty() || !lines_.empty() || !ready_.empty();
    }

private:
    void take_line(std::string_view line);
    void fail(std::string_view why);

    std::string partial_;            // an incomplete line
    std::vector<std::string> lines_; // the lines of the reply being read
    int code_ = 0;                   // its code
    std::deque<Reply> ready_;
    std::string error_;
};

} // namespace ember::smtp
