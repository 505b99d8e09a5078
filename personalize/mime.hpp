#pragma once
// A MIME tree over a message's bytes (RFC 2045, RFC 2046 5.1) that keeps
// every byte where it was: entities, header fields and parameters are
// spans into the parsed text, so a merge rewrites only what it changes and
// copies the rest (attachments, parts without markup, preambles,
// epilogues, boundary lines) exactly.
//
// Lenient where senders are sloppy: LF or CRLF line ends, parameter values
// that should have been quoted, a missing close delimiter (the last part
// runs to the end). A multipart whose boundary never appears, a message/*
// part, anything deeper than Limits::max_depth and a multipart that would
// pass Limits::max_parts are opaque leaves: kept as they are, not merged.
// Pure; the tree points into the text it was parsed from, which must
// outlive it. Thread-safe.

#include "personalize/transfer.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace ember::personalize::mime {

struct Span {
    std::size_t begin = 0;
    std::size_t end = 0;
    [[nodiscard]] std::size_t size() const { return end - begin; }
};

struct Field {
    std::string_view name;  // as written, trailing blanks removed
    std::string_view value; // raw: after the colon, folds kept, no final line end
    Span raw;               // the whole field, line end included
};

struct Param {
    std::string name;  // lower case
    std::string value; // unquoted
    Span raw_value;    // the value as written, quotes included (absolute)
};

struct ContentType {
    bool present = false;
    std::string type = "text"; // lower case; RFC 2045 5.2 default
    std::string subtype = "plain";
    std::vector<Param> params;
    [[nodiscard]] const Param* param(std::string_view name) const;
};

struct Limits {
    std::size_t max_depth = 16;   // nesting of multiparts
    std::size_t max_parts = 1000; // entities in the whole tree
};

struct Entity {
    Span raw;                   // header and body
    Span header;                // the field lines, without the empty line
    Span body;                  // after the empty line
    bool has_separator = false; // an empty line ends the header
    std::vector<Field> fields;
    ContentType content_type;
    TransferEncoding encoding = TransferEncoding::SevenBit;
    bool attachment = false;      // Content-Disposition: attachment
    std::vector<Entity> children; // a multipart's parts; empty when opaque
    [[nodiscard]] const Field* field(std::string_view name) const; // first, case-insensitive
    [[nodiscard]] bool multipart() const { return content_type.type == "multipart"; }
};

// The header fields of the block starting at `begin`: stops at the empty
// line or at the first line that is neither a field nor a fold.
struct HeaderBlock {
    std::vector<Field> fields;
    Span header;
    Span body;
    bool has_separator = false;
};
[[nodiscard]] HeaderBlock parse_header(std::string_view text, Span span);

// `value` is a Content-Type field's raw value starting at absolute offset
// `value_offset` in the text (for Param::raw_value).
[[nodiscard]] ContentType parse_content_type(std::string_view value, std::size_t value_offset);

[[nodiscard]] Entity parse(std::string_view message, const Limits& limits = {});

} // namespace ember::personalize::mime
