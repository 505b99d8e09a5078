#include "personalize/merge.hpp"

#include "personalize/mime.hpp"
#include "personalize/rfc2047.hpp"
#include "personalize/transfer.hpp"

#include <boost/json/parse.hpp>
#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace ember::personalize;

namespace {

std::string crlf(std::string_view text) {
    return to_crlf(text);
}

CompiledMessage compiled(std::string_view raw) {
    auto result = CompiledMessage::compile(raw);
    if (const auto* e = std::get_if<MergeError>(&result))
        FAIL("compile failed: ", e->enhanced, " ", e->text);
    return std::move(std::get<CompiledMessage>(result));
}

std::string compile_error(std::string_view raw) {
    const auto result = CompiledMessage::compile(raw);
    if (const auto* e = std::get_if<MergeError>(&result))
        return std::to_string(e->code) + " " + e->enhanced + " " + e->text;
    return "compiled";
}

std::string render(const CompiledMessage& m, std::string_view json = "{}",
                   std::vector<std::string> tags = {}) {
    const auto vars_json = boost::json::parse(json).as_object();
    Variables vars;
    vars.add(vars_json).add(m.message_variables()).tags(tags);
    auto result = m.render(vars);
    if (const auto* e = std::get_if<MergeError>(&result))
        return "error: " + e->enhanced + " " + e->text;
    return std::move(std::get<std::string>(result));
}

std::string merge(std::string_view raw, std::string_view json = "{}") {
    return render(compiled(raw), json);
}

// The decoded text of leaf `index` (depth first) of a rendered message.
struct Leaf {
    std::string content_type; // the raw field value, trimmed
    std::string encoding;
    std::string text;
};

void leaves(std::string_view msg, const mime::Entity& e, std::vector<Leaf>& out) {
    if (!e.children.empty()) {
        for (const auto& c : e.children)
            leaves(msg, c, out);
        return;
    }
    Leaf leaf;
    if (const auto* f = e.field("Content-Type"))
        leaf.content_type = std::string(f->value.substr(1));
    if (const auto* f = e.field("Content-Transfer-Encoding"))
        leaf.encoding = std::string(f->value.substr(1));
    leaf.text = decode_transfer(msg.substr(e.body.begin, e.body.size()), e.encoding);
    out.push_back(std::move(leaf));
}

std::vector<Leaf> leaves(std::string_view msg) {
    std::vector<Leaf> out;
    leaves(msg, mime::parse(msg), out);
    return out;
}

std::string header(std::string_view msg, std::string_view name) {
    const auto block = mime::parse_header(msg, {0, msg.size()});
    for (const auto& f : block.fields)
        if (f.name == name)
            return std::string(f.value);
    return "<absent>";
}

const std::string kAlternative = crlf("From: News <news@example.com>\n"
                                      "To: someone@example.org\n"
                                      "Subject: Hello {{ name | default: \"there\" }}\n"
                                      "MIME-Version: 1.0\n"
                                      "Content-Type: multipart/mixed; boundary=\"mixed\"\n"
                                      "\n"
                                      "This is a multi-part message in MIME format.\n"
                                      "--mixed\n"
                                      "Content-Type: multipart/alternative; boundary=\"alt\"\n"
                                      "\n"
                                      "--alt\n"
                                      "Content-Type: text/plain; charset=utf-8; format=flowed\n"
                                      "Content-Transfer-Encoding: base64\n"
                                      "\n"
                                      // "Hi {{ name }},\r\nyour code is {{ code }}.\r\n"
                                      "SGkge3sgbmFtZSB9fSwNCnlvdXIgY29kZSBpcyB7eyBjb2RlIH19Lg0K\n"
                                      "--alt\n"
                                      "Content-Type: text/html; charset=\"utf-8\"\n"
                                      "Content-Transfer-Encoding: quoted-printable\n"
                                      "\n"
                                      "<p style=3D\"color:red\">Hi {{ na=\n"
                                      "me }}, caf=C3=A9</p>{{#tag:vip}}<b>VIP</b>{{/tag:vip}}\n"
                                      "--alt--\n"
                                      "\n"
                                      "--mixed\n"
                                      "Content-Type: text/plain; name=\"notes.txt\"\n"
                                      "Content-Disposition: attachment; filename=\"notes.txt\"\n"
                                      "\n"
                                      "An attached {{ template }} stays as it is.\n"
                                      "--mixed\n"
                                      "Content-Type: application/octet-stream\n"
                                      "Content-Transfer-Encoding: base64\n"
                                      "\n"
                                      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
                                      "--mixed--\n"
                                      "epilogue {{ not merged }}\n");

} // namespace

TEST_CASE("a message without markup passes through byte for byte") {
    const std::string raw = crlf("From: a@example.com\nSubject: caf=?utf-8?Q?=C3=A9?= { x }\n"
                                 "Content-Type: text/plain; charset=iso-8859-1\n"
                                 "Content-Transfer-Encoding: quoted-printable\n"
                                 "\nno markup, caf=E9 =\nsoft } {\n");
    const auto m = compiled(raw);
    CHECK_FALSE(m.personalized());
    CHECK(m.content() == raw);
    CHECK(merge(raw, R"({"x":"y"})") == raw);
    CHECK(m.render_key(Variables{}).empty());
    CHECK(m.names().empty());
}

TEST_CASE("a multipart message without markup passes through byte for byte") {
    std::string raw = kAlternative;
    for (std::size_t pos; (pos = raw.find("{{")) != std::string::npos;)
        raw.replace(pos, 2, "((");
    // The base64 text part decodes to markup too: "Hi there,\r\n" instead.
    const auto b64 = raw.find("SGkge3");
    raw.replace(b64, raw.find('\r', b64) - b64, "SGkgdGhlcmUsDQo=");
    const auto m = compiled(raw);
    CHECK_FALSE(m.personalized());
    CHECK(merge(raw) == raw);
}

TEST_CASE("X-Ember-Vars is stripped and supplies the message's variables") {
    const std::string raw = crlf("From: a@example.com\nX-Ember-Vars: {\"name\": \"Ann\",\n"
                                 " \"n\": 2}\nSubject: Hi {{ name }} ({{ n }})\n\nbody\n");
    const auto m = compiled(raw);
    CHECK(m.message_variables().at("name").as_string() == "Ann");
    const auto out = render(m);
    CHECK(out == crlf("From: a@example.com\nSubject: Hi Ann (2)\n\nbody\n"));
    // A recipient's own values come first.
    CHECK(render(m, R"({"name":"Bob"})") ==
          crlf("From: a@example.com\nSubject: Hi Bob (2)\n\nbody\n"));
    // Without markup the field is still removed, nothing else changes.
    const auto plain = compiled(crlf("X-Ember-Vars: {}\nSubject: s\n\nbody\n"));
    CHECK_FALSE(plain.personalized());
    CHECK(plain.content() == crlf("Subject: s\n\nbody\n"));
}

TEST_CASE("a bad X-Ember-Vars is refused at compile time with 5.6.0") {
    CHECK(compile_error(crlf("X-Ember-Vars: {\"a\":\nSubject: x\n\nb\n"))
              .rfind("550 5.6.0 X-Ember-Vars is not valid JSON", 0) == 0);
    CHECK(compile_error(crlf("X-Ember-Vars: [1]\n\nb\n")) ==
          "550 5.6.0 X-Ember-Vars must be a JSON object");
    CHECK(compile_error(crlf("X-Ember-Vars: {}\nx-ember-vars: {}\n\nb\n")) ==
          "550 5.6.0 more than one X-Ember-Vars field");
}

TEST_CASE("variables come from the hook, then the message, then the contact") {
    const auto m = compiled(crlf("X-Ember-Vars: {\"a\":\"msg\",\"b\":\"msg\"}\n"
                                 "Subject: {{a}} {{b}} {{c}} {{d}}\n\nx\n"));
    const auto hook = boost::json::parse(R"({"a":"hook"})").as_object();
    const auto contact =
        boost::json::parse(R"({"a":"contact","b":"contact","c":"contact"})").as_object();
    Variables vars;
    vars.add(hook).add(m.message_variables()).add(contact);
    const auto out = std::get<std::string>(m.render(vars));
    CHECK(header(out, "Subject") == " hook msg contact");
}

TEST_CASE("multipart/alternative with base64 text and quoted-printable HTML merges each part") {
    const auto m = compiled(kAlternative);
    CHECK(m.personalized());
    CHECK(m.names() == std::vector<std::string>{"name", "code"});
    CHECK(m.tags() == std::vector<std::string>{"vip"});
    const auto out = render(m, R"({"name":"Zo\u00eb <Z&Co>","code":42})", {"VIP"});
    CHECK(header(out, "Subject") == " Hello =?utf-8?Q?Zo=C3=AB?= <Z&Co>");
    CHECK(decode_words(header(out, "Subject")) == " Hello Zo\xC3\xAB <Z&Co>");
    const auto parts = leaves(out);
    REQUIRE(parts.size() == 4);
    CHECK(parts[0].content_type == "text/plain; charset=utf-8; format=flowed");
    CHECK(parts[0].encoding == "base64");
    CHECK(parts[0].text == "Hi Zo\xC3\xAB <Z&Co>,\r\nyour code is 42.\r\n");
    CHECK(parts[1].encoding == "quoted-printable");
    // The line end before a boundary belongs to the boundary (RFC 2046 5.1.1).
    CHECK(parts[1].text ==
          "<p style=\"color:red\">Hi Zo\xC3\xAB &lt;Z&amp;Co&gt;, caf\xC3\xA9</p><b>VIP</b>");
    CHECK(parts[2].text == "An attached {{ template }} stays as it is.");
    // Everything after the alternative part is copied as it was.
    const auto tail = kAlternative.substr(kAlternative.find("\r\n--alt--"));
    CHECK(out.substr(out.size() - tail.size()) == tail);
    // And everything before the first merged part but the Subject.
    const auto head_end = kAlternative.find("SGkge3");
    const auto head = kAlternative.substr(kAlternative.find("MIME-Version"),
                                          head_end - kAlternative.find("MIME-Version"));
    CHECK(out.find(head) != std::string::npos);
}

TEST_CASE("missing variables render as their default or nothing and never fail") {
    const auto out = render(compiled(kAlternative));
    CHECK(header(out, "Subject") == " Hello there");
    const auto parts = leaves(out);
    CHECK(parts[0].text == "Hi ,\r\nyour code is .\r\n");
    CHECK(parts[1].text == "<p style=\"color:red\">Hi , caf\xC3\xA9</p>");
}

TEST_CASE("a legacy charset part is converted and relabelled UTF-8") {
    const std::string raw = crlf("Subject: x\nMIME-Version: 1.0\n"
                                 "Content-Type: text/plain; charset=\"ISO-8859-1\"; format=fixed\n"
                                 "Content-Transfer-Encoding: quoted-printable\n\n"
                                 "Gr=FC=DFe {{ name }}, =93cp1252 quotes=94\n");
    const auto out = merge(raw, R"({"name":"J\u00f6rg \u20ac"})");
    const auto parts = leaves(out);
    REQUIRE(parts.size() == 1);
    CHECK(parts[0].content_type == "text/plain; charset=utf-8; format=fixed");
    CHECK(parts[0].encoding == "quoted-printable");
    CHECK(parts[0].text == "Gr\xC3\xBC\xC3\x9F"
                           "e J\xC3\xB6rg \xE2\x82\xAC, \xE2\x80\x9C"
                           "cp1252 quotes\xE2\x80\x9D\r\n");
}

TEST_CASE("a windows-1252 8bit part is converted and stays 8bit") {
    const std::string raw =
        crlf("MIME-Version: 1.0\nContent-Type: text/html; charset=windows-1252\n"
             "Content-Transfer-Encoding: 8bit\n\n"
             "<p>\x93{{ q }}\x94 \x80</p>\n");
    const auto out = merge(raw, R"({"q":"\u00e9"})");
    CHECK(out == crlf("MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n"
                      "Content-Transfer-Encoding: 8bit\n\n"
                      "<p>\xE2\x80\x9C\xC3\xA9\xE2\x80\x9D \xE2\x82\xAC</p>\n"));
}

TEST_CASE("a 7bit part keeps its labels while values are ASCII and switches to QP otherwise") {
    const std::string raw = crlf("Subject: s\n\nDear {{ name }},\nbye\n");
    CHECK(merge(raw, R"({"name":"Ann"})") == crlf("Subject: s\n\nDear Ann,\nbye\n"));
    const auto out = merge(raw, R"({"name":"Zo\u00eb"})");
    CHECK(out == crlf("Subject: s\nContent-Type: text/plain; charset=utf-8\n"
                      "Content-Transfer-Encoding: quoted-printable\nMIME-Version: 1.0\n\n"
                      "Dear Zo=C3=AB,\nbye\n"));
    // A line over 998 octets also needs quoted-printable.
    const auto long_line = merge(crlf("Content-Type: text/plain; charset=utf-8\n"
                                      "Content-Transfer-Encoding: 8bit\n\n{{ v }}\n"),
                                 "{\"v\":\"" + std::string(1200, 'a') + "\"}");
    CHECK(long_line.find("Content-Transfer-Encoding: quoted-printable\r\n") != std::string::npos);
    CHECK(leaves(long_line)[0].text == std::string(1200, 'a') + "\r\n");
}

TEST_CASE("values are HTML-escaped in text/html and raw in text/plain") {
    const std::string raw =
        crlf("Content-Type: multipart/alternative; boundary=b\n\n--b\n"
             "Content-Type: text/plain\n\n{{ v }}\n--b\nContent-Type: text/html\n\n"
             "<a title=\"{{ v }}\">{{{ v }}}</a>\n--b--\n");
    const auto parts = leaves(merge(raw, R"({"v":"<>&\"'"})"));
    REQUIRE(parts.size() == 2);
    CHECK(parts[0].text == "<>&\"'");
    CHECK(parts[1].text == "<a title=\"&lt;&gt;&amp;&quot;&#39;\"><>&\"'</a>");
}

TEST_CASE("encoded-words in the Subject template are decoded before merging") {
    const std::string raw = crlf("Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= {{ name }}\n\nx\n");
    const auto out = merge(raw, R"({"name":"Ann"})");
    CHECK(decode_words(header(out, "Subject")) == " Gr\xC3\xBC\xC3\x9F"
                                                  "e Ann");
    const auto encoded_markup =
        merge(crlf("Subject: =?utf-8?Q?Hallo_=7B=7B_name_=7D=7D?=\n\nx\n"), R"({"name":"Ann"})");
    CHECK(header(encoded_markup, "Subject") == " Hallo Ann");
}

TEST_CASE("long merged subjects fold and decode back") {
    std::string value;
    for (int i = 0; i < 20; ++i)
        value += "m\\u00f6t\\u00f6rhead ";
    const auto out = merge(crlf("Subject: {{ v }}!\n\nx\n"), "{\"v\":\"" + value + "\"}");
    const auto field = header(out, "Subject");
    for (std::size_t start = 0, end; start < out.find("\r\n\r\n"); start = end + 2) {
        end = out.find("\r\n", start);
        CHECK(end - start <= 78);
    }
    std::string want;
    for (int i = 0; i < 20; ++i)
        want += "m\xC3\xB6t\xC3\xB6rhead ";
    CHECK(decode_words(unfold(field)) == " " + want + "!");
}

TEST_CASE("a value can never add a header field") {
    const auto out = merge(crlf("Subject: Hi {{ v }}\nTo: \"{{ v }}\" <a@example.org>\n\nx\n"),
                           R"({"v":"x\r\nBcc: evil@example.net"})");
    CHECK(out.find("\r\nBcc:") == std::string::npos);
    CHECK(header(out, "Subject") == " Hi x  Bcc: evil@example.net");
}

TEST_CASE("display names are merged in From, To, Cc and Reply-To; addresses never") {
    const std::string raw =
        crlf("From: \"{{ sender | default: \\\"The Team\\\" }}\" <news@example.com>\n"
             "To: {{ first }} {{ last }} <x@example.org>, Other <o@example.org>\n"
             "Cc: =?utf-8?Q?=7B=7Bfirst=7D=7D?= <c@example.org>\n"
             "Reply-To: {{ missing }} <r@example.com>\n\nx\n");
    const auto out = merge(raw, R"({"first":"J\u00f6rg","last":"Lee, Jr."})");
    CHECK(header(out, "From") == " The Team <news@example.com>");
    CHECK(header(out, "To") ==
          " =?utf-8?B?SsO2cmcgTGVlLCBKci4=?= <x@example.org>, Other <o@example.org>");
    CHECK(decode_words(header(out, "To")) ==
          " J\xC3\xB6rg Lee, Jr. <x@example.org>, Other <o@example.org>");
    CHECK(header(out, "Cc") == " =?utf-8?B?SsO2cmc=?= <c@example.org>");
    CHECK(header(out, "Reply-To") == " <r@example.com>");
    CHECK(compile_error(crlf("To: <{{ user }}@example.org>\n\nx\n")) ==
          "550 5.6.0 template error in To: markup is only merged in a display name, as in "
          "\"{{ name }}\" <user@example.com>");
    CHECK(compile_error(crlf("To: {{ email }}\n\nx\n")).find("only merged in a display name") !=
          std::string::npos);
}

TEST_CASE("markup in other header fields is left as it is") {
    const std::string raw = crlf("Message-ID: <{{id}}@example.com>\nX-Campaign: {{ c }}\n"
                                 "Received: from {{ helo\n\nbody\n");
    const auto m = compiled(raw);
    CHECK_FALSE(m.personalized());
    CHECK(merge(raw) == raw);
}

TEST_CASE("attachments and message/rfc822 parts are never merged") {
    const std::string raw =
        crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n"
             "Content-Disposition: attachment\n\n{{ a }}\n--b\nContent-Type: message/rfc822\n\n"
             "Subject: {{ b }}\n\n{{ c }}\n--b\nContent-Type: text/plain\n\nhi {{ d }}\n--b--\n");
    const auto m = compiled(raw);
    CHECK(m.names() == std::vector<std::string>{"d"});
    const auto out = merge(raw, R"({"a":"A","b":"B","c":"C","d":"D"})");
    std::string want = raw;
    want.replace(want.find("hi {{ d }}"), 10, "hi D");
    CHECK(out == want);
}

TEST_CASE("malformed templates are refused at compile time with where they are") {
    CHECK(compile_error(crlf("Subject: Hi {{ name\n\nx\n")) ==
          "550 5.6.0 template error in Subject: column 4: unclosed tag: '{{' without '}}' on "
          "its line");
    const auto unclosed = kAlternative.substr(0, kAlternative.find("{{#tag:vip}}")) + "{{#x}}" +
                          kAlternative.substr(kAlternative.find("{{#tag:vip}}"));
    CHECK(compile_error(unclosed) == "550 5.6.0 template error in text/html part 1.2: line 1, "
                                     "column 45: '{{#x}}' is never closed");
    CHECK(compile_error(crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nok\n--b\n"
                             "Content-Type: text/plain\n\nline\n{{ a | upper }}\n--b--\n")) ==
          "550 5.6.0 template error in text/plain part 2: line 2, column 8: unknown filter "
          "'upper' (the only filter is 'default')");
}

TEST_CASE("markup in a charset ember cannot convert is refused with 5.6.3") {
    CHECK(compile_error(crlf("Content-Type: text/plain; charset=x-martian\n\n\xE9 {{ a }}\n")) ==
          "550 5.6.3 text/plain part 1 has template markup in charset \"x-martian\", which "
          "cannot be converted to UTF-8");
    // Without markup the part is not even decoded.
    const std::string raw = crlf("Content-Type: text/plain; charset=x-martian\n\n\xE9\n");
    CHECK(merge(raw) == raw);
}

TEST_CASE("equal render keys give equal bytes; keys ignore unused variables") {
    const auto m = compiled(kAlternative);
    const auto a = boost::json::parse(R"({"name":"Ann","code":1,"unused":1})").as_object();
    const auto b = boost::json::parse(R"({"name":"Ann","code":1,"unused":2})").as_object();
    const auto c = boost::json::parse(R"({"name":"Ann","code":2})").as_object();
    const std::vector<std::string> vip = {"vip"};
    Variables va;
    va.add(a);
    Variables vb;
    vb.add(b);
    Variables vc;
    vc.add(c);
    Variables va_vip;
    va_vip.add(a).tags(vip);
    CHECK(m.render_key(va) == m.render_key(vb));
    CHECK(std::get<std::string>(m.render(va)) == std::get<std::string>(m.render(vb)));
    CHECK(m.render_key(va) != m.render_key(vc));
    CHECK(m.render_key(va) != m.render_key(va_vip));
    CHECK(std::get<std::string>(m.render(va)) != std::get<std::string>(m.render(va_vip)));
    // Missing and empty differ in the key (not necessarily in the output).
    const auto empty = boost::json::parse(R"({"name":"","code":1})").as_object();
    const auto missing = boost::json::parse(R"({"code":1})").as_object();
    Variables ve;
    ve.add(empty);
    Variables vm;
    vm.add(missing);
    CHECK(m.render_key(ve) != m.render_key(vm));
}

TEST_CASE("a render over the limits fails with 5.3.4 instead of growing without bound") {
    MergeLimits limits;
    limits.max_list_iterations = 100;
    auto result =
        CompiledMessage::compile(crlf("Subject: s\n\n{{#l}}{{#l}}x{{/l}}{{/l}}\n"), limits);
    const auto& m = std::get<CompiledMessage>(result);
    boost::json::object vars_json;
    vars_json["l"] = boost::json::array(20, 1);
    Variables vars;
    vars.add(vars_json);
    const auto out = m.render(vars);
    REQUIRE(std::holds_alternative<MergeError>(out));
    CHECK(std::get<MergeError>(out).enhanced == "5.3.4");
    vars_json["l"] = boost::json::array(9, 1);
    CHECK(std::holds_alternative<std::string>(m.render(vars)));
}

TEST_CASE("rendering is deterministic") {
    const auto m = compiled(kAlternative);
    const auto json = R"({"name":"Zo\u00eb","code":7})";
    CHECK(render(m, json) == render(m, json));
}
