#include "personalize/tracking.hpp"

#include "personalize/mime.hpp"
#include "personalize/transfer.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace ember::personalize;

namespace {

const std::string kPublic = "https://mta.example.com";

TrackingOptions options() {
    TrackingOptions o;
    o.public_url = kPublic;
    return o;
}

// A token callback that records every URL it was asked to sign and answers
// "T" + its index, so the rewritten text says which link got which token.
struct Recorder {
    std::vector<std::string> urls;
    ClickToken fn() {
        return [this](std::string_view url) {
            urls.emplace_back(url);
            return "T" + std::to_string(urls.size() - 1);
        };
    }
};

std::string html_of(std::string_view html) {
    Recorder r;
    TrackingResult result;
    return rewrite_html(html, options(), r.fn(), "", result);
}

// The decoded body of the first text/html part of a message.
std::string html_part(std::string_view message) {
    const auto root = mime::parse(message);
    std::vector<const mime::Entity*> stack{&root};
    while (!stack.empty()) {
        const auto* e = stack.back();
        stack.pop_back();
        if (e->content_type.type == "text" && e->content_type.subtype == "html")
            return decode_transfer(message.substr(e->body.begin, e->body.size()), e->encoding);
        for (const auto& c : e->children)
            stack.push_back(&c);
    }
    return {};
}

const std::string kPixel = "<img src=\"https://mta.example.com/o/OPEN\" width=\"1\" height=\"1\" "
                           "alt=\"\" style=\"display:none\">";

} // namespace

TEST_CASE("http and https links become PUBLIC_URL/c/TOKEN for the decoded URL") {
    Recorder r;
    TrackingResult result;
    const auto out = rewrite_html("<p><a href=\"https://shop.example/p?a=1&amp;b=2\">x</a> "
                                  "<A class=y HREF='http://example.org/'>y</A> "
                                  "<area shape=rect href=https://map.example/z alt=z></p>",
                                  options(), r.fn(), "", result);
    CHECK(out == "<p><a href=\"https://mta.example.com/c/T0\">x</a> "
                 "<A class=y HREF=\"https://mta.example.com/c/T1\">y</A> "
                 "<area shape=rect href=\"https://mta.example.com/c/T2\" alt=z></p>");
    REQUIRE(r.urls.size() == 3);
    CHECK(r.urls[0] == "https://shop.example/p?a=1&b=2");
    CHECK(r.urls[1] == "http://example.org/");
    CHECK(r.urls[2] == "https://map.example/z");
    CHECK(result.links == 3);
}

TEST_CASE("links that are not http(s), opted out, ours or in comments stay as written") {
    const std::vector<std::string> kept{
        "<a href=\"mailto:bob@example.net\">m</a>",
        "<a href=\"tel:+15551234\">t</a>",
        "<a href=\"#top\">a</a>",
        "<a href=\"/relative\">r</a>",
        "<a href=\"javascript:alert(1)\">j</a>",
        "<a data-ember-notrack href=\"https://example.org/\">n</a>",
        "<a href=\"https://example.org/\" data-ember-notrack=\"1\">n</a>",
        "<a href=\"https://mta.example.com/u/UNSUB\">unsubscribe</a>",
        "<a href=\"https://MTA.example.com/c/ALREADY\">tracked</a>",
        "<!-- <a href=\"https://example.org/\">c</a> -->",
        "<!--[if mso]><a href=\"https://example.org/\">c</a><![endif]-->",
        "<script>var s = '<a href=\"https://example.org/\">';</script>",
        "<style>a[href=\"https://example.org/\"] {}</style>",
        "<abbr href=\"https://example.org/\">not a link</abbr>",
        "<a name=\"anchor\">no href</a>",
    };
    for (const auto& html : kept) {
        CAPTURE(html);
        CHECK(html_of(html) == html);
    }
}

TEST_CASE("character references in href are decoded before signing") {
    struct Case {
        std::string href, want;
    };
    const std::vector<Case> cases{
        {"https://e.example/?a=1&amp;b=2", "https://e.example/?a=1&b=2"},
        {"https://e.example/?a=1&#38;b=2", "https://e.example/?a=1&b=2"},
        {"https://e.example/?a=1&#x26;b=2", "https://e.example/?a=1&b=2"},
        {"https://e.example/?q=&quot;x&quot;", "https://e.example/?q=\"x\""},
        {"https://e.example/?copy=1&reg=2", "https://e.example/?copy=1&reg=2"},
        {"  https://e.example/trimmed  ", "https://e.example/trimmed"},
        {"&#104;ttps://e.example/", "https://e.example/"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.href);
        Recorder r;
        TrackingResult result;
        (void)rewrite_html("<a href=\"" + c.href + "\">x</a>", options(), r.fn(), "", result);
        REQUIRE(r.urls.size() == 1);
        CHECK(r.urls[0] == c.want);
    }
}

TEST_CASE("the open pixel goes before </body>, else at the end before the line ends") {
    Recorder r;
    TrackingResult result;
    auto o = options();
    CHECK(rewrite_html("<html><body><p>hi</p></BODY></html>\r\n", o, r.fn(), "OPEN", result) ==
          "<html><body><p>hi</p>" + kPixel + "</BODY></html>\r\n");
    CHECK(rewrite_html("<p>hi</p>\r\n", o, r.fn(), "OPEN", result) ==
          "<p>hi</p>" + kPixel + "\r\n");
    CHECK(result.pixels == 2);
    o.opens = false;
    CHECK(rewrite_html("<p>hi</p>", o, r.fn(), "OPEN", result) == "<p>hi</p>");
    o.opens = true;
    o.clicks = false;
    CHECK(rewrite_html("<a href=\"https://e.example/\">x</a>", o, r.fn(), "", result) ==
          "<a href=\"https://e.example/\">x</a>");
}

TEST_CASE("a callback answering \"\" leaves that link alone, and long URLs are not tracked") {
    TrackingResult result;
    const ClickToken refuse = [](std::string_view) {
        return std::string();
    };
    CHECK(rewrite_html("<a href=\"https://e.example/\">x</a>", options(), refuse, "", result) ==
          "<a href=\"https://e.example/\">x</a>");
    const auto long_url = "https://e.example/" + std::string(5000, 'a');
    CHECK(html_of("<a href=\"" + long_url + "\">x</a>") == "<a href=\"" + long_url + "\">x</a>");
}

TEST_CASE("a quoted-printable html part in multipart/alternative is rewritten; text is not") {
    const auto message = to_crlf("From: a@example.com\n"
                                 "MIME-Version: 1.0\n"
                                 "Content-Type: multipart/alternative; boundary=\"b1\"\n"
                                 "\n"
                                 "--b1\n"
                                 "Content-Type: text/plain; charset=utf-8\n"
                                 "\n"
                                 "Visit https://shop.example/p?a=1\n"
                                 "--b1\n"
                                 "Content-Type: text/html; charset=utf-8\n"
                                 "Content-Transfer-Encoding: quoted-printable\n"
                                 "\n"
                                 "<html><body><a href=3D\"https://shop.example/p?a=3D1&amp;b=3D=\n"
                                 "2\">Shop</a></body></html>\n"
                                 "--b1--\n");
    Recorder r;
    const auto result = add_tracking(message, options(), r.fn(), "OPEN");
    REQUIRE(result.changed);
    CHECK(result.html_parts == 1);
    CHECK(result.links == 1);
    CHECK(result.pixels == 1);
    REQUIRE(r.urls.size() == 1);
    CHECK(r.urls[0] == "https://shop.example/p?a=1&b=2");
    CHECK(html_part(result.content) == "<html><body><a href=\"https://mta.example.com/c/T0\">Shop"
                                       "</a>" +
                                           kPixel + "</body></html>");
    // The text part and everything around the html body are byte for byte.
    CHECK(result.content.find("Visit https://shop.example/p?a=1\r\n--b1\r\n") != std::string::npos);
    CHECK(result.content.find("Content-Transfer-Encoding: quoted-printable\r\n\r\n") !=
          std::string::npos);
    CHECK(result.content.ends_with("\r\n--b1--\r\n"));
}

TEST_CASE("a base64 html part is decoded, rewritten and re-encoded as base64") {
    std::string body;
    encode_base64(to_crlf("<p><a href=\"https://e.example/x\">x</a></p>\n"), body);
    const auto message = to_crlf("From: a@example.com\n"
                                 "MIME-Version: 1.0\n"
                                 "Content-Type: text/html; charset=us-ascii\n"
                                 "Content-Transfer-Encoding: base64\n"
                                 "\n") +
                         body + "\r\n";
    Recorder r;
    const auto result = add_tracking(message, options(), r.fn(), "OPEN");
    REQUIRE(result.changed);
    CHECK(r.urls == std::vector<std::string>{"https://e.example/x"});
    CHECK(html_part(result.content) ==
          "<p><a href=\"https://mta.example.com/c/T0\">x</a></p>" + kPixel + "\r\n");
    CHECK(result.content.find("Content-Transfer-Encoding: base64\r\n") != std::string::npos);
}

TEST_CASE("a 7bit html part whose line grows past 998 octets becomes quoted-printable") {
    const auto message =
        to_crlf("From: a@example.com\n"
                "Content-Type: text/html\n"
                "\n"
                "<p>" +
                std::string(900, 'x') + "<a href=\"https://e.example/\">x</a></p>\n");
    const ClickToken long_token = [](std::string_view) {
        return std::string(200, 'T');
    };
    const auto result = add_tracking(message, options(), long_token, "");
    REQUIRE(result.changed);
    CHECK(result.content.find("Content-Transfer-Encoding: quoted-printable\r\n") !=
          std::string::npos);
    CHECK(result.content.find("MIME-Version: 1.0\r\n") != std::string::npos);
    CHECK(html_part(result.content).find("/c/" + std::string(200, 'T') + "\"") !=
          std::string::npos);
}

TEST_CASE("html attachments, text-only messages and forwarded messages are left alone") {
    const auto text_only = to_crlf("From: a@example.com\nContent-Type: text/plain\n\n"
                                   "<a href=\"https://e.example/\">x</a>\n");
    Recorder r;
    CHECK_FALSE(add_tracking(text_only, options(), r.fn(), "OPEN").changed);
    CHECK_FALSE(has_html_part(text_only));
    const auto attached =
        to_crlf("From: a@example.com\n"
                "Content-Type: multipart/mixed; boundary=b\n\n"
                "--b\nContent-Type: text/plain\n\nhi\n"
                "--b\nContent-Type: text/html\n"
                "Content-Disposition: attachment; filename=a.html\n\n"
                "<a href=\"https://e.example/\">x</a>\n"
                "--b\nContent-Type: message/rfc822\n\n"
                "Content-Type: text/html\n\n<a href=\"https://e.example/\">y</a>\n"
                "--b--\n");
    CHECK_FALSE(add_tracking(attached, options(), r.fn(), "OPEN").changed);
    CHECK_FALSE(has_html_part(attached));
    CHECK(r.urls.empty());
    CHECK(has_html_part(to_crlf("Content-Type: text/html\n\n<p>x</p>\n")));
}

TEST_CASE("a UTF-16 html part is converted to UTF-8 and relabelled before rewriting") {
    std::string utf16 = "\xff\xfe"; // BOM, little endian
    for (const char c : std::string("<a href=\"https://e.example/\">x</a>\r\n")) {
        utf16.push_back(c);
        utf16.push_back('\0');
    }
    std::string body;
    encode_base64(utf16, body);
    const auto message = to_crlf("Content-Type: text/html; charset=\"utf-16\"\n"
                                 "Content-Transfer-Encoding: base64\n\n") +
                         body + "\r\n";
    Recorder r;
    const auto result = add_tracking(message, options(), r.fn(), "");
    REQUIRE(result.changed);
    CHECK(r.urls == std::vector<std::string>{"https://e.example/"});
    CHECK(result.content.find("charset=utf-8") != std::string::npos);
    CHECK(html_part(result.content) == "<a href=\"https://mta.example.com/c/T0\">x</a>\r\n");
}

TEST_CASE("tracking_url joins the public URL and the token with one slash") {
    CHECK(tracking_url("https://h", "c", "T") == "https://h/c/T");
    CHECK(tracking_url("https://h/mail/", "o", "T") == "https://h/mail/o/T");
}
