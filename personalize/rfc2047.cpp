#include "personalize/rfc2047.hpp"

#include "personalize/charset.hpp"
#include "personalize/text.hpp"
#include "personalize/transfer.hpp"

#include <optional>
#include <vector>

namespace ember::personalize {
namespace {

// RFC 2047 2 allows 75; 68 keeps even "Reply-To: " and a first word
// within 78 columns (the fold cannot go before the first word).
constexpr std::size_t kMaxWord = 68;
constexpr std::size_t kWordOverhead = 12; // "=?utf-8?Q?" and "?="
constexpr std::size_t kMaxPayload = kMaxWord - kWordOverhead;
constexpr std::size_t kMaxBase64Chunk = 42; // 4 * ceil(42 / 3) = 56 <= kMaxPayload
constexpr std::size_t kFoldColumn = 78;     // RFC 5322 2.1.1
constexpr std::size_t kLongWord = 900;      // cannot fold: encode to split it
constexpr std::string_view kHex = "0123456789ABCDEF";

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    const char l = text::lower(c);
    return l >= 'a' && l <= 'f' ? l - 'a' + 10 : -1;
}

std::string decode_q(std::string_view encoded) {
    std::string out;
    for (std::size_t i = 0; i < encoded.size(); ++i) {
        const char c = encoded[i];
        if (c == '_') {
            out += ' '; // RFC 2047 4.2 (2)
        } else if (c == '=' && i + 2 < encoded.size() && hex_value(encoded[i + 1]) >= 0 &&
                   hex_value(encoded[i + 2]) >= 0) {
            out += static_cast<char>(hex_value(encoded[i + 1]) * 16 + hex_value(encoded[i + 2]));
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

struct Word {
    std::size_t end = 0; // one past "?="
    std::string text;    // UTF-8
};

// An encoded-word starting at `pos` ("=?"), RFC 2047 2: charset and
// encoding tokens, encoded text without '?' or blanks.
std::optional<Word> parse_word(std::string_view value, std::size_t pos) {
    const auto q1 = value.find('?', pos + 2);
    if (q1 == std::string_view::npos || q1 + 3 >= value.size() || value[q1 + 2] != '?')
        return std::nullopt;
    auto charset = value.substr(pos + 2, q1 - pos - 2);
    const char enc = text::lower(value[q1 + 1]);
    const auto q3 = value.find('?', q1 + 3);
    if (charset.empty() || (enc != 'b' && enc != 'q') || q3 == std::string_view::npos ||
        q3 + 1 >= value.size() || value[q3 + 1] != '=')
        return std::nullopt;
    const auto encoded = value.substr(q1 + 3, q3 - q1 - 3);
    for (const char c : charset)
        if (c == ' ' || c == '\t')
            return std::nullopt;
    for (const char c : encoded)
        if (c == ' ' || c == '\t')
            return std::nullopt;
    if (const auto star = charset.find('*'); star != std::string_view::npos)
        charset = charset.substr(0, star); // RFC 2231 5 language suffix
    const auto bytes = enc == 'b' ? decode_base64(encoded) : decode_q(encoded);
    auto utf8 = to_utf8(bytes, charset);
    if (!utf8)
        return std::nullopt;
    return Word{q3 + 2, std::move(*utf8)};
}

void append_plain(std::string_view segment, std::string& out) {
    if (auto utf8 = to_utf8(segment, ""))
        out += *utf8;
    else
        out += segment;
}

bool all_blank(std::string_view s) {
    for (const char c : s)
        if (!text::is_blank(c))
            return false;
    return true;
}

bool q_literal(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '!' ||
           c == '*' || c == '+' || c == '-' || c == '/';
}

std::size_t q_width(unsigned char c) {
    return q_literal(c) || c == ' ' ? 1 : 3;
}

// Length of the UTF-8 sequence starting with `lead` (1 for stray bytes).
std::size_t utf8_length(unsigned char lead) {
    if (lead >= 0xF0 && lead <= 0xF7)
        return 4;
    if (lead >= 0xE0)
        return lead <= 0xEF ? 3 : 1;
    if (lead >= 0xC0)
        return 2;
    return 1;
}

// Splits `s` at character boundaries into chunks whose cost stays within
// `budget`; `cost` prices one byte.
template <typename Cost>
std::vector<std::string_view> chunks(std::string_view s, std::size_t budget, Cost cost) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    std::size_t used = 0;
    for (std::size_t i = 0; i < s.size();) {
        const auto n = std::min(utf8_length(static_cast<unsigned char>(s[i])), s.size() - i);
        std::size_t c = 0;
        for (std::size_t k = 0; k < n; ++k)
            c += cost(static_cast<unsigned char>(s[i + k]));
        if (used + c > budget && i > start) {
            out.push_back(s.substr(start, i - start));
            start = i;
            used = 0;
        }
        used += c;
        i += n;
    }
    if (start < s.size())
        out.push_back(s.substr(start));
    return out;
}

void append_q_word(std::string_view chunk, std::string& out) {
    out += "=?utf-8?Q?";
    for (const char ch : chunk) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == ' ') {
            out += '_';
        } else if (q_literal(c)) {
            out += ch;
        } else {
            out += '=';
            out += kHex[c >> 4];
            out += kHex[c & 0x0F];
        }
    }
    out += "?=";
}

// `s` as encoded-words separated by single spaces, Q or B by length.
std::string encode_run(std::string_view s) {
    std::size_t q_len = 0;
    for (const char c : s)
        q_len += q_width(static_cast<unsigned char>(c));
    const std::size_t b_len = (s.size() + 2) / 3 * 4;
    std::string out;
    if (q_len <= b_len) {
        for (const auto chunk : chunks(s, kMaxPayload, q_width)) {
            if (!out.empty())
                out += ' ';
            append_q_word(chunk, out);
        }
        return out;
    }
    for (const auto chunk : chunks(s, kMaxBase64Chunk, [](unsigned char) { return 1; })) {
        if (!out.empty())
            out += ' ';
        out += "=?utf-8?B?";
        encode_base64(chunk, out);
        out += "?=";
    }
    return out;
}

bool needs_encoding(std::string_view word) {
    return !text::is_ascii(word) || word.find("=?") != std::string_view::npos ||
           word.size() > kLongWord;
}

bool is_atext(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

std::vector<std::string_view> split_spaces(std::string_view s) {
    std::vector<std::string_view> words;
    std::size_t start = 0;
    for (;;) {
        const auto sp = s.find(' ', start);
        words.push_back(s.substr(start, sp == std::string_view::npos ? s.npos : sp - start));
        if (sp == std::string_view::npos)
            return words;
        start = sp + 1;
    }
}

} // namespace

std::string unfold(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (const char c : value)
        if (c != '\r' && c != '\n')
            out += c;
    return out;
}

std::string decode_words(std::string_view value) {
    std::string out;
    std::size_t i = 0;
    bool after_word = false;
    while (i < value.size()) {
        const auto pos = value.find("=?", i);
        if (pos == std::string_view::npos) {
            append_plain(value.substr(i), out);
            break;
        }
        auto word = parse_word(value, pos);
        if (!word) {
            append_plain(value.substr(i, pos + 2 - i), out);
            i = pos + 2;
            after_word = false;
            continue;
        }
        const auto between = value.substr(i, pos - i);
        if (!(after_word && all_blank(between))) // RFC 2047 6.2
            append_plain(between, out);
        out += word->text;
        after_word = true;
        i = word->end;
    }
    return out;
}

std::string encode_words(std::string_view text) {
    if (!needs_encoding(text))
        return std::string(text);
    const auto words = split_spaces(text);
    std::vector<bool> needs(words.size());
    for (std::size_t i = 0; i < words.size(); ++i)
        needs[i] = needs_encoding(words[i]);
    // Spaces between two encoded-words would vanish (6.2): an empty word
    // (a run of spaces) between two encoded runs joins them.
    for (std::size_t i = 0; i < words.size(); ++i) {
        if (!words[i].empty() || i == 0 || !needs[i - 1])
            continue;
        auto j = i;
        while (j < words.size() && words[j].empty())
            ++j;
        if (j < words.size() && needs[j])
            for (auto k = i; k < j; ++k)
                needs[k] = true;
    }
    std::string out;
    for (std::size_t i = 0; i < words.size();) {
        if (i > 0)
            out += ' ';
        if (!needs[i]) {
            out += words[i++];
            continue;
        }
        const auto first = i;
        while (i < words.size() && needs[i])
            ++i;
        const auto begin = static_cast<std::size_t>(words[first].data() - text.data());
        const auto end =
            static_cast<std::size_t>(words[i - 1].data() - text.data()) + words[i - 1].size();
        out += encode_run(text.substr(begin, end - begin));
    }
    return out;
}

std::string encode_phrase(std::string_view name) {
    if (name.empty())
        return {};
    if (!text::is_ascii(name))
        return encode_run(name);
    bool atoms =
        name.find("=?") == std::string_view::npos && name.front() != ' ' && name.back() != ' ';
    for (const char c : name)
        atoms = atoms && (is_atext(c) || c == ' ');
    if (atoms)
        return std::string(name);
    std::string out = "\"";
    for (const char c : name) {
        if (c == '"' || c == '\\')
            out += '\\'; // RFC 5322 3.2.4 quoted-pair
        out += c;
    }
    out += '"';
    return out;
}

void append_folded_field(std::string_view name, std::string_view value, std::string& out) {
    out += name;
    out += ':';
    std::size_t column = name.size() + 1;
    bool first = true;
    for (const auto token : split_spaces(value)) {
        if (!first && !token.empty() && column + 1 + token.size() > kFoldColumn) {
            out += "\r\n";
            column = 0;
        }
        out += ' ';
        out += token;
        column += 1 + token.size();
        first = false;
    }
    out += "\r\n";
}

} // namespace ember::personalize
