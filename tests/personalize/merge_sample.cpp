// Writes merged messages for merge_parse_check.py, which reads them with
// Python's email package: one file per case, <case>.eml, into the directory
// given as argv[1]. The inputs are here; the expected decoded texts are in
// the script. A case that does not compile or render is written as
// <case>.error with the reason.

#include "personalize/merge.hpp"
#include "personalize/transfer.hpp"

#include <boost/json/parse.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

using namespace ember::personalize;

namespace {

struct Case {
    const char* name;
    std::string message;
    const char* vars;
    std::vector<std::string> tags;
};

std::string crlf(std::string_view text) {
    return to_crlf(text);
}

std::vector<Case> cases() {
    return {
        {"alternative",
         crlf("From: \"{{ sender | default: \\\"News Team\\\" }}\" <news@example.com>\n"
              "To: {{ first }} {{ last }} <x@example.org>\n"
              "Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= {{ first }}, {{ offer }}\n"
              "MIME-Version: 1.0\n"
              "Content-Type: multipart/mixed; boundary=\"mixed\"\n"
              "\n"
              "--mixed\n"
              "Content-Type: multipart/alternative; boundary=\"alt\"\n"
              "\n"
              "--alt\n"
              "Content-Type: text/plain; charset=utf-8\n"
              "Content-Transfer-Encoding: base64\n"
              "\n"
              // "Hi {{ first }},\r\n{{#tag:vip}}VIP: {{/tag:vip}}{{ offer }}\r\n"
              "SGkge3sgZmlyc3QgfX0sDQp7eyN0YWc6dmlwfX1WSVA6IHt7L3RhZzp2aXB9fXt7IG9mZmVyIH19DQo=\n"
              "--alt\n"
              "Content-Type: text/html; charset=\"iso-8859-1\"\n"
              "Content-Transfer-Encoding: quoted-printable\n"
              "\n"
              "<p>Gr=FC=DFe {{ fi=\n"
              "rst }}! {{ offer }}</p>\n"
              "--alt--\n"
              "--mixed\n"
              "Content-Type: application/octet-stream; name=\"blob.bin\"\n"
              "Content-Disposition: attachment; filename=\"blob.bin\"\n"
              "Content-Transfer-Encoding: base64\n"
              "\n"
              "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
              "--mixed--\n"),
         R"({"first":"J\u00f6rg","last":"M\u00fcller, Jr.","offer":"50% <off> & \"more\""})",
         {"vip"}},
        {"seven_bit",
         crlf("From: a@example.com\nSubject: Hello {{ name }}\n\nDear {{ name }},\n"
              "{{#items}}- {{ title }}\n{{/items}}\nBye\n"),
         R"({"name":"\u65e5\u672c \u592a\u90ce","items":[{"title":"caf\u00e9"},{"title":"tea"}]})",
         {}},
        {"windows_1252",
         crlf("From: a@example.com\nSubject: plain\nMIME-Version: 1.0\n"
              "Content-Type: text/plain; charset=windows-1252; format=flowed\n"
              "Content-Transfer-Encoding: 8bit\n\n"
              "\x93{{ quote }}\x94 \x80{{ price | default: \"0\" }}\n"),
         R"({"quote":"\u00bfQu\u00e9?"})",
         {}},
        {"passthrough",
         crlf("From: a@example.com\nSubject: no markup\nX-Ember-Vars: {\"a\": 1}\n\nplain body\n"),
         "{}",
         {}},
    };
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: merge_sample DIR\n";
        return 2;
    }
    const std::string dir = argv[1];
    for (const auto& c : cases()) {
        auto compiled = CompiledMessage::compile(c.message);
        std::string out;
        std::string ext = ".eml";
        if (const auto* e = std::get_if<MergeError>(&compiled)) {
            out = e->enhanced + " " + e->text;
            ext = ".error";
        } else {
            const auto& m = std::get<CompiledMessage>(compiled);
            const auto vars_json = boost::json::parse(c.vars).as_object();
            Variables vars;
            vars.add(vars_json).add(m.message_variables()).tags(c.tags);
            auto rendered = m.render(vars);
            if (const auto* r = std::get_if<MergeError>(&rendered)) {
                out = r->enhanced + " " + r->text;
                ext = ".error";
            } else {
                out = std::get<std::string>(rendered);
            }
        }
        std::ofstream(dir + "/" + c.name + ext, std::ios::binary) << out;
    }
    return 0;
}
