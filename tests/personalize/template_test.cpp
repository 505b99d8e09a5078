#include "personalize/template.hpp"

#include <boost/json/parse.hpp>
#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace ember::personalize;

namespace {

struct Case {
    const char* source;
    const char* want;
};

// Renders `source` against `json` (an object), or "error: ..." when it does
// not parse.
std::string render(std::string_view source, std::string_view json = "{}",
                   Escape escape = Escape::None, std::vector<std::string> tags = {}) {
    const auto parsed = Template::parse(source);
    if (const auto* e = std::get_if<TemplateError>(&parsed))
        return "error: " + e->to_string();
    const auto vars_json = boost::json::parse(json).as_object();
    Variables vars;
    vars.add(vars_json).tags(tags);
    return std::get<Template>(parsed).render(vars, escape);
}

std::string parse_error(std::string_view source) {
    const auto parsed = Template::parse(source);
    if (const auto* e = std::get_if<TemplateError>(&parsed))
        return e->to_string();
    return "parsed";
}

} // namespace

TEST_CASE("variables, defaults and literals render as documented") {
    const char* vars = R"({"name":"Ann","n":3,"x":1.5,"yes":true,"no":false,"nil":null,
                          "empty":"","list":[1],"obj":{"a":{"b":"deep"}},"user.id":"flat"})";
    const std::vector<Case> cases = {
        {"Hello {{ name }}!", "Hello Ann!"},
        {"Hello {{name}}!", "Hello Ann!"},
        {"{{ n }} {{ x }} {{ yes }} {{ no }}", "3 1.5 true false"},
        {"[{{ missing }}]", "[]"},
        {"[{{ nil }}][{{ list }}][{{ obj }}]", "[][][]"},
        {"{{ missing | default: \"there\" }}", "there"},
        {"{{ empty | default: 'there' }}", "there"},
        {"{{ nil|default:\"x\" }}", "x"},
        {"{{ name | default: \"there\" }}", "Ann"},
        {"{{ no | default: \"x\" }}", "false"},
        {"{{ missing | default: \"say \\\"hi\\\"\" }}", "say \"hi\""},
        {"{{ obj.a.b }}", "deep"},
        {"{{ user.id }}", "flat"},
        {"{{ obj.a.b.c }}|{{ name.first }}", "|"},
        {"{{ \"{{\" }} name }}", "{{ name }}"},
        {"a }} b { c", "a }} b { c"},
        {"{{! a comment }}x{{!another}}", "x"},
        {"{{{ name }}}", "Ann"},
        {"\u00e9t\u00e9 {{ name }}", "\u00e9t\u00e9 Ann"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.source);
        CHECK(render(c.source, vars) == c.want);
    }
}

TEST_CASE("sections follow Mustache truthiness and iterate lists") {
    const char* vars = R"({"t":true,"f":false,"zero":0,"one":1,"s":"x","e":"","nil":null,
                          "items":[{"n":"a"},{"n":"b"}],"nums":[1,2,3],"none":[],
                          "person":{"first":"Ann"},"name":"outer"})";
    const std::vector<Case> cases = {
        {"{{#t}}yes{{/t}}{{#f}}no{{/f}}", "yes"},
        {"{{#zero}}no{{/zero}}{{#one}}yes{{/one}}", "yes"},
        {"{{#s}}yes{{/s}}{{#e}}no{{/e}}{{#nil}}no{{/nil}}{{#missing}}no{{/missing}}", "yes"},
        {"{{^f}}inv{{/f}}{{^t}}no{{/t}}{{^missing}}gone{{/missing}}{{^none}}empty{{/none}}",
         "invgoneempty"},
        {"{{#items}}[{{n}}]{{/items}}", "[a][b]"},
        {"{{#nums}}{{.}},{{/nums}}", "1,2,3,"},
        {"{{#none}}x{{/none}}", ""},
        {"{{#person}}{{first}} {{name}}{{/person}}", "Ann outer"},
        {"{{#items}}{{n}}{{#nums}}{{.}}{{/nums}}{{/items}}", "a123b123"},
        {"{{#s}}{{.}}{{/s}}", "x"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.source);
        CHECK(render(c.source, vars) == c.want);
    }
}

TEST_CASE("tag sections test the contact's tags, without regard to case") {
    const std::vector<std::string> tags = {"runner", "VIP"};
    CHECK(render("{{#tag:runner}}run{{/tag:runner}}", "{}", Escape::None, tags) == "run");
    CHECK(render("{{#tag:vip}}vip{{/tag:vip}}", "{}", Escape::None, tags) == "vip");
    CHECK(render("{{#tag:swimmer}}swim{{/tag:swimmer}}", "{}", Escape::None, tags).empty());
    CHECK(render("{{^tag:swimmer}}dry{{/tag:swimmer}}", "{}", Escape::None, tags) == "dry");
    CHECK(render("{{^tag:runner}}x{{/tag:runner}}", "{}", Escape::None, tags).empty());
}

TEST_CASE("a section tag alone on its line takes the line with it") {
    const auto out =
        render("Hi\r\n{{#t}}\r\n  yes\r\n  {{/t}}  \r\n{{! note }}\nend", R"({"t":1})");
    CHECK(out == "Hi\r\n  yes\r\nend");
    // Not alone: the line stays.
    CHECK(render("a {{#t}}b{{/t}}\nc", R"({"t":1})") == "a b\nc");
    CHECK(render("{{#t}}x{{/t}} {{name}}\n", R"({"t":1,"name":"n"})") == "x n\n");
    // A variable never takes its line.
    CHECK(render("{{name}}\nx", R"({"name":""})") == "\nx");
}

TEST_CASE("values are HTML-escaped in HTML, except in triple braces") {
    const char* vars = R"({"v":"<b>&\"Tom's\"</b>"})";
    CHECK(render("{{v}}", vars, Escape::Html) == "&lt;b&gt;&amp;&quot;Tom&#39;s&quot;&lt;/b&gt;");
    CHECK(render("{{{v}}}", vars, Escape::Html) == "<b>&\"Tom's\"</b>");
    CHECK(render("{{v}}", vars, Escape::None) == "<b>&\"Tom's\"</b>");
    CHECK(render("<p>{{missing | default: \"a<b\"}}</p>", vars, Escape::Html) == "<p>a&lt;b</p>");
    // Template text itself is never escaped, quoted strings included.
    CHECK(render("{{ \"<{{\" }}", vars, Escape::Html) == "<{{");
    CHECK(render("<p class=\"x\">&amp;</p>", vars, Escape::Html) == "<p class=\"x\">&amp;</p>");
}

TEST_CASE("a value is never parsed as markup") {
    CHECK(render("{{v}}", R"({"v":"{{ other }}","other":"leak"})") == "{{ other }}");
}

TEST_CASE("malformed templates are errors with line and column") {
    const std::vector<Case> cases = {
        {"Hello {{ name", "line 1, column 7: unclosed tag: '{{' without '}}' on its line"},
        {"a\nb {{ name\n}}", "line 2, column 3: unclosed tag: '{{' without '}}' on its line"},
        {"{{{ name }}", "line 1, column 1: unclosed tag: '{{{' without '}}}' on its line"},
        {"{{#a}}x", "line 1, column 1: '{{#a}}' is never closed"},
        {"{{^a}}x", "line 1, column 1: '{{^a}}' is never closed"},
        {"{{^a}}{{/b}}", "line 1, column 7: '{{/b}}' does not close '{{^a}}' opened at line 1, "
                         "column 1"},
        {"{{#a}}x{{/b}}", "line 1, column 8: '{{/b}}' does not close '{{#a}}' opened at line 1, "
                          "column 1"},
        {"x\n{{/a}}", "line 2, column 1: '{{/a}}' closes no open section"},
        {"{{ name | upper }}", "line 1, column 11: unknown filter 'upper' (the only filter is "
                               "'default')"},
        {"{{ name | }}", "line 1, column 11: expected a filter after '|'"},
        {"{{ name | default \"x\" }}", "line 1, column 19: expected ':' after 'default'"},
        {"{{ name | default: x }}", "line 1, column 20: 'default' needs a quoted string"},
        {"{{ name | default: \"x }}", "line 1, column 20: unterminated string"},
        {"{{ \"abc }}", "line 1, column 4: unterminated string"},
        {"{{ }}", "line 1, column 4: empty tag"},
        {"{{> partial }}", "line 1, column 3: '{{>' is not supported (no partials, delimiter "
                           "changes; use '{{{ }}}' for unescaped values)"},
        {"{{ a b }}", "line 1, column 6: expected '}}', found 'b'"},
        {"{{ a..b }}", "line 1, column 4: invalid name 'a..b'"},
        {"{{ $x }}", "line 1, column 4: unexpected character '$' in a tag"},
        {"{{ tag:vip }}", "line 1, column 1: 'tag:vip' tests a tag: use it as a section, "
                          "{{#tag:vip}}...{{/tag:vip}}"},
        {"{{#tag:}}{{/tag:}}", "line 1, column 1: 'tag:' needs a tag name"},
        {"{{! never closed", "line 1, column 1: unclosed comment: '{{!' without '}}'"},
        {"\u00e9\u00e9 {{x", "line 1, column 4: unclosed tag: '{{' without '}}' on its line"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.source);
        CHECK(parse_error(c.source) == c.want);
    }
}

TEST_CASE("sections nest up to the depth limit") {
    std::string ok;
    std::string deep;
    for (std::size_t i = 0; i < kMaxSectionDepth; ++i)
        ok += "{{#a}}";
    for (std::size_t i = 0; i < kMaxSectionDepth; ++i)
        ok += "{{/a}}";
    CHECK(parse_error(ok) == "parsed");
    deep = "{{#a}}" + ok + "{{/a}}";
    CHECK(parse_error(deep).find("sections nested deeper than 16") != std::string::npos);
}

TEST_CASE("a render stops when the budget runs out") {
    const auto parsed = Template::parse("{{#l}}{{#l}}{{#l}}xxxxxxxxxx{{/l}}{{/l}}{{/l}}");
    const auto& t = std::get<Template>(parsed);
    boost::json::object vars_json;
    boost::json::array list;
    for (int i = 0; i < 50; ++i)
        list.emplace_back(i);
    vars_json["l"] = list;
    Variables vars;
    vars.add(vars_json);

    RenderBudget iterations;
    iterations.iterations_left = 500;
    std::string out;
    t.render(vars, Escape::None, out, iterations);
    CHECK(iterations.exhausted);

    RenderBudget bytes;
    bytes.output_left = 1000;
    out.clear();
    t.render(vars, Escape::None, out, bytes);
    CHECK(bytes.exhausted);
    CHECK(out.size() <= 1000 + 10);

    RenderBudget plenty;
    plenty.iterations_left = 200'000;
    out.clear();
    t.render(vars, Escape::None, out, plenty);
    CHECK_FALSE(plenty.exhausted);
    CHECK(out.size() == 50 * 50 * 50 * 10);
    CHECK(plenty.output_left == 64 * 1024 * 1024 - out.size());
}

TEST_CASE("names and tags list what a template reads, once each") {
    const auto parsed = Template::parse(
        "{{a}}{{#b}}{{.}}{{a}}{{c.d}}{{/b}}{{#tag:x}}{{/tag:x}}{{^tag:x}}{{/tag:x}}");
    const auto& t = std::get<Template>(parsed);
    CHECK(t.names() == std::vector<std::string>{"a", "b", "c.d"});
    CHECK(t.tags() == std::vector<std::string>{"x"});
    CHECK(t.has_markup());
    CHECK_FALSE(std::get<Template>(Template::parse("plain { text }")).has_markup());
    CHECK(std::get<Template>(Template::parse("{{! only a comment }}")).has_markup());
}
