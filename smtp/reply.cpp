#include "smtp/reply.hpp"

#include "core/assert.hpp"

#include <fmt/core.h>

#include <algorithm>

namespace ember::smtp {

namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// The count of 1-3 digits at text[i...], 0 if none or more than three.
std::size_t digit_run(std::string_view text, std::size_t i) {
    std::size_t n = 0;
    while (i + n < text.size() && is_digit(text[i + n]))
        ++n;
    return n > 3 ? 0 : n;
}

// The length of an RFC 3463 status code (class "." subject "." detail) at the
// start of text when its class matches the reply code's first digit (RFC 2034
// 4) and SP or the end of the line follows; 0 otherwise.
std::size_t enhanced_length(std::string_view text, int code) {
    const char cls = static_cast<char>('0' + code / 100);
    if (text.size() < 5 || text[0] != cls || (cls != '2' && cls != '4' && cls != '5') ||
        text[1] != '.')
        return 0;
    const auto subject = digit_run(text, 2);
    if (subject == 0 || 2 + subject >= text.size() || text[2 + subject] != '.')
        return 0;
    const auto detail = digit_run(text, 3 + subject);
    const auto end = 3 + subject + detail;
    if (detail == 0 || (end < text.size() && text[end] != ' '))
        return 0;
    return end;
}

void append_sanitized(std::string& out, std::string_view text) {
    for (const char c : text) {
        const auto u = static_cast<unsigned char>(c);
        out.push_back((u < 0x20 && c != '\t') || u == 0x7f ? ' ' : c);
    }
}

} // namespace

Reply make_reply(int code, std::string_view enhanced, std::string_view text) {
    Reply r{code, std::string(enhanced), {}};
    if (!text.empty() && text.back() == '\n')
        text.remove_suffix(1);
    while (true) {
        const auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        r.lines.emplace_back(line);
        if (nl == std::string_view::npos)
            return r;
        text.remove_prefix(nl + 1);
    }
}

std::string format_reply(const Reply& reply) {
    EMBER_ASSERT(reply.code >= 200 && reply.code <= 599);
    const std::size_t count = std::max<std::size_t>(reply.lines.size(), 1);
    std::string out;
    for (std::size_t i = 0; i < count; ++i) {
        const bool last = i + 1 == count;
        const auto line =
            i < reply.lines.size() ? std::string_view(reply.lines[i]) : std::string_view();
        out += fmt::format("{:03d}", reply.code);
        std::string text = reply.enhanced;
        if (!text.empty() && !line.empty())
            text += ' ';
        text += line;
        if (!last || !text.empty())
            out += last ? ' ' : '-';
        append_sanitized(out, text);
        out += "\r\n";
    }
    return out;
}

std::string reply_summary(const Reply& reply) {
    std::string out = fmt::format("{:03d}", reply.code);
    if (!reply.enhanced.empty())
        out += ' ' + reply.enhanced;
    for (const auto& line : reply.lines) {
        if (!line.empty()) {
            out += ' ';
            append_sanitized(out, line);
        }
    }
    return out;
}

void ReplyParser::feed(std::string_view bytes) {
    while (!has_error() && !bytes.empty()) {
        const auto nl = bytes.find('\n');
        const auto take = nl == std::string_view::npos ? bytes.size() : nl + 1;
        partial_.append(bytes.substr(0, take));
        bytes.remove_prefix(take);
        // A line that cannot end within the limit is refused before it is
        // complete, so a peer that never sends LF cannot grow the buffer.
        if (partial_.size() > kMaxReplyLine ||
            (nl == std::string_view::npos && partial_.size() == kMaxReplyLine)) {
            fail("reply line longer than 2048 octets");
            return;
        }
        if (nl == std::string_view::npos)
            return;
        std::string_view line(partial_);
        line.remove_suffix(1);
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        take_line(line);
        partial_.clear();
    }
}

void ReplyParser::take_line(std::string_view line) {
    if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2]))
        return fail("reply does not start with a three-digit code");
    if (line[0] < '2' || line[0] > '5')
        return fail("reply code outside 2xx-5xx");
    if (line.size() > 3 && line[3] != ' ' && line[3] != '-')
        return fail("no space or dash after the reply code");
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (!lines_.empty() && code != code_)
        return fail("lines of one reply carry different codes");
    code_ = code;
    lines_.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
    if (line.size() > 3 && line[3] == '-')
        return;

    Reply r{code_, {}, std::move(lines_)};
    lines_.clear();
    const auto n = enhanced_length(r.lines.front(), r.code);
    if (n > 0) {
        r.enhanced = r.lines.front().substr(0, n);
        for (auto& text : r.lines) {
            if (text.compare(0, n, r.enhanced) == 0 && (text.size() == n || text[n] == ' '))
                text.erase(0, std::min(text.size(), n + 1));
        }
    }
    ready_.push_back(std::move(r));
}

void ReplyParser::fail(std::string_view why) {
    error_ = why;
    partial_.clear();
    lines_.clear();
}

std::optional<Reply> ReplyParser::next() {
    if (ready_.empty())
        return std::nullopt;
    auto r = std::move(ready_.front());
    ready_.pop_front();
    return r;
}

} // namespace ember::smtp
