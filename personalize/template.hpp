#pragma once
// The merge template language: a small Mustache subset, parsed once into a
// flat list of operations and rendered many times. README.md documents it;
// in short:
//
//   {{ name }}                     the value (HTML-escaped in text/html)
//   {{{ name }}}                   the value, never escaped
//   {{ name | default: "there" }}  the text when the value is missing or ""
//   {{#name}}...{{/name}}          when truthy; once per element of a list
//   {{^name}}...{{/name}}          when not truthy
//   {{#tag:runner}}...{{/tag:runner}}, {{^tag:runner}}...: tag membership
//   {{! comment }}                 nothing
//   {{ "{{" }}                     a quoted string, written as is: the escape
//                                  for a literal "{{"
//
// Names are ASCII letters, digits and "_.:-"; "." is the current list
// element. Nothing executes code: there are no partials, no lambdas, no
// delimiter changes and no filters but `default`. A missing name renders
// as its default or "" and never fails. A section tag alone on its line
// (Mustache "standalone") takes the line with it, so plain-text templates
// keep their layout.
//
// Errors (unclosed tag, mismatched or unclosed section, unknown filter,
// unterminated string, nesting deeper than the limit) carry the offset,
// line and column. Rendering is bounded by a RenderBudget shared by every
// template of a message: list iterations and output bytes, so hostile
// variables cannot blow a message up.
//
// A Template is immutable after parse(); render() is const and thread-safe.

#include "personalize/variables.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ember::personalize {

inline constexpr std::size_t kMaxSectionDepth = 16;
inline constexpr std::size_t kMaxNameLength = 256;

enum class Escape { None, Html };

struct TemplateError {
    std::size_t offset = 0;   // into the parsed text
    std::uint32_t line = 1;   // 1-based
    std::uint32_t column = 1; // 1-based, in characters
    std::string message;
    // "line 3, column 5: message"
    [[nodiscard]] std::string to_string() const;
};

// What one render of a whole message may still spend.
struct RenderBudget {
    std::size_t output_left = 64 * 1024 * 1024; // bytes, before transfer encoding
    std::size_t iterations_left = 10'000;       // list elements rendered
    bool exhausted = false;                     // set once either ran out
};

class Template {
public:
    [[nodiscard]] static std::variant<Template, TemplateError>
    parse(std::string_view source, std::size_t max_depth = kMaxSectionDepth);

    // False when the template is all literal text (it renders its source).
    [[nodiscard]] bool has_markup() const { return markup_; }

    // Appends the rendering to `out`. On exhausting the budget it stops
    // early and sets budget.exhausted; the output is then to be discarded.
    void render(const Variables& vars, Escape escape, std::string& out, RenderBudget& budget) const;
    // Convenience with a default budget; "" when it is exhausted.
    [[nodiscard]] std::string render(const Variables& vars, Escape escape = Escape::None) const;

    // The distinct variable names (without ".") and tags this template
    // reads, in order of first use: everything its output depends on.
    [[nodiscard]] const std::vector<std::string>& names() const { return names_; }
    [[nodiscard]] const std::vector<std::string>& tags() const { return tags_; }

private:
    enum class Kind : std::uint8_t { Text, Literal, Variable, Section, Inverted, TagSection };
    struct Op {
        Kind kind = Kind::Text;
        bool raw = false;      // {{{ }}}: never escaped
        bool inverted = false; // TagSection: {{^tag:x}}
        std::uint32_t a = 0;   // Text: offset; Literal: string; others: name or tag index
        std::uint32_t b = 0;   // Text: size; Variable: default string + 1 (0: none)
        std::uint32_t end = 0; // sections: the first op after the body
    };
    struct Render;
    class Parser;

    void render_ops(std::size_t begin, std::size_t end, Render& r) const;
    void render_variable(const Op& op, Render& r) const;
    void render_section(std::size_t index, Render& r) const;

    std::string source_;
    std::vector<Op> ops_;
    std::vector<std::string> names_;   // Variable/Section names, "." included
    std::vector<std::string> tags_;    // TagSection tags
    std::vector<std::string> strings_; // literals and defaults
    bool markup_ = false;              // any tag at all, comments included
};

// Appends `value` with & < > " ' as character references (HTML5 13.1.4
// escaping for text and quoted attribute values).
void append_html_escaped(std::string_view value, std::string& out);

} // namespace ember::personalize
