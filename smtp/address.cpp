#include "smtp/address.hpp"

#include "core/net.hpp"

#include <optional>

namespace ember::smtp {

namespace {

bool is_alpha(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(unsigned char c) {
    return c >= '0' && c <= '9';
}

// RFC 5321 4.1.2 atext (the RFC 5322 set), plus UTF8-non-ascii under RFC 6531.
bool is_atext(unsigned char c, bool allow_utf8) {
    if (is_alpha(c) || is_digit(c))
        return true;
    if (c >= 0x80)
        return allow_utf8;
    static constexpr std::string_view kSpecials = "!#$%&'*+-/=?^_`{|}~";
    return kSpecials.find(static_cast<char>(c)) != std::string_view::npos;
}

// qtextSMTP = %d32-33 / %d35-91 / %d93-126, plus UTF8-non-ascii (RFC 6531).
bool is_qtext(unsigned char c, bool allow_utf8) {
    if (c >= 0x80)
        return allow_utf8;
    return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

// The length of the Quoted-string at the start of text, or nullopt.
std::optional<std::size_t> scan_quoted_string(std::string_view text, bool allow_utf8) {
    for (std::size_t i = 1; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '"')
            return i + 1;
        if (c == '\\') {
            // quoted-pairSMTP = %d92 %d32-126
            if (i + 1 >= text.size() || text[i + 1] < 32 || text[i + 1] > 126)
                return std::nullopt;
            ++i;
        } else if (!is_qtext(c, allow_utf8)) {
            return std::nullopt;
        }
    }
    return std::nullopt;
}

// The length of the Dot-string at the start of text (up to '@' or the end).
std::optional<std::size_t> scan_dot_string(std::string_view text, bool allow_utf8) {
    std::size_t i = 0;
    bool atom_empty = true;
    for (; i < text.size() && text[i] != '@'; ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c == '.') {
            if (atom_empty)
                return std::nullopt;
            atom_empty = true;
        } else if (is_atext(c, allow_utf8)) {
            atom_empty = false;
        } else {
            return std::nullopt;
        }
    }
    if (atom_empty)
        return std::nullopt; // empty, or a trailing dot
    return i;
}

bool is_let_dig(unsigned char c, bool allow_utf8) {
    return is_alpha(c) || is_digit(c) || (c >= 0x80 && allow_utf8);
}

bool is_valid_label(std::string_view label, bool allow_utf8) {
    if (label.empty())
        return false;
    // RFC 1035's 63 octets apply to the A-label; a U-label's length is only
    // known after Punycode, which is IDNA's business, not syntax checking.
    if (is_ascii(label) && label.size() > 63)
        return false;
    if (!is_let_dig(static_cast<unsigned char>(label.front()), allow_utf8) ||
        !is_let_dig(static_cast<unsigned char>(label.back()), allow_utf8))
        return false;
    for (const char ch : label) {
        if (ch != '-' && !is_let_dig(static_cast<unsigned char>(ch), allow_utf8))
            return false;
    }
    return true;
}

// Snum = 1*3DIGIT with a value of 0-255 (RFC 5321 4.1.3).
bool is_ipv4_literal(std::string_view text) {
    for (int part = 0; part < 4; ++part) {
        if (part > 0) {
            if (text.empty() || text.front() != '.')
                return false;
            text.remove_prefix(1);
        }
        std::size_t n = 0;
        unsigned value = 0;
        while (n < text.size() && n < 4 && is_digit(static_cast<unsigned char>(text[n])))
            value = value * 10 + static_cast<unsigned>(text[n++] - '0');
        if (n == 0 || n > 3 || value > 255)
            return false;
        text.remove_prefix(n);
    }
    return text.empty();
}

bool is_ipv6_literal(std::string_view text) {
    // IpAddress folds v4-mapped addresses to IPv4, so require a ':' to know
    // the text was IPv6 syntax rather than a bare dotted quad.
    return text.find(':') != std::string_view::npos && core::IpAddress::parse(text).has_value();
}

std::string_view domain_problem(std::string_view domain, bool allow_utf8) {
    if (domain.empty())
        return "missing domain";
    if (domain.size() > kMaxDomain)
        return "domain longer than 255 octets";
    if (domain.front() == '[')
        return is_valid_address_literal(domain) ? "" : "bad address literal";
    return is_valid_domain(domain, allow_utf8) ? "" : "bad domain";
}

} // namespace

bool is_ascii(std::string_view text) {
    for (const char c : text) {
        if (static_cast<unsigned char>(c) >= 0x80)
            return false;
    }
    return true;
}

bool is_valid_utf8(std::string_view text) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = p + text.size();
    while (p < end) {
        const unsigned c = *p;
        std::size_t n = 0;
        unsigned lo = 0x80;
        unsigned hi = 0xBF; // the allowed range of the second byte (RFC 3629 4)
        if (c < 0x80) {
            ++p;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80; // overlong
            hi = c == 0xED ? 0x9F : 0xBF; // surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            lo = c == 0xF0 ? 0x90 : 0x80; // overlong
            hi = c == 0xF4 ? 0x8F : 0xBF; // > U+10FFFF
        } else {
            return false;
        }
        if (static_cast<std::size_t>(end - p) <= n || p[1] < lo || p[1] > hi)
            return false;
        for (std::size_t k = 2; k <= n; ++k) {
            if (p[k] < 0x80 || p[k] > 0xBF)
                return false;
        }
        p += n + 1;
    }
    return true;
}

std::string ascii_lower(std::string_view text) {
    std::string out(text);
    for (auto& c : out) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

bool is_valid_domain(std::string_view domain, bool allow_utf8) {
    if (domain.empty() || domain.size() > kMaxDomain)
        return false;
    if (allow_utf8 ? !is_valid_utf8(domain) : !is_ascii(domain))
        return false;
    while (true) {
        const auto dot = domain.find('.');
        if (!is_valid_label(domain.substr(0, dot), allow_utf8))
            return false;
        if (dot == std::string_view::npos)
            return true;
        domain.remove_prefix(dot + 1);
    }
}

bool is_valid_address_literal(std::string_view literal) {
    if (literal.size() < 3 || literal.front() != '[' || literal.back() != ']')
        return false;
    const auto inner = literal.substr(1, literal.size() - 2);
    static constexpr std::string_view kTag = "ipv6:";
    if (inner.size() > kTag.size() && ascii_lower(inner.substr(0, kTag.size())) == kTag)
        return is_ipv6_literal(inner.substr(kTag.size()));
    return is_ipv4_literal(inner);
}

std::string_view mailbox_problem(std::string_view mailbox, bool allow_utf8) {
    if (mailbox.empty())
        return "empty address";
    if (!allow_utf8 && !is_ascii(mailbox))
        return "non-ASCII address";
    if (allow_utf8 && !is_valid_utf8(mailbox))
        return "invalid UTF-8";
    const auto local = mailbox.front() == '"' ? scan_quoted_string(mailbox, allow_utf8)
                                              : scan_dot_string(mailbox, allow_utf8);
    if (!local)
        return "bad local part";
    if (*local > kMaxLocalPart)
        return "local part longer than 64 octets";
    if (*local >= mailbox.size() || mailbox[*local] != '@')
        return "missing @domain";
    return domain_problem(mailbox.substr(*local + 1), allow_utf8);
}

bool is_valid_mailbox(std::string_view mailbox, bool allow_utf8) {
    return mailbox_problem(mailbox, allow_utf8).empty();
}

} // namespace ember::smtp
