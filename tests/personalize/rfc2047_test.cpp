#include "personalize/rfc2047.hpp"

#include "personalize/charset.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace ember::personalize;

TEST_CASE("charsets convert to UTF-8, mislabelled latin-1 as windows-1252") {
    CHECK(to_utf8("caf\xE9", "ISO-8859-1") == "caf\xC3\xA9");
    CHECK(to_utf8("\x93quoted\x94", "iso-8859-1") == "\xE2\x80\x9Cquoted\xE2\x80\x9D");
    CHECK(to_utf8("\x80", "windows-1252") == "\xE2\x82\xAC");
    CHECK(to_utf8("\x81", "windows-1252") == std::nullopt); // undefined in cp1252
    CHECK(to_utf8("\x81", "latin1") == "\xC2\x81");         // latin-1 fallback
    CHECK(to_utf8("\xC0\xC1", "koi8-r") == "\xD1\x8E\xD0\xB0");
    CHECK(to_utf8("\x1B$B$3$s\x1B(B", "iso-2022-jp") == "\xE3\x81\x93\xE3\x82\x93");
    CHECK(to_utf8("plain", "x-no-such-charset") == "plain"); // ASCII needs no converter
    CHECK(to_utf8("\xE9", "x-no-such-charset") == std::nullopt);
    CHECK(to_utf8("\xE9", "utf-8//IGNORE") == std::nullopt);
    CHECK(to_utf8("\xC3\xA9", "us-ascii") == "\xC3\xA9"); // unlabelled UTF-8
    CHECK(to_utf8("\xE9", "us-ascii") == "\xC3\xA9");
    CHECK(to_utf8("\xFF", "utf-8") == "\xFF"); // left as it is
}

TEST_CASE("UTF-8 validation refuses overlongs, surrogates and truncation") {
    CHECK(is_valid_utf8("caf\xC3\xA9 \xF0\x9F\x98\x80"));
    CHECK_FALSE(is_valid_utf8("\xC0\xAF"));
    CHECK_FALSE(is_valid_utf8("\xED\xA0\x80"));
    CHECK_FALSE(is_valid_utf8("\xC3"));
    CHECK_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));
}

TEST_CASE("encoded-words decode to UTF-8, joining adjacent words") {
    struct Case {
        const char* in;
        const char* want;
    };
    const std::vector<Case> cases = {
        {"=?utf-8?Q?Gr=C3=BC=C3=9Fe?= {{ name }}", "Gr\xC3\xBC\xC3\x9F"
                                                   "e {{ name }}"},
        {"=?ISO-8859-1?Q?Gr=FC=DFe?=", "Gr\xC3\xBC\xC3\x9F"
                                       "e"},
        {"=?utf-8?B?SGVsbG8=?= =?utf-8?B?IHdvcmxk?=", "Hello world"},
        {"=?utf-8?q?a_b?=  \t =?utf-8?q?c?= d", "a bc d"},
        {"=?utf-8*en?Q?hi?=", "hi"},
        {"=?utf-8?Q?Hallo_=7B=7B_name_=7D=7D?=", "Hallo {{ name }}"},
        {"=?x-unknown?Q?=E9?= stays", "=?x-unknown?Q?=E9?= stays"},
        {"not =?an encoded?= word", "not =?an encoded?= word"},
        {"raw caf\xE9", "raw caf\xC3\xA9"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.in);
        CHECK(decode_words(c.in) == c.want);
    }
    CHECK(unfold("a\r\n b\n\tc") == "a b\tc");
}

TEST_CASE("header text is encoded only where it needs to be, and decodes back") {
    struct Case {
        const char* in;
        const char* want;
    };
    const std::vector<Case> cases = {
        {"Hello Ann", "Hello Ann"},
        {"Hello Zo\xC3\xAB", "Hello =?utf-8?Q?Zo=C3=AB?="},
        // Q or B, whichever is shorter (ties go to the more readable Q).
        {"Zo\xC3\xAB and J\xC3\xB6rg", "=?utf-8?Q?Zo=C3=AB?= and =?utf-8?B?SsO2cmc=?="},
        {"Zo\xC3\xAB J\xC3\xB6rg!", "=?utf-8?B?Wm/DqyBKw7ZyZyE=?="},
        {"caf\xC3\xA9 au lait", "=?utf-8?B?Y2Fmw6k=?= au lait"},
        {"a =?x?Q?y?= b", "a =?utf-8?B?PT94P1E/eT89?= b"},
        {"\xE6\x97\xA5\xE6\x9C\xAC", "=?utf-8?B?5pel5pys?="},
    };
    for (const auto& c : cases) {
        CAPTURE(c.in);
        CHECK(encode_words(c.in) == c.want);
        CHECK(decode_words(encode_words(c.in)) == c.in);
    }
}

TEST_CASE("spaces between encoded runs survive decoding") {
    for (const char* in : {"\xC3\xA9  \xC3\xA9", "\xC3\xA9 \xC3\xA9", " \xC3\xA9", "\xC3\xA9 "}) {
        CAPTURE(in);
        CHECK(decode_words(encode_words(in)) == in);
    }
}

TEST_CASE("long values split into encoded-words of at most 68 characters") {
    std::string in;
    for (int i = 0; i < 60; ++i)
        in += "\xE2\x82\xAC"; // three-byte characters: never split inside one
    const auto encoded = encode_words(in);
    std::size_t start = 0;
    while (start < encoded.size()) {
        auto end = encoded.find(' ', start);
        if (end == std::string::npos)
            end = encoded.size();
        CHECK(end - start <= 68);
        start = end + 1;
    }
    CHECK(decode_words(encoded) == in);
}

TEST_CASE("display names become atoms, quoted strings or encoded-words") {
    CHECK(encode_phrase("Ann Lee") == "Ann Lee");
    CHECK(encode_phrase("Lee, Ann") == "\"Lee, Ann\"");
    CHECK(encode_phrase("Say \"hi\"\\") == "\"Say \\\"hi\\\"\\\\\"");
    CHECK(encode_phrase("J\xC3\xB6rg M.") == "=?utf-8?B?SsO2cmcgTS4=?=");
    CHECK(encode_phrase("Zo\xC3\xAB") == "=?utf-8?Q?Zo=C3=AB?=");
    CHECK(encode_phrase("").empty());
}

TEST_CASE("fields fold before spaces at 78 columns") {
    std::string out;
    append_folded_field("Subject", "short", out);
    CHECK(out == "Subject: short\r\n");
    out.clear();
    std::string value;
    for (int i = 0; i < 30; ++i)
        value += "word" + std::to_string(i) + " ";
    append_folded_field("Subject", value, out);
    std::size_t start = 0;
    std::string unfolded;
    while (true) {
        const auto end = out.find("\r\n", start);
        CHECK(end - start <= 78);
        unfolded += out.substr(start, end - start);
        start = end + 2;
        if (start >= out.size())
            break;
        CHECK(out[start] == ' ');
    }
    CHECK(unfolded == "Subject: " + value);
}
