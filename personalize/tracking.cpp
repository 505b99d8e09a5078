#include "personalize/tracking.hpp"

#include "personalize/charset.hpp"
#include "personalize/mime.hpp"
#include "personalize/text.hpp"
#include "personalize/transfer.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <utility>
#include <vector>

namespace ember::personalize {
namespace {

constexpr std::string_view kQpField = "Content-Transfer-Encoding: quoted-printable\r\n";
constexpr std::string_view kMimeVersion = "MIME-Version: 1.0\r\n";
constexpr std::size_t kMaxLine = 998; // RFC 5322 2.1.1, without CRLF

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

// Case-insensitive find of an ASCII needle from `from`.
std::size_t ifind(std::string_view hay, std::string_view needle, std::size_t from) {
    for (std::size_t i = from; i + needle.size() <= hay.size(); ++i)
        if (text::iequals(hay.substr(i, needle.size()), needle))
            return i;
    return std::string_view::npos;
}

// `<name` at `lt` followed by a tag-name end.
bool tag_is(std::string_view html, std::size_t lt, std::string_view name) {
    const auto end = lt + 1 + name.size();
    if (end > html.size() || !text::iequals(html.substr(lt + 1, name.size()), name))
        return false;
    return end == html.size() || is_space(html[end]) || html[end] == '>' || html[end] == '/';
}

void append_utf8(std::uint32_t cp, std::string& out) {
    if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        cp = 0xfffd; // HTML's rule for invalid references
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
        out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
}

// A numeric reference at text[i] == '&' ("&#38;", "&#x26", ...): how many
// characters it used, 0 when it is none.
std::size_t numeric_reference(std::string_view text, std::size_t i, std::string& out) {
    if (i + 2 >= text.size() || text[i + 1] != '#')
        return 0;
    std::size_t p = i + 2;
    int base = 10;
    if (text[p] == 'x' || text[p] == 'X') {
        base = 16;
        ++p;
    }
    std::uint32_t cp = 0;
    const auto [end, ec] = std::from_chars(text.data() + p, text.data() + text.size(), cp, base);
    if (end == text.data() + p)
        return 0;
    append_utf8(ec == std::errc() ? cp : 0xfffd, out);
    auto used = static_cast<std::size_t>(end - text.data()) - i;
    if (i + used < text.size() && text[i + used] == ';')
        ++used;
    return used;
}

struct Attribute {
    std::string_view name;
    std::string_view value; // raw, quotes removed
    std::size_t raw_begin = 0;
    std::size_t raw_end = 0; // the value with its quotes (absolute); == raw_begin: no value
};

// The attributes of the tag whose name ends at `i`; `tag_end` gets the
// offset after '>' (or the end of the text).
std::vector<Attribute> parse_attributes(std::string_view html, std::size_t i,
                                        std::size_t& tag_end) {
    std::vector<Attribute> attrs;
    const auto n = html.size();
    while (i < n) {
        while (i < n && (is_space(html[i]) || html[i] == '/'))
            ++i;
        if (i >= n || html[i] == '>')
            break;
        const auto name_begin = i;
        while (i < n && !is_space(html[i]) && html[i] != '=' && html[i] != '>' && html[i] != '/')
            ++i;
        Attribute a;
        a.name = html.substr(name_begin, i - name_begin);
        auto j = i;
        while (j < n && is_space(html[j]))
            ++j;
        if (j < n && html[j] == '=') {
            ++j;
            while (j < n && is_space(html[j]))
                ++j;
            a.raw_begin = j;
            if (j < n && (html[j] == '"' || html[j] == '\'')) {
                const auto close = html.find(html[j], j + 1);
                const auto stop = close == std::string_view::npos ? n : close;
                a.value = html.substr(j + 1, stop - j - 1);
                i = std::min(n, stop + 1);
            } else {
                i = j;
                while (i < n && !is_space(html[i]) && html[i] != '>')
                    ++i;
                a.value = html.substr(j, i - j);
            }
            a.raw_end = i;
        } else {
            a.raw_begin = a.raw_end = i;
        }
        attrs.push_back(a);
    }
    tag_end = std::min(n, i + 1);
    return attrs;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
    return text::istarts_with(s, prefix);
}

// The decoded href to track, or "" when the link stays as it is.
std::string trackable(std::string_view raw, const TrackingOptions& options) {
    auto url = decode_html_entities(raw);
    const auto first = url.find_first_not_of(" \t\r\n\f");
    if (first == std::string::npos)
        return {};
    url = url.substr(first, url.find_last_not_of(" \t\r\n\f") - first + 1);
    if (url.size() > options.max_url)
        return {};
    // White space or a control character inside: a broken link, and one
    // that must never reach a Location field.
    if (std::any_of(url.begin(), url.end(),
                    [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; }))
        return {};
    if (!starts_with_ci(url, "http://") && !starts_with_ci(url, "https://"))
        return {}; // mailto:, tel:, #anchors, relative links, javascript:, ...
    for (const auto kind : {"u", "c", "o"}) {
        const auto ours = tracking_url(options.public_url, kind, "");
        if (starts_with_ci(url, ours))
            return {}; // our unsubscribe link, or tracked already
    }
    return url;
}

// Rewrites the href of the <a>/<area> tag at `lt`; returns the offset after
// the tag. `copied` is how far html has been copied to `out`.
std::size_t link(std::string_view html, std::size_t lt, std::size_t name_size,
                 const TrackingOptions& options, const ClickToken& click, std::string& out,
                 std::size_t& copied, TrackingResult& result) {
    std::size_t tag_end = 0;
    const auto attrs = parse_attributes(html, lt + 1 + name_size, tag_end);
    const Attribute* href = nullptr;
    for (const auto& a : attrs) {
        if (text::iequals(a.name, "data-ember-notrack"))
            return tag_end;
        if (href == nullptr && text::iequals(a.name, "href"))
            href = &a;
    }
    if (href == nullptr || href->raw_begin == href->raw_end)
        return tag_end;
    const auto url = trackable(href->value, options);
    if (url.empty())
        return tag_end;
    const auto token = click(url);
    if (token.empty())
        return tag_end;
    out.append(html.substr(copied, href->raw_begin - copied));
    out.push_back('"');
    out += tracking_url(options.public_url, "c", token);
    out.push_back('"');
    copied = href->raw_end;
    ++result.links;
    return tag_end;
}

// Where the pixel goes: before the last </body>, else before the text's
// trailing line ends.
std::size_t pixel_position(std::string_view html) {
    std::size_t at = std::string_view::npos;
    for (auto p = ifind(html, "</body", 0); p != std::string_view::npos;
         p = ifind(html, "</body", p + 1))
        at = p;
    if (at != std::string_view::npos)
        return at;
    auto end = html.size();
    while (end > 0 && (html[end - 1] == '\n' || html[end - 1] == '\r'))
        --end;
    return end;
}

bool ascii_compatible(std::string_view charset) {
    for (const auto prefix : {"utf-16", "utf16", "utf-32", "utf32", "ucs-2", "ucs2", "ucs-4",
                              "utf-7", "utf7", "iso-2022", "csiso2022", "hz-gb"})
        if (text::istarts_with(charset, prefix))
            return false;
    return true;
}

bool fits_8bit(std::string_view text) {
    std::size_t line = 0;
    for (const char c : text) {
        if (c == '\0')
            return false;
        if (c == '\n')
            line = 0;
        else if (++line > kMaxLine + 1) // + 1: the CR of CRLF
            return false;
    }
    return true;
}

struct Replacement {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::string text;
};

// The part's new body in its encoding; `to_qp` when it must change to
// quoted-printable.
std::string encode_part(std::string text, TransferEncoding encoding, bool trailing_newline,
                        bool& to_qp) {
    if (!is_crlf_text(text)) // canonical form, RFC 2045 6.7 (4), 6.8
        text = to_crlf(text);
    std::string out;
    to_qp = false;
    switch (encoding) {
    case TransferEncoding::QuotedPrintable:
        encode_quoted_printable(text, out);
        return out;
    case TransferEncoding::Base64:
        encode_base64(text, out);
        if (trailing_newline)
            out += "\r\n";
        return out;
    case TransferEncoding::SevenBit:
        to_qp = !text::is_ascii(text) || !fits_8bit(text);
        break;
    default: // 8bit, binary
        to_qp = !fits_8bit(text);
        break;
    }
    if (!to_qp)
        return text;
    encode_quoted_printable(text, out);
    return out;
}

class Rewriter {
public:
    Rewriter(std::string_view message, const TrackingOptions& options, const ClickToken& click,
             std::string_view open_token)
        : message_(message), options_(options), click_(click), open_token_(open_token) {}

    void walk(const mime::Entity& e, bool top) {
        if (e.multipart()) {
            for (const auto& child : e.children)
                walk(child, false);
            return;
        }
        leaf(e, top);
    }

    TrackingResult finish() {
        if (replacements_.empty())
            return std::move(result_);
        std::sort(replacements_.begin(), replacements_.end(),
                  [](const Replacement& a, const Replacement& b) { return a.begin < b.begin; });
        std::size_t at = 0;
        for (const auto& r : replacements_) {
            result_.content.append(message_.substr(at, r.begin - at));
            result_.content += r.text;
            at = r.end;
        }
        result_.content.append(message_.substr(at));
        result_.changed = true;
        return std::move(result_);
    }

private:
    void leaf(const mime::Entity& e, bool top) {
        const auto& ct = e.content_type;
        if (ct.type != "text" || ct.subtype != "html" || e.attachment || !e.has_separator ||
            e.encoding == TransferEncoding::Other)
            return;
        ++result_.html_parts;
        const auto raw_body = message_.substr(e.body.begin, e.body.size());
        auto decoded = decode_transfer(raw_body, e.encoding);
        const auto* charset = ct.param("charset");
        const bool convert = charset != nullptr && !ascii_compatible(charset->value);
        if (convert) {
            auto utf8 = to_utf8(decoded, charset->value);
            if (!utf8)
                return; // cannot read it safely: leave the part as it is
            decoded = std::move(*utf8);
        }
        const auto links = result_.links;
        const auto pixels = result_.pixels;
        auto html = rewrite_html(decoded, options_, click_, open_token_, result_);
        if (result_.links == links && result_.pixels == pixels)
            return;
        bool to_qp = false;
        const bool trailing_newline = !raw_body.empty() && raw_body.back() == '\n';
        replacements_.push_back(
            {e.body.begin, e.body.end,
             encode_part(std::move(html), e.encoding, trailing_newline, to_qp)});
        if (convert)
            replacements_.push_back(
                {charset->raw_value.begin, charset->raw_value.end, std::string("utf-8")});
        if (to_qp)
            switch_to_qp(e, top);
    }

    void switch_to_qp(const mime::Entity& e, bool top) {
        std::string added;
        if (const auto* f = e.field("Content-Transfer-Encoding"))
            replacements_.push_back({f->raw.begin, f->raw.end, std::string(kQpField)});
        else
            added += kQpField;
        if (top && e.field("MIME-Version") == nullptr)
            added += kMimeVersion;
        if (!added.empty())
            replacements_.push_back({e.header.end, e.header.end, std::move(added)});
    }

    std::string_view message_;
    const TrackingOptions& options_;
    const ClickToken& click_;
    std::string_view open_token_;
    TrackingResult result_;
    std::vector<Replacement> replacements_;
};

bool any_html(const mime::Entity& e) {
    if (e.multipart())
        return std::any_of(e.children.begin(), e.children.end(), any_html);
    return e.content_type.type == "text" && e.content_type.subtype == "html" && !e.attachment;
}

} // namespace

std::string tracking_url(std::string_view public_url, std::string_view kind,
                         std::string_view token) {
    std::string url(public_url);
    if (url.empty() || url.back() != '/')
        url.push_back('/');
    url += kind;
    url.push_back('/');
    url += token;
    return url;
}

std::string decode_html_entities(std::string_view text) {
    static constexpr std::pair<std::string_view, std::string_view> kNamed[] = {
        {"&amp;", "&"},   {"&lt;", "<"},   {"&gt;", ">"},
        {"&quot;", "\""}, {"&apos;", "'"}, {"&nbsp;", "\xc2\xa0"}};
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        if (text[i] != '&') {
            out.push_back(text[i++]);
            continue;
        }
        if (const auto used = numeric_reference(text, i, out); used != 0) {
            i += used;
            continue;
        }
        bool named = false;
        for (const auto& [entity, value] : kNamed) {
            if (text::istarts_with(text.substr(i), entity)) {
                out += value;
                i += entity.size();
                named = true;
                break;
            }
        }
        if (!named)
            out.push_back(text[i++]);
    }
    return out;
}

std::string rewrite_html(std::string_view html, const TrackingOptions& options,
                         const ClickToken& click, std::string_view open_token,
                         TrackingResult& result) {
    std::string out;
    out.reserve(html.size() + 512);
    std::size_t copied = 0;
    std::size_t pos = 0;
    while (options.clicks && click) {
        const auto lt = html.find('<', pos);
        if (lt == std::string_view::npos)
            break;
        if (html.substr(lt, 4) == "<!--") {
            const auto end = html.find("-->", lt + 4);
            pos = end == std::string_view::npos ? html.size() : end + 3;
        } else if (tag_is(html, lt, "script") || tag_is(html, lt, "style")) {
            const auto close =
                ifind(html, tag_is(html, lt, "script") ? "</script" : "</style", lt + 1);
            pos = close == std::string_view::npos ? html.size() : close + 1;
        } else if (tag_is(html, lt, "a")) {
            pos = link(html, lt, 1, options, click, out, copied, result);
        } else if (tag_is(html, lt, "area")) {
            pos = link(html, lt, 4, options, click, out, copied, result);
        } else {
            pos = lt + 1;
        }
    }
    out.append(html.substr(copied));
    if (options.opens && !open_token.empty()) {
        const auto at = pixel_position(out);
        out.insert(at, "<img src=\"" + tracking_url(options.public_url, "o", open_token) +
                           "\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">");
        ++result.pixels;
    }
    return out;
}

TrackingResult add_tracking(std::string_view message, const TrackingOptions& options,
                            const ClickToken& click, std::string_view open_token) {
    const auto root = mime::parse(message);
    Rewriter rewriter(message, options, click, open_token);
    rewriter.walk(root, true);
    return rewriter.finish();
}

bool has_html_part(std::string_view message) {
    return any_html(mime::parse(message));
}

} // namespace ember::personalize
