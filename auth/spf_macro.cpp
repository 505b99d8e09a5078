#include "auth/spf_macro.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <vector>

namespace ember::auth {

namespace {

constexpr std::size_t kMaxDomainLength = 253; // RFC 1035 in dotted text form (7.3)
constexpr std::size_t kMaxLabelLength = 63;
constexpr unsigned kMaxParts = 128; // an IPv6 "i" has 32 parts; more digits mean "all"

bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_alnum(char c) {
    return is_alpha(c) || is_digit(c);
}
char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
bool is_delimiter(char c) {
    return std::string_view(".-+,/_=").find(c) != std::string_view::npos;
}

// One piece of a macro-string: a literal run, an escape (%% %_ %-) or a
// %{...} expansion.
struct Piece {
    enum class Kind { Literal, Escape, Expand } kind = Kind::Literal;
    std::string_view literal; // Literal: the run; Escape: the replacement text
    char letter = 0;          // Expand: lower-case letter
    bool url_escape = false;  // Expand: the letter was upper case
    unsigned keep = 0;        // Expand: right-hand parts to keep, 0 = all
    bool reverse = false;
    std::string delimiters; // Expand: "" means "."
};

bool letter_allowed(char letter, MacroUse use) {
    if (std::string_view("slodipvh").find(letter) != std::string_view::npos)
        return true;
    return use != MacroUse::Domain &&
           std::string_view("crt").find(letter) != std::string_view::npos;
}

// Parses "%{" letter transformers *delimiter "}" starting at text[pos] == '{'.
// pos ends after the '}'.
bool parse_expand(std::string_view text, std::size_t& pos, MacroUse use, Piece& piece) {
    ++pos; // '{'
    if (pos >= text.size())
        return false;
    const char letter = text[pos++];
    if (!is_alpha(letter) || !letter_allowed(lower(letter), use))
        return false;
    piece.kind = Piece::Kind::Expand;
    piece.letter = lower(letter);
    piece.url_escape = letter != piece.letter;
    bool has_digits = false;
    unsigned keep = 0;
    while (pos < text.size() && is_digit(text[pos])) {
        has_digits = true;
        keep = std::min(kMaxParts, keep * 10 + static_cast<unsigned>(text[pos] - '0'));
        ++pos;
    }
    if (has_digits && keep == 0)
        return false; // 7.3: "If a DIGIT is specified, the value MUST be nonzero."
    piece.keep = keep;
    if (pos < text.size() && lower(text[pos]) == 'r') {
        piece.reverse = true;
        ++pos;
    }
    while (pos < text.size() && is_delimiter(text[pos]))
        piece.delimiters.push_back(text[pos++]);
    if (pos >= text.size() || text[pos] != '}')
        return false;
    ++pos;
    return true;
}

std::optional<std::vector<Piece>> tokenize(std::string_view text, MacroUse use) {
    std::vector<Piece> pieces;
    std::size_t pos = 0;
    while (pos < text.size()) {
        const char c = text[pos];
        if (c == '%') {
            if (pos + 1 >= text.size())
                return std::nullopt;
            Piece piece;
            const char next = text[pos + 1];
            if (next == '{') {
                ++pos;
                if (!parse_expand(text, pos, use, piece))
                    return std::nullopt;
            } else if (next == '%' || next == '_' || next == '-') {
                piece.kind = Piece::Kind::Escape;
                piece.literal = next == '%' ? "%" : next == '_' ? " " : "%20";
                pos += 2;
            } else {
                return std::nullopt; // 7.1: '%' not followed by '{', '%', '-' or '_'
            }
            pieces.push_back(std::move(piece));
            continue;
        }
        const bool visible = c >= 0x21 && c <= 0x7e;
        const bool space = c == ' ' && use == MacroUse::Explanation;
        if (!visible && !space)
            return std::nullopt;
        const std::size_t start = pos;
        while (pos < text.size() && text[pos] != '%' &&
               ((text[pos] >= 0x21 && text[pos] <= 0x7e) ||
                (text[pos] == ' ' && use == MacroUse::Explanation)))
            ++pos;
        Piece literal;
        literal.literal = text.substr(start, pos - start);
        pieces.push_back(std::move(literal));
    }
    return pieces;
}

std::string letter_value(char letter, const MacroContext& context) {
    switch (letter) {
    case 's':
        return context.sender;
    case 'l':
        return context.local_part;
    case 'o':
        return context.sender_domain;
    case 'd':
        return context.domain;
    case 'i':
        return dotted_address(context.ip);
    case 'p':
        return context.validated_name;
    case 'v':
        return context.ip.is_v4() ? "in-addr" : "ip6";
    case 'h':
        return context.helo;
    case 'c':
        return context.ip.to_string();
    case 'r':
        return context.receiver;
    case 't':
        return std::to_string(context.timestamp);
    default:
        return {};
    }
}

// 7.3: split on the delimiters, reverse when asked, keep the right-most
// parts, join with ".".
std::string transform(const std::string& value, const Piece& piece) {
    std::string_view delimiters = piece.delimiters;
    if (delimiters.empty())
        delimiters = ".";
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    const std::string_view v = value;
    for (std::size_t i = 0; i <= v.size(); ++i) {
        if (i == v.size() || delimiters.find(v[i]) != std::string_view::npos) {
            parts.push_back(v.substr(start, i - start));
            start = i + 1;
        }
    }
    if (piece.reverse)
        std::reverse(parts.begin(), parts.end());
    std::size_t first = 0;
    if (piece.keep != 0 && piece.keep < parts.size())
        first = parts.size() - piece.keep;
    std::string out;
    for (std::size_t i = first; i < parts.size(); ++i) {
        if (i != first)
            out.push_back('.');
        out.append(parts[i]);
    }
    return out;
}

// 7.3: upper-case macros are URL-escaped: everything but the RFC 3986
// unreserved characters becomes %XX.
std::string url_escape(std::string_view value) {
    std::string out;
    for (const char c : value) {
        if (is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
            out.push_back(c);
        else
            out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    }
    return out;
}

} // namespace

bool is_macro_string(std::string_view text, MacroUse use) {
    return tokenize(text, use).has_value();
}

bool is_toplabel(std::string_view label) {
    if (label.empty() || !is_alnum(label.front()) || !is_alnum(label.back()))
        return false;
    bool has_alpha = false;
    bool has_hyphen = false;
    for (const char c : label) {
        if (c == '-')
            has_hyphen = true;
        else if (is_alpha(c))
            has_alpha = true;
        else if (!is_digit(c))
            return false;
    }
    // ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
    return has_alpha || has_hyphen;
}

bool is_domain_spec(std::string_view text) {
    const auto pieces = tokenize(text, MacroUse::Domain);
    if (!pieces || pieces->empty())
        return false;
    const Piece& last = pieces->back();
    if (last.kind != Piece::Kind::Literal)
        return true; // domain-end = macro-expand
    // domain-end = "." toplabel [ "." ], all inside the trailing literal run.
    std::string_view tail = last.literal;
    if (tail.ends_with('.'))
        tail.remove_suffix(1);
    const auto dot = tail.rfind('.');
    if (dot == std::string_view::npos)
        return false;
    return is_toplabel(tail.substr(dot + 1));
}

bool uses_p_macro(std::string_view text) {
    const auto pieces = tokenize(text, MacroUse::Explanation);
    if (!pieces)
        return false;
    return std::any_of(pieces->begin(), pieces->end(), [](const Piece& p) {
        return p.kind == Piece::Kind::Expand && p.letter == 'p';
    });
}

std::optional<std::string> expand_macros(std::string_view text, const MacroContext& context,
                                         MacroUse use) {
    const auto pieces = tokenize(text, use);
    if (!pieces)
        return std::nullopt;
    std::string out;
    for (const Piece& piece : *pieces) {
        if (piece.kind != Piece::Kind::Expand) {
            out.append(piece.literal);
            continue;
        }
        std::string value = transform(letter_value(piece.letter, context), piece);
        out += piece.url_escape ? url_escape(value) : value;
    }
    return out;
}

std::optional<std::string> query_name(std::string_view expanded) {
    std::string_view name = expanded;
    if (name.ends_with('.'))
        name.remove_suffix(1);
    while (name.size() > kMaxDomainLength) {
        const auto dot = name.find('.');
        if (dot == std::string_view::npos)
            return std::nullopt;
        name.remove_prefix(dot + 1);
    }
    if (name.empty())
        return std::nullopt;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= name.size(); ++i) {
        if (i == name.size() || name[i] == '.') {
            const std::size_t length = i - start;
            if (length == 0 || length > kMaxLabelLength)
                return std::nullopt;
            start = i + 1;
        }
    }
    return std::string(name);
}

std::string dotted_address(const core::IpAddress& ip) {
    if (ip.is_v4())
        return ip.to_string();
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < ip.size(); ++i) {
        const std::uint8_t byte = ip.data()[i];
        if (!out.empty())
            out.push_back('.');
        out.push_back(kHex[byte >> 4]);
        out.push_back('.');
        out.push_back(kHex[byte & 0xf]);
    }
    return out;
}

} // namespace ember::auth
