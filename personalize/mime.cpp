#include "personalize/mime.hpp"

#include "personalize/text.hpp"

#include <optional>

namespace ember::personalize::mime {
namespace {

// RFC 2045 5.1 tspecials, plus space and controls: what ends a token.
bool token_char(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 32 || u == 127)
        return false;
    return std::string_view("()<>@,;:\\\"/[]?=").find(c) == std::string_view::npos;
}

class Cursor {
public:
    explicit Cursor(std::string_view s) : s_(s) {}
    [[nodiscard]] bool done() const { return i_ >= s_.size(); }
    [[nodiscard]] char peek() const { return s_[i_]; }
    [[nodiscard]] std::size_t pos() const { return i_; }
    void advance() { ++i_; }

    // Blanks, folds and (nested) comments, RFC 5322 3.2.2 CFWS.
    void skip_cfws() {
        int depth = 0;
        for (; i_ < s_.size(); ++i_) {
            const char c = s_[i_];
            if (depth > 0 && c == '\\') {
                ++i_;
            } else if (c == '(') {
                ++depth;
            } else if (c == ')' && depth > 0) {
                --depth;
            } else if (depth == 0 && !text::is_blank(c) && c != '\r' && c != '\n') {
                return;
            }
        }
    }
    std::string token() {
        const auto b = i_;
        while (i_ < s_.size() && token_char(s_[i_]))
            ++i_;
        return text::to_lower(s_.substr(b, i_ - b));
    }
    // A parameter value: a quoted-string, or (leniently) anything up to
    // ';', a blank or a comment, since unquoted boundaries with '=' or '/'
    // are common.
    std::string value() {
        std::string out;
        if (i_ < s_.size() && s_[i_] == '"') {
            for (++i_; i_ < s_.size() && s_[i_] != '"'; ++i_) {
                if (s_[i_] == '\\' && i_ + 1 < s_.size())
                    ++i_;
                if (s_[i_] != '\r' && s_[i_] != '\n')
                    out += s_[i_];
            }
            if (i_ < s_.size())
                ++i_;
            return out;
        }
        while (i_ < s_.size() && s_[i_] != ';' && s_[i_] != '(' && !text::is_blank(s_[i_]) &&
               s_[i_] != '\r' && s_[i_] != '\n')
            out += s_[i_++];
        return out;
    }
    void skip_to(char c) {
        while (i_ < s_.size() && s_[i_] != c)
            ++i_;
    }

private:
    std::string_view s_;
    std::size_t i_ = 0;
};

bool field_name_ok(std::string_view name) {
    if (name.empty())
        return false;
    for (const char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 33 || u > 126 || c == ':')
            return false;
    }
    return true;
}

std::size_t strip_line_end(std::string_view text, std::size_t begin, std::size_t end) {
    if (end > begin && text[end - 1] == '\n')
        --end;
    if (end > begin && text[end - 1] == '\r')
        --end;
    return end;
}

struct Delimiter {
    std::size_t begin = 0; // start of the "--boundary" line
    std::size_t next = 0;  // after its line end
    bool close = false;    // "--boundary--"
};

// RFC 2046 5.1.1: a delimiter line starts a line, may carry trailing
// blanks (transport padding), and its preceding line end belongs to it.
std::optional<Delimiter> find_delimiter(std::string_view text, std::size_t from, std::size_t end,
                                        std::string_view delim) {
    for (;;) {
        const auto p = text.find(delim, from);
        if (p == std::string_view::npos || p + delim.size() > end)
            return std::nullopt;
        from = p + 1;
        if (p != 0 && text[p - 1] != '\n')
            continue;
        auto q = p + delim.size();
        const bool close = q + 2 <= end && text.substr(q, 2) == "--";
        if (!close) {
            while (q < end && text::is_blank(text[q]))
                ++q;
            if (q < end && text[q] != '\r' && text[q] != '\n')
                continue;
        }
        const auto nl = text.find('\n', q);
        return Delimiter{p, nl == std::string_view::npos || nl >= end ? end : nl + 1, close};
    }
}

std::vector<Span> split_parts(std::string_view text, Span body, std::string_view boundary) {
    const std::string delim = "--" + std::string(boundary);
    std::vector<Span> parts;
    auto d = find_delimiter(text, body.begin, body.end, delim);
    if (!d || d->close)
        return parts;
    auto start = d->next;
    for (;;) {
        const auto next = find_delimiter(text, start, body.end, delim);
        if (!next) {
            parts.push_back({start, body.end}); // no close delimiter
            return parts;
        }
        parts.push_back({start, std::max(start, strip_line_end(text, start, next->begin))});
        if (next->close)
            return parts;
        start = next->next;
    }
}

void parse_entity(std::string_view text, Span span, std::size_t depth, const Limits& limits,
                  std::size_t& count, Entity& e);

void split_multipart(std::string_view text, std::size_t depth, const Limits& limits,
                     std::size_t& count, Entity& e) {
    const auto* boundary = e.content_type.param("boundary");
    if (boundary == nullptr || boundary->value.empty() || depth >= limits.max_depth)
        return;
    const auto spans = split_parts(text, e.body, boundary->value);
    if (count + spans.size() > limits.max_parts)
        return;
    count += spans.size();
    e.children.resize(spans.size());
    for (std::size_t i = 0; i < spans.size(); ++i)
        parse_entity(text, spans[i], depth + 1, limits, count, e.children[i]);
}

void parse_entity(std::string_view text, Span span, std::size_t depth, const Limits& limits,
                  std::size_t& count, Entity& e) {
    auto block = parse_header(text, span);
    e.raw = span;
    e.header = block.header;
    e.body = block.body;
    e.has_separator = block.has_separator;
    e.fields = std::move(block.fields);
    if (const auto* ct = e.field("Content-Type"))
        e.content_type =
            parse_content_type(ct->value, static_cast<std::size_t>(ct->value.data() - text.data()));
    if (const auto* cte = e.field("Content-Transfer-Encoding"))
        e.encoding = parse_transfer_encoding(cte->value);
    if (const auto* cd = e.field("Content-Disposition")) {
        Cursor c(cd->value);
        c.skip_cfws();
        e.attachment = c.token() == "attachment";
    }
    if (e.multipart())
        split_multipart(text, depth, limits, count, e);
}

} // namespace

const Param* ContentType::param(std::string_view name) const {
    for (const auto& p : params)
        if (p.name == name)
            return &p;
    return nullptr;
}

const Field* Entity::field(std::string_view name) const {
    for (const auto& f : fields)
        if (text::iequals(f.name, name))
            return &f;
    return nullptr;
}

HeaderBlock parse_header(std::string_view text, Span span) {
    HeaderBlock block;
    std::size_t pos = span.begin;
    std::size_t value_begin = 0;
    auto finish_value = [&] {
        auto& f = block.fields.back();
        const auto end = strip_line_end(text, value_begin, f.raw.end);
        f.value = text.substr(value_begin, end - value_begin);
    };
    while (pos < span.end) {
        const auto nl = text.find('\n', pos);
        const auto next = nl == std::string_view::npos || nl >= span.end ? span.end : nl + 1;
        const auto line_end = strip_line_end(text, pos, next);
        const auto line = text.substr(pos, line_end - pos);
        if (line.empty()) {
            block.has_separator = true;
            block.header = {span.begin, pos};
            block.body = {next, span.end};
            return block;
        }
        if (text::is_blank(line.front())) {
            if (block.fields.empty())
                break; // a fold before any field: not a header
            block.fields.back().raw.end = next;
            finish_value();
            pos = next;
            continue;
        }
        const auto colon = line.find(':');
        if (colon == std::string_view::npos)
            break;
        auto name = line.substr(0, colon);
        while (!name.empty() && text::is_blank(name.back()))
            name.remove_suffix(1); // obs-optional (RFC 5322 4.5)
        if (!field_name_ok(name))
            break;
        block.fields.push_back({name, {}, {pos, next}});
        value_begin = pos + colon + 1;
        finish_value();
        pos = next;
    }
    block.header = {span.begin, pos};
    block.body = {pos, span.end};
    return block;
}

ContentType parse_content_type(std::string_view value, std::size_t value_offset) {
    ContentType ct;
    Cursor c(value);
    c.skip_cfws();
    auto type = c.token();
    c.skip_cfws();
    if (type.empty() || c.done() || c.peek() != '/')
        return ct; // RFC 2045 5.2: an invalid type means text/plain
    c.advance();
    c.skip_cfws();
    auto subtype = c.token();
    if (subtype.empty())
        return ct;
    ct.present = true;
    ct.type = std::move(type);
    ct.subtype = std::move(subtype);
    for (;;) {
        c.skip_cfws();
        if (c.done())
            break;
        if (c.peek() != ';') {
            c.skip_to(';'); // junk: resynchronise on the next parameter
            continue;
        }
        c.advance();
        c.skip_cfws();
        auto name = c.token();
        c.skip_cfws();
        if (name.empty() || c.done() || c.peek() != '=')
            continue;
        c.advance();
        c.skip_cfws();
        const auto begin = c.pos();
        auto v = c.value();
        ct.params.push_back(
            {std::move(name), std::move(v), {value_offset + begin, value_offset + c.pos()}});
    }
    return ct;
}

Entity parse(std::string_view message, const Limits& limits) {
    Entity root;
    std::size_t count = 1;
    parse_entity(message, {0, message.size()}, 0, limits, count, root);
    return root;
}

} // namespace ember::personalize::mime
