#include "personalize/template.hpp"

#include "personalize/text.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <limits>
#include <unordered_map>

namespace ember::personalize {
namespace {

constexpr std::uint32_t kDot = std::numeric_limits<std::uint32_t>::max(); // "{{.}}"

bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
}

bool valid_name(std::string_view name) {
    if (name == ".")
        return true;
    return !name.empty() && name.front() != '.' && name.back() != '.' &&
           name.find("..") == std::string_view::npos;
}

std::uint32_t add_string(std::vector<std::string>& table, std::string_view value) {
    table.emplace_back(value);
    return static_cast<std::uint32_t>(table.size() - 1);
}

// Index of `value` in `table`, appended when new; `index` keeps the lookup
// linear in the template's size.
std::uint32_t intern(std::vector<std::string>& table,
                     std::unordered_map<std::string, std::uint32_t>& index,
                     std::string_view value) {
    const auto [it, added] =
        index.try_emplace(std::string(value), static_cast<std::uint32_t>(table.size()));
    if (added)
        table.emplace_back(value);
    return it->second;
}

// Line and column (characters, not bytes) of `offset`.
TemplateError located(std::string_view source, std::size_t offset, std::string message) {
    TemplateError e;
    e.offset = std::min(offset, source.size());
    for (std::size_t i = 0; i < e.offset; ++i) {
        if (source[i] == '\n') {
            ++e.line;
            e.column = 1;
        } else if ((static_cast<unsigned char>(source[i]) & 0xC0) != 0x80) {
            ++e.column;
        }
    }
    e.message = std::move(message);
    return e;
}

} // namespace

std::string TemplateError::to_string() const {
    return fmt::format("line {}, column {}: {}", line, column, message);
}

void append_html_escaped(std::string_view value, std::string& out) {
    std::size_t start = 0;
    for (;;) {
        const auto pos = value.find_first_of("&<>\"'", start);
        out.append(value.substr(start, pos - start));
        if (pos == std::string_view::npos)
            return;
        switch (value[pos]) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        default:
            out += "&#39;";
            break;
        }
        start = pos + 1;
    }
}

// ---------------------------------------------------------------------------
// Parsing

class Template::Parser {
public:
    Parser(Template& t, std::size_t max_depth) : t_(t), src_(t.source_), max_depth_(max_depth) {}

    // Empty message on success.
    TemplateError run();

private:
    struct Tag {
        enum class Kind { Variable, Literal, Open, Inverted, Close, Comment } kind;
        std::string name;
        std::string text; // Literal's string
        bool has_default = false;
        std::string fallback;
        bool raw = false;
        std::size_t end = 0; // one past the closing braces
    };
    struct Open {
        std::size_t op;
        std::string name;
        std::size_t offset;
        char sigil; // '#' or '^'
    };

    bool fail(std::size_t offset, std::string message) {
        if (error_.message.empty())
            error_ = located(src_, offset, std::move(message));
        return false;
    }
    void skip_blanks(std::size_t& i) const {
        while (i < src_.size() && text::is_blank(src_[i]))
            ++i;
    }
    bool parse_tag(std::size_t open, Tag& tag);
    bool parse_body(std::size_t i, std::size_t open, Tag& tag);
    bool parse_name(std::size_t& i, std::string& name);
    bool parse_string(std::size_t& i, std::string& out);
    bool parse_filter(std::size_t& i, Tag& tag);
    bool parse_close(std::size_t i, std::size_t open, Tag& tag);
    std::size_t standalone_end(std::size_t open, const Tag& tag, std::size_t text_start,
                               std::size_t& line_start) const;
    bool apply(std::size_t open, Tag& tag);
    void emit_text(std::size_t begin, std::size_t end);

    Template& t_;
    std::string_view src_;
    std::size_t max_depth_;
    std::vector<Open> open_;
    std::unordered_map<std::string, std::uint32_t> name_index_;
    std::unordered_map<std::string, std::uint32_t> tag_index_;
    TemplateError error_;
};

TemplateError Template::Parser::run() {
    std::size_t text_start = 0;
    std::size_t pos = 0;
    for (;;) {
        const auto open = src_.find("{{", pos);
        if (open == std::string_view::npos)
            break;
        Tag tag;
        if (!parse_tag(open, tag))
            return error_;
        std::size_t line_start = open;
        const auto next = standalone_end(open, tag, text_start, line_start);
        emit_text(text_start, line_start);
        if (!apply(open, tag))
            return error_;
        pos = text_start = next;
    }
    emit_text(text_start, src_.size());
    if (!open_.empty())
        fail(open_.back().offset,
             fmt::format("'{{{{{}{}}}}}' is never closed", open_.back().sigil, open_.back().name));
    return error_;
}

void Template::Parser::emit_text(std::size_t begin, std::size_t end) {
    if (end <= begin)
        return;
    Op op;
    op.kind = Kind::Text;
    op.a = static_cast<std::uint32_t>(begin);
    op.b = static_cast<std::uint32_t>(end - begin);
    t_.ops_.push_back(op);
}

// Mustache "standalone" tags: a section, close or comment tag with only
// blanks around it on its line takes the whole line, line end included.
// Returns where the text after the tag starts; `line_start` becomes where
// the text before it ends.
std::size_t Template::Parser::standalone_end(std::size_t open, const Tag& tag,
                                             std::size_t text_start,
                                             std::size_t& line_start) const {
    line_start = open;
    if (tag.kind == Tag::Kind::Variable || tag.kind == Tag::Kind::Literal)
        return tag.end;
    std::size_t begin = open;
    while (begin > text_start && text::is_blank(src_[begin - 1]))
        --begin;
    if (begin != 0 && src_[begin - 1] != '\n')
        return tag.end; // something else on the line before the tag
    std::size_t after = tag.end;
    skip_blanks(after);
    if (after < src_.size() && src_[after] == '\r' && after + 1 < src_.size() &&
        src_[after + 1] == '\n')
        after += 2;
    else if (after < src_.size() && src_[after] == '\n')
        ++after;
    else if (after != src_.size())
        return tag.end;
    line_start = begin;
    return after;
}

bool Template::Parser::parse_tag(std::size_t open, Tag& tag) {
    std::size_t i = open + 2;
    if (i < src_.size() && src_[i] == '{') {
        tag.raw = true;
        ++i;
    }
    skip_blanks(i);
    if (i >= src_.size() || src_[i] == '\r' || src_[i] == '\n')
        return fail(open, "unclosed tag: '{{' without '}}' on its line");
    return parse_body(i, open, tag);
}

bool Template::Parser::parse_body(std::size_t i, std::size_t open, Tag& tag) {
    const char c = src_[i];
    if (c == '!' && !tag.raw) {
        const auto close = src_.find("}}", i);
        if (close == std::string_view::npos)
            return fail(open, "unclosed comment: '{{!' without '}}'");
        tag.kind = Tag::Kind::Comment;
        tag.end = close + 2;
        return true;
    }
    if ((c == '#' || c == '^' || c == '/') && !tag.raw) {
        tag.kind = c == '#' ? Tag::Kind::Open : c == '^' ? Tag::Kind::Inverted : Tag::Kind::Close;
        ++i;
        skip_blanks(i);
        return parse_name(i, tag.name) && parse_close(i, open, tag);
    }
    if (c == '"' || c == '\'') {
        tag.kind = Tag::Kind::Literal;
        return parse_string(i, tag.text) && parse_close(i, open, tag);
    }
    if (name_char(c)) {
        tag.kind = Tag::Kind::Variable;
        if (!parse_name(i, tag.name))
            return false;
        skip_blanks(i);
        if (i < src_.size() && src_[i] == '|' && !parse_filter(i, tag))
            return false;
        return parse_close(i, open, tag);
    }
    if (c == '}')
        return fail(i, "empty tag");
    if (c == '>' || c == '=' || c == '&')
        return fail(i, fmt::format("'{{{{{}' is not supported (no partials, delimiter changes; "
                                   "use '{{{{{{ }}}}}}' for unescaped values)",
                                   c));
    return fail(i, fmt::format("unexpected character '{}' in a tag", c));
}

bool Template::Parser::parse_name(std::size_t& i, std::string& name) {
    const auto begin = i;
    while (i < src_.size() && name_char(src_[i]))
        ++i;
    name.assign(src_.substr(begin, i - begin));
    if (name.empty())
        return fail(begin, "expected a name");
    if (name.size() > kMaxNameLength)
        return fail(begin, fmt::format("name longer than {} characters", kMaxNameLength));
    if (!valid_name(name))
        return fail(begin, fmt::format("invalid name '{}'", name));
    return true;
}

bool Template::Parser::parse_string(std::size_t& i, std::string& out) {
    const auto begin = i;
    const char quote = src_[i++];
    for (; i < src_.size(); ++i) {
        const char c = src_[i];
        if (c == '\r' || c == '\n')
            break;
        if (c == quote) {
            ++i;
            return true;
        }
        if (c == '\\' && i + 1 < src_.size() && src_[i + 1] != '\n' && src_[i + 1] != '\r')
            ++i; // a backslash takes the next character as it is
        out += src_[i];
    }
    return fail(begin, "unterminated string");
}

bool Template::Parser::parse_filter(std::size_t& i, Tag& tag) {
    ++i; // '|'
    skip_blanks(i);
    const auto begin = i;
    while (i < src_.size() && ((src_[i] >= 'a' && src_[i] <= 'z') || src_[i] == '_' ||
                               (src_[i] >= 'A' && src_[i] <= 'Z')))
        ++i;
    const auto filter = src_.substr(begin, i - begin);
    if (filter != "default")
        return fail(begin, filter.empty() ? std::string("expected a filter after '|'")
                                          : fmt::format("unknown filter '{}' (the only filter "
                                                        "is 'default')",
                                                        filter));
    skip_blanks(i);
    if (i >= src_.size() || src_[i] != ':')
        return fail(i, "expected ':' after 'default'");
    ++i;
    skip_blanks(i);
    if (i >= src_.size() || (src_[i] != '"' && src_[i] != '\''))
        return fail(i, "'default' needs a quoted string");
    tag.has_default = true;
    if (!parse_string(i, tag.fallback))
        return false;
    skip_blanks(i);
    return true;
}

bool Template::Parser::parse_close(std::size_t i, std::size_t open, Tag& tag) {
    skip_blanks(i);
    const std::string_view close = tag.raw ? "}}}" : "}}";
    if (src_.substr(i, close.size()) == close) {
        tag.end = i + close.size();
        return true;
    }
    const auto line_end = std::min(src_.find('\n', i), src_.size());
    if (src_.substr(i, line_end - i).find(close) == std::string_view::npos)
        return fail(open, fmt::format("unclosed tag: '{}' without '{}' on its line",
                                      tag.raw ? "{{{" : "{{", close));
    return fail(i, fmt::format("expected '{}', found '{}'", close, src_[i]));
}

bool Template::Parser::apply(std::size_t open, Tag& tag) {
    t_.markup_ = true;
    Op op;
    op.raw = tag.raw;
    switch (tag.kind) {
    case Tag::Kind::Comment:
        return true;
    case Tag::Kind::Literal:
        op.kind = Kind::Literal;
        op.raw = true; // template text, like the text around it: never escaped
        op.a = add_string(t_.strings_, tag.text);
        t_.ops_.push_back(op);
        return true;
    case Tag::Kind::Variable:
        if (text::istarts_with(tag.name, "tag:"))
            return fail(open, fmt::format("'{0}' tests a tag: use it as a section, "
                                          "{{{{#{0}}}}}...{{{{/{0}}}}}",
                                          tag.name));
        op.kind = Kind::Variable;
        op.a = tag.name == "." ? kDot : intern(t_.names_, name_index_, tag.name);
        op.b = tag.has_default ? add_string(t_.strings_, tag.fallback) + 1 : 0;
        t_.ops_.push_back(op);
        return true;
    case Tag::Kind::Open:
    case Tag::Kind::Inverted: {
        if (open_.size() >= max_depth_)
            return fail(open, fmt::format("sections nested deeper than {}", max_depth_));
        const bool is_tag = text::istarts_with(tag.name, "tag:");
        if (is_tag && tag.name.size() == 4)
            return fail(open, "'tag:' needs a tag name");
        const bool inverted = tag.kind == Tag::Kind::Inverted;
        op.kind = is_tag ? Kind::TagSection : inverted ? Kind::Inverted : Kind::Section;
        op.inverted = inverted;
        op.a = is_tag ? intern(t_.tags_, tag_index_, std::string_view(tag.name).substr(4))
               : tag.name == "." ? kDot
                                 : intern(t_.names_, name_index_, tag.name);
        open_.push_back({t_.ops_.size(), tag.name, open, inverted ? '^' : '#'});
        t_.ops_.push_back(op);
        return true;
    }
    case Tag::Kind::Close:
        if (open_.empty())
            return fail(open, fmt::format("'{{{{/{}}}}}' closes no open section", tag.name));
        if (open_.back().name != tag.name) {
            const auto where = located(src_, open_.back().offset, "");
            return fail(open, fmt::format("'{{{{/{}}}}}' does not close '{{{{{}{}}}}}' opened at "
                                          "line {}, column {}",
                                          tag.name, open_.back().sigil, open_.back().name,
                                          where.line, where.column));
        }
        t_.ops_[open_.back().op].end = static_cast<std::uint32_t>(t_.ops_.size());
        open_.pop_back();
        return true;
    }
    return true;
}

std::variant<Template, TemplateError> Template::parse(std::string_view source,
                                                      std::size_t max_depth) {
    Template t;
    t.source_.assign(source);
    if (t.source_.size() >= std::numeric_limits<std::uint32_t>::max())
        return located(source, 0, "template larger than 4 GiB");
    Parser parser(t, max_depth);
    auto error = parser.run();
    if (!error.message.empty())
        return error;
    return t;
}

// ---------------------------------------------------------------------------
// Rendering

struct Template::Render {
    const Variables& vars;
    Escape escape;
    std::string& out;
    RenderBudget& budget;
    std::size_t limit; // out.size() may not pass it
    std::vector<const boost::json::value*> contexts;
    std::string scratch;

    // Inside sections the current element, then the enclosing ones, come
    // before the variables.
    [[nodiscard]] const boost::json::value* lookup(std::uint32_t name,
                                                   const std::vector<std::string>& names) const {
        if (name == kDot)
            return contexts.empty() ? nullptr : contexts.back();
        const auto& n = names[name];
        for (auto it = contexts.rbegin(); it != contexts.rend(); ++it)
            if (const auto* object = (*it)->if_object())
                if (const auto* v = find_in(*object, n))
                    return v;
        return vars.find(n);
    }
    void write(std::string_view s, bool raw) {
        if (escape == Escape::Html && !raw)
            append_html_escaped(s, out);
        else
            out.append(s);
        if (out.size() > limit)
            budget.exhausted = true;
    }
};

void Template::render(const Variables& vars, Escape escape, std::string& out,
                      RenderBudget& budget) const {
    const auto start = out.size();
    const auto limit = budget.output_left > std::numeric_limits<std::size_t>::max() - start
                           ? std::numeric_limits<std::size_t>::max()
                           : start + budget.output_left;
    Render r{vars, escape, out, budget, limit, {}, {}};
    render_ops(0, ops_.size(), r);
    const auto used = out.size() - start;
    budget.output_left = used > budget.output_left ? 0 : budget.output_left - used;
}

std::string Template::render(const Variables& vars, Escape escape) const {
    std::string out;
    RenderBudget budget;
    render(vars, escape, out, budget);
    if (budget.exhausted)
        out.clear();
    return out;
}

void Template::render_ops(std::size_t begin, std::size_t end, Render& r) const {
    for (std::size_t i = begin; i < end && !r.budget.exhausted;) {
        const Op& op = ops_[i];
        switch (op.kind) {
        case Kind::Text:
            r.out.append(source_, op.a, op.b);
            if (r.out.size() > r.limit)
                r.budget.exhausted = true;
            ++i;
            break;
        case Kind::Literal:
            r.write(strings_[op.a], op.raw);
            ++i;
            break;
        case Kind::Variable:
            render_variable(op, r);
            ++i;
            break;
        default:
            render_section(i, r);
            i = op.end;
            break;
        }
    }
}

void Template::render_variable(const Op& op, Render& r) const {
    const auto* value = r.lookup(op.a, names_);
    r.scratch.clear();
    bool present = false;
    append_text(value, r.scratch, &present);
    if (present)
        r.write(r.scratch, op.raw);
    else if (op.b != 0)
        r.write(strings_[op.b - 1], op.raw);
}

void Template::render_section(std::size_t index, Render& r) const {
    const Op& op = ops_[index];
    const auto body = index + 1;
    if (op.kind == Kind::TagSection) {
        if (r.vars.has_tag(tags_[op.a]) != op.inverted)
            render_ops(body, op.end, r);
        return;
    }
    const auto* value = r.lookup(op.a, names_);
    if (op.kind == Kind::Inverted) {
        if (!truthy(value))
            render_ops(body, op.end, r);
        return;
    }
    if (!truthy(value))
        return;
    if (const auto* list = value->if_array()) {
        for (const auto& element : *list) {
            if (r.budget.iterations_left == 0 || r.budget.exhausted) {
                r.budget.exhausted = true;
                return;
            }
            --r.budget.iterations_left;
            r.contexts.push_back(&element);
            render_ops(body, op.end, r);
            r.contexts.pop_back();
        }
        return;
    }
    r.contexts.push_back(value);
    render_ops(body, op.end, r);
    r.contexts.pop_back();
}

} // namespace ember::personalize
