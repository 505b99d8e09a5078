#pragma once
// Open and click tracking as a pure rewrite of one recipient's message
// (issue 8, "Tracking"): in every text/html part that is not an attachment,
// the href of each <a> and <area> element whose URL is http(s) becomes
// PUBLIC_URL/c/TOKEN, and an open pixel
//   <img src="PUBLIC_URL/o/TOKEN" width="1" height="1" alt="" style="display:none">
// goes before </body> (at the end when there is none). Tokens come from the
// caller (the daemon signs them, feedback/tokens.hpp): this file knows
// nothing of keys, queue ids or recipients.
//
// Left alone: text/plain parts (a rewritten bare URL is what spam filters
// and readers distrust most, and plain text has no pixel), attachments and
// message/rfc822 parts (not ours), mailto:, tel:, #anchors and every other
// scheme, links with the attribute data-ember-notrack, ember's own
// unsubscribe links (PUBLIC_URL/u/...: a tracked unsubscribe link would
// break RFC 8058 expectations and no one should have to click through a
// redirect to leave a list), links already pointing at PUBLIC_URL/c/ or
// /o/ (a second pass changes nothing), URLs longer than max_url, and
// anything inside HTML comments (Outlook's <!--[if mso]> blocks) and
// <script>/<style>.
//
// href values are read as HTML does: quoted or unquoted, character
// references (&amp; &#38; &#x26; and the few named ones URLs use) decoded,
// surrounding white space dropped, before the URL is handed to the token
// callback; so the redirect goes to the URL the reader would have reached.
//
// Parts are decoded (quoted-printable, base64) and re-encoded in the same
// encoding. The markup ember looks for is ASCII, so ASCII-compatible
// charsets are rewritten as they are; UTF-16/32, UTF-7 and ISO-2022 parts
// are converted to UTF-8 first and relabelled (personalize/charset.hpp).
// A 7bit or 8bit part whose lines would pass 998 octets, or a 7bit one
// that became non-ASCII, becomes quoted-printable (RFC 5322 2.1.1), like
// the merge does. Everything else is copied byte for byte.
//
// Pure: no I/O, no clock; thread-safe.

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace ember::personalize {

struct TrackingOptions {
    std::string public_url; // "https://mta.example.com" (a trailing '/' or a path prefix is fine)
    bool clicks = true;     // rewrite links
    bool opens = true;      // insert the pixel
    std::size_t max_url = 4096; // longer links are left alone (tokens carry the URL)
};

// Returns the token for a click on `url` (decoded, as the redirect will
// send it); "" leaves that link alone.
using ClickToken = std::function<std::string(std::string_view url)>;

struct TrackingResult {
    std::string content;        // the whole message, rewritten
    bool changed = false;       // false: content is empty, use the input
    std::size_t html_parts = 0; // text/html parts seen (not attachments)
    std::size_t links = 0;      // links rewritten
    std::size_t pixels = 0;     // pixels inserted
};

// The message with tracking added. `open_token` "" (or opens off) inserts
// no pixel.
[[nodiscard]] TrackingResult add_tracking(std::string_view message, const TrackingOptions& options,
                                          const ClickToken& click, std::string_view open_token);

// One HTML text (already transfer-decoded). Counts into `result`.
[[nodiscard]] std::string rewrite_html(std::string_view html, const TrackingOptions& options,
                                       const ClickToken& click, std::string_view open_token,
                                       TrackingResult& result);

// True when the message has a text/html part that is not an attachment.
[[nodiscard]] bool has_html_part(std::string_view message);

// HTML character references in an attribute value: numeric ones (with or
// without ';'), and &amp; &lt; &gt; &quot; &apos; &nbsp; with ';'. Others
// are kept as written.
[[nodiscard]] std::string decode_html_entities(std::string_view text);

// PUBLIC_URL + "/" + path_and_token, one '/' between them.
[[nodiscard]] std::string tracking_url(std::string_view public_url, std::string_view kind,
                                       std::string_view token);

} // namespace ember::personalize
