#pragma once
// Header field text for merging (RFC 2047, RFC 5322 2.2.3): encoded-words
// decoded to UTF-8 so markup inside them is found, and merged values
// written back as US-ASCII header fields: words that need it become
// "=?utf-8?Q?...?=" or "=?utf-8?B?...?=" (whichever is shorter, as Python's
// email package does) of at most 68 characters (RFC 2047 2 allows 75; 68
// keeps the first line of any merged field within 78), and the field is
// folded at spaces to 78
// columns where it can be (RFC 5322 2.1.1). Q-encoding only leaves letters,
// digits and "!*+-/" literal, the set RFC 2047 5(3) allows in a phrase, so
// the same encoder serves Subject and display names.
// Pure functions, thread-safe.

#include <string>
#include <string_view>

namespace ember::personalize {

// RFC 5322 2.2.3: removes the CRLF (or LF) of each fold, keeping the WSP.
[[nodiscard]] std::string unfold(std::string_view value);

// Decodes every well-formed encoded-word (RFC 2047 6.1) to UTF-8, dropping
// the white space between adjacent ones (6.2). Words in a charset iconv
// cannot convert stay as written. 8-bit text outside words is kept when it
// is UTF-8 and read as windows-1252 otherwise.
[[nodiscard]] std::string decode_words(std::string_view value);

// The UTF-8 `text` as header field text: unchanged when it is printable
// ASCII without "=?", else with each run of words that needs it encoded.
// Control characters (CR, LF, TAB, ...) must already be replaced.
[[nodiscard]] std::string encode_words(std::string_view text);

// A display name (RFC 5322 3.2.5 phrase) for the UTF-8 `name`: as is when
// it is atoms, a quoted-string when ASCII with specials, encoded-words when
// not ASCII. "" for an empty name.
[[nodiscard]] std::string encode_phrase(std::string_view name);

// Appends "Name: value\r\n", folded before spaces so lines stay within 78
// columns where a space allows it.
void append_folded_field(std::string_view name, std::string_view value, std::string& out);

} // namespace ember::personalize
