#pragma once
// Charset conversion to UTF-8 for merging: text parts and RFC 2047 words
// in legacy charsets are converted with glibc's iconv(3) before their
// markup is parsed, and merged text is always sent as UTF-8 (see
// README.md, "Charsets").
//
// Labels follow the WHATWG Encoding Standard where mail practice needs it:
// "iso-8859-1", "latin1" and "us-ascii" text that is not plain ASCII is read
// as windows-1252 (senders mislabel cp1252 quotes as latin-1 all the time),
// falling back to ISO-8859-1 for the five bytes windows-1252 leaves
// undefined. Pure functions; each call opens its own iconv descriptor, so
// they are thread-safe.

#include <optional>
#include <string>
#include <string_view>

namespace ember::personalize {

// "utf-8", "us-ascii" and an absent charset: no conversion needed for
// ASCII or UTF-8 bytes. Case-insensitive.
[[nodiscard]] bool is_utf8_label(std::string_view charset);

// RFC 3629 well-formed (no overlongs, no surrogates, at most U+10FFFF).
[[nodiscard]] bool is_valid_utf8(std::string_view text);

// `bytes` in `charset` as UTF-8; nullopt when the charset is unknown to
// iconv, its name is not a plain token, or the bytes are invalid in it.
// UTF-8 labelled bytes are returned unchanged, even when ill-formed.
[[nodiscard]] std::optional<std::string> to_utf8(std::string_view bytes, std::string_view charset);

} // namespace ember::personalize
