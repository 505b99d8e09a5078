#pragma once
// Merging in the message's own header fields (not MIME part headers).
//
// Which fields (README.md, "Headers"): Subject, as a whole, and the
// display names of From, To, Cc and Reply-To. Addresses are never merged:
// From's domain is what the DMARC alignment gate checks at submission and
// what DKIM signs for, and the envelope, not a header, says where mail
// goes. Markup in any other field (Message-ID, Date, Received, DKIM-
// Signature, List-*, X-*, ...) is left as it is, not merged and not an
// error: trace fields carry what clients sent, braces included.
//
// The field is decoded first (unfolded, RFC 2047 words to UTF-8) so markup
// inside encoded-words is found. Rendering replaces control characters in
// the merged text with spaces (a value can never add a field), writes
// non-ASCII as RFC 2047 encoded-words, display names as atoms, a quoted-
// string or encoded-words, and folds at 78 columns.
// Immutable after compile(); render() is const and thread-safe.

#include "personalize/template.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::personalize {

enum class HeaderRule { NotMerged, Unstructured, DisplayNames };

[[nodiscard]] HeaderRule header_rule(std::string_view field_name);

struct CompiledHeader;

class HeaderTemplate {
public:
    // `raw_value`: after the colon, folds included.
    [[nodiscard]] static CompiledHeader compile(std::string_view name, std::string_view raw_value,
                                                std::size_t max_depth = kMaxSectionDepth);

    // Appends the whole field, "Name: ...\r\n".
    void render(const Variables& vars, std::string& out, RenderBudget& budget) const;

    // The templates, for the names and tags they read.
    [[nodiscard]] std::vector<const Template*> templates() const;

private:
    [[nodiscard]] std::string add_element(std::string_view name, std::string_view element,
                                          std::size_t max_depth);

    struct Element {
        std::string raw;                 // an address without markup, as written
        std::optional<Template> display; // else: the display name's template
        std::string address;             // "<local@domain>"
    };
    std::string name_;
    std::optional<Template> unstructured_;
    std::vector<Element> elements_;
};

struct CompiledHeader {
    std::optional<HeaderTemplate> header; // none: leave the field as it is
    std::string error;                    // set when the markup is malformed
};

} // namespace ember::personalize
