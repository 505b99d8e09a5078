#include "feedback/mime.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace ember::feedback::mime {
namespace {

char lower(char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

std::string to_lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), lower);
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                              [](char x, char y) { return lower(x) == lower(y); });
}

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos)
        return {};
    const auto last = text.find_last_not_of(" \t\r\n");
    return text.substr(first, last - first + 1);
}

// RFC 5322 3.6.8: printable US-ASCII but ':'; spaces before the colon are
// tolerated (Sendmail writes "Diagnostic-Code : ...", old MTAs worse).
std::size_t field_name_end(std::string_view line) {
    const auto colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos || colon > 76)
        return std::string_view::npos;
    const auto name = line.substr(0, colon);
    const auto stripped = name.substr(0, name.find_last_not_of(' ') + 1);
    if (stripped.empty())
        return std::string_view::npos;
    const bool ok = std::all_of(stripped.begin(), stripped.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u > 32 && u < 127;
    });
    return ok ? colon : std::string_view::npos;
}

std::string_view next_line(std::string_view text, std::size_t& pos) {
    const auto end = std::min(text.find('\n', pos), text.size());
    const auto line = text.substr(pos, end - pos);
    pos = end + 1;
    return line;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int base64_value(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

// The RFC 2047 "Q" encoding: quoted-printable with '_' for space.
std::string decode_q(std::string_view text) {
    std::string spaced(text);
    std::replace(spaced.begin(), spaced.end(), '_', ' ');
    return decode_quoted_printable(spaced);
}

// One encoded word at value[pos] ("=?cs?X?text?="); false when it is not one.
bool decode_word(std::string_view value, std::size_t& pos, std::string& out) {
    const auto q1 = value.find('?', pos + 2);
    if (q1 == std::string_view::npos || q1 + 2 >= value.size() || value[q1 + 2] != '?')
        return false;
    const auto end = value.find("?=", q1 + 3);
    if (end == std::string_view::npos)
        return false;
    const char kind = lower(value[q1 + 1]);
    const auto payload = value.substr(q1 + 3, end - q1 - 3);
    if (kind == 'b')
        out += decode_base64(payload);
    else if (kind == 'q')
        out += decode_q(payload);
    else
        return false;
    pos = end + 2;
    return true;
}

struct Walker {
    std::vector<Part>& out;

    void add(std::string mime_type, Headers headers, std::string body, std::size_t depth,
             bool preamble = false) {
        if (out.size() >= kMaxParts)
            return;
        Part part;
        part.mime_type = std::move(mime_type);
        part.headers = std::move(headers);
        part.body = std::move(body);
        part.depth = depth;
        part.index = out.size();
        part.preamble = preamble;
        out.push_back(std::move(part));
    }

    void walk(const Entity& entity, std::size_t depth) {
        const auto type = parse_content_type(entity.headers.get("Content-Type"));
        const auto encoding = entity.headers.get("Content-Transfer-Encoding");
        const auto boundary = type.param("boundary");
        if (type.type != "multipart" || depth >= kMaxDepth || boundary.empty()) {
            add(type.type == "multipart" ? "text/plain" : type.mime_type(), entity.headers,
                decode_transfer(entity.body, encoding), depth);
            return;
        }
        const auto parts = split_multipart(entity.body, boundary);
        if (parts.empty()) {
            // No boundary line at all: the body is what there is to read.
            add("text/plain", entity.headers, std::string(entity.body), depth);
            return;
        }
        add_preamble(entity.body, boundary, depth);
        for (const auto part : parts) {
            if (out.size() >= kMaxParts)
                return;
            walk(parse_part(part), depth + 1);
        }
    }

    void add_preamble(std::string_view body, std::string_view boundary, std::size_t depth) {
        const auto marker = "--" + std::string(boundary);
        const auto at = body.find(marker);
        const auto preamble = trim(body.substr(0, at));
        if (!preamble.empty())
            add("text/plain", {}, std::string(preamble), depth + 1, true);
    }

    // A part's headers are optional (RFC 2046 5.1.1): a body that starts
    // with an empty line, or with no field at all, has none.
    static Entity parse_part(std::string_view part) {
        if (part.starts_with('\n'))
            return {{}, part.substr(1)};
        return parse_entity(part);
    }
};

} // namespace

std::string Headers::get(std::string_view name) const {
    for (const auto& f : fields) {
        if (iequals(f.name, name))
            return f.value;
    }
    return "";
}

bool Headers::has(std::string_view name) const {
    return std::any_of(fields.begin(), fields.end(),
                       [&](const Field& f) { return iequals(f.name, name); });
}

std::vector<std::string> Headers::get_all(std::string_view name) const {
    std::vector<std::string> out;
    for (const auto& f : fields) {
        if (iequals(f.name, name))
            out.push_back(f.value);
    }
    return out;
}

std::string normalize_newlines(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\r') {
            out += '\n';
            if (i + 1 < text.size() && text[i + 1] == '\n')
                ++i;
        } else {
            out += text[i];
        }
    }
    return out;
}

Headers parse_headers(std::string_view block) {
    Headers headers;
    bool in_field = false;
    for (std::size_t pos = 0; pos < block.size();) {
        const auto line = next_line(block, pos);
        if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
            if (in_field) {
                auto& value = headers.fields.back().value;
                const auto more = trim(line);
                if (!more.empty())
                    value += (value.empty() ? "" : " ") + std::string(more);
            }
            continue;
        }
        const auto colon = field_name_end(line);
        in_field = colon != std::string_view::npos;
        if (!in_field)
            continue;
        const auto name = line.substr(0, colon);
        headers.fields.push_back({std::string(name.substr(0, name.find_last_not_of(' ') + 1)),
                                  std::string(trim(line.substr(colon + 1)))});
    }
    return headers;
}

Entity parse_entity(std::string_view text) {
    if (text.starts_with("From ")) {
        std::size_t pos = 0;
        (void)next_line(text, pos);
        text = text.substr(std::min(pos, text.size()));
    }
    const auto first_end = std::min(text.find('\n'), text.size());
    if (field_name_end(text.substr(0, first_end)) == std::string_view::npos)
        return {{}, text};
    const auto blank = text.find("\n\n");
    if (blank == std::string_view::npos)
        return {parse_headers(text), {}};
    return {parse_headers(text.substr(0, blank + 1)), text.substr(blank + 2)};
}

std::string ContentType::param(std::string_view name) const {
    for (const auto& [key, value] : params) {
        if (key == name)
            return value;
    }
    return "";
}

ContentType parse_content_type(std::string_view value) {
    ContentType out;
    const auto semi = std::min(value.find(';'), value.size());
    const auto full = to_lower(trim(value.substr(0, semi)));
    const auto slash = full.find('/');
    if (slash != std::string::npos && slash > 0 && slash + 1 < full.size() &&
        full.find_first_of(" \t\"") == std::string::npos) {
        out.type = full.substr(0, slash);
        out.subtype = full.substr(slash + 1);
    }
    std::size_t pos = semi;
    while (pos < value.size()) {
        ++pos; // past ';'
        const auto eq = value.find('=', pos);
        if (eq == std::string_view::npos)
            break;
        auto key = to_lower(trim(value.substr(pos, eq - pos)));
        std::size_t vpos = eq + 1;
        while (vpos < value.size() && (value[vpos] == ' ' || value[vpos] == '\t'))
            ++vpos;
        std::string param;
        if (vpos < value.size() && value[vpos] == '"') {
            const auto close = std::min(value.find('"', vpos + 1), value.size());
            param = std::string(value.substr(vpos + 1, close - vpos - 1));
            pos = std::min(value.find(';', close), value.size());
        } else {
            const auto end = std::min(value.find(';', vpos), value.size());
            param = std::string(trim(value.substr(vpos, end - vpos)));
            pos = end;
        }
        out.params.emplace_back(std::move(key), std::move(param));
    }
    return out;
}

std::vector<std::string_view> split_multipart(std::string_view body, std::string_view boundary) {
    std::vector<std::string_view> parts;
    const std::string marker = "--" + std::string(boundary);
    std::size_t start = std::string_view::npos; // of the current part
    for (std::size_t pos = 0; pos < body.size();) {
        const auto line_start = pos;
        const auto line = next_line(body, pos);
        if (!line.starts_with(marker))
            continue;
        const auto rest = trim(line.substr(marker.size()));
        const bool close = rest.starts_with("--");
        if (!rest.empty() && !close)
            continue; // a longer boundary that shares our prefix
        if (start != std::string_view::npos) {
            const auto end = line_start > start ? line_start - 1 : start;
            parts.push_back(body.substr(start, end - start));
        }
        if (close || parts.size() >= kMaxParts)
            return parts;
        start = std::min(pos, body.size());
    }
    if (start != std::string_view::npos && start < body.size())
        parts.push_back(body.substr(start));
    return parts;
}

std::string decode_transfer(std::string_view body, std::string_view encoding) {
    const auto e = to_lower(trim(encoding));
    if (e == "base64")
        return decode_base64(body);
    if (e == "quoted-printable")
        return decode_quoted_printable(body);
    return std::string(body);
}

std::string decode_base64(std::string_view text) {
    std::string out;
    out.reserve(text.size() * 3 / 4);
    unsigned buffer = 0;
    int bits = 0;
    for (const char c : text) {
        if (c == '=')
            break;
        const int v = base64_value(c);
        if (v < 0)
            continue;
        buffer = (buffer << 6) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((buffer >> bits) & 0xFF);
        }
    }
    return out;
}

std::string decode_quoted_printable(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '=') {
            out += text[i];
            continue;
        }
        // "=" at a line end is a soft break (trailing blanks tolerated).
        auto j = i + 1;
        while (j < text.size() && (text[j] == ' ' || text[j] == '\t'))
            ++j;
        if (j >= text.size() || text[j] == '\n') {
            i = j;
            continue;
        }
        const int hi = i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
        const int lo = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            out += '=';
            continue;
        }
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

std::string decode_words(std::string_view value) {
    std::string out;
    std::size_t pos = 0;
    std::size_t pending_space = std::string_view::npos; // whitespace between two words
    while (pos < value.size()) {
        if (value.substr(pos).starts_with("=?")) {
            std::string word;
            auto next = pos;
            if (decode_word(value, next, word)) {
                out += word;
                pos = next;
                pending_space = pos;
                continue;
            }
        }
        if (pending_space != std::string_view::npos && (value[pos] == ' ' || value[pos] == '\t')) {
            // RFC 2047 6.2: space between adjacent encoded words is dropped.
            const auto after = value.find_first_not_of(" \t", pos);
            if (after != std::string_view::npos && value.substr(after).starts_with("=?")) {
                pos = after;
                continue;
            }
        }
        pending_space = std::string_view::npos;
        out += value[pos++];
    }
    return out;
}

std::vector<Part> leaves(const Entity& message) {
    std::vector<Part> out;
    Walker{out}.walk(message, 0);
    return out;
}

} // namespace ember::feedback::mime
