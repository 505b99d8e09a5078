#pragma once
// A message compiled for merging: parsed once (at submission, to refuse
// bad markup with 5.6.x, and again at dispatch from the queued bytes),
// rendered once per recipient.
//
// What compile() does (README.md has the whole policy):
// - strips the X-Ember-Vars header field (a JSON object: the message's own
//   variables, message_variables()); invalid JSON is an error;
// - parses the MIME tree; for Subject and the display names of From, To,
//   Cc, Reply-To, and for every text/plain and text/html part that is not
//   an attachment, decodes (transfer encoding, charset to UTF-8) and, when
//   it holds markup ("{{"), parses its template;
// - a message with no markup anywhere is a pass-through: personalized() is
//   false and render() gives content(), the submitted bytes without
//   X-Ember-Vars, the same for every recipient (sign once).
//
// What render() writes: the parts and fields with markup re-rendered,
// every other byte as it was. Values are HTML-escaped in text/html, raw in
// text/plain; merged parts are UTF-8 (charset parameter updated) and keep
// their transfer encoding, except that a 7bit part (or 8bit, for a line
// over 998 octets or a NUL) that a value no longer fits becomes
// quoted-printable; merged header fields are RFC 2047-encoded when not
// ASCII. Rendering is deterministic: equal render_key()s give equal bytes,
// so the dispatcher renders and DKIM-signs once per distinct key.
//
// Errors are values (MergeError) carrying an SMTP reply: 550 5.6.0 for
// markup or X-Ember-Vars errors, 550 5.6.3 for a part with markup in a
// charset iconv cannot convert; render() fails only when the limits are
// exceeded (550 5.3.4). No I/O. A CompiledMessage is immutable: render()
// and render_key() are const and may run on several threads at once.

#include "personalize/header_template.hpp"
#include "personalize/mime.hpp"
#include "personalize/template.hpp"
#include "personalize/transfer.hpp"
#include "personalize/variables.hpp"

#include <boost/json/object.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ember::personalize {

struct MergeError {
    int code = 550;
    std::string enhanced = "5.6.0";
    std::string text; // for the SMTP reply and the log, no CR/LF
};

// Bounds on what one message may make ember do (the [personalize] config
// section is expected to carry the last two).
struct MergeLimits {
    std::size_t max_mime_depth = 16;
    std::size_t max_mime_parts = 1000;
    std::size_t max_section_depth = kMaxSectionDepth;
    std::size_t max_list_iterations = 10'000;         // per rendered message
    std::size_t max_rendered_size = 64 * 1024 * 1024; // merged text per message, bytes
};

inline constexpr std::string_view kVarsHeader = "X-Ember-Vars";

class CompiledMessage {
public:
    // `raw`: the message as queued, CRLF line ends (LF is tolerated).
    [[nodiscard]] static std::variant<CompiledMessage, MergeError>
    compile(std::string_view raw, const MergeLimits& limits = {});

    // False: no markup; every recipient gets content().
    [[nodiscard]] bool personalized() const { return !bodies_.empty() || !headers_.empty(); }
    // The message without X-Ember-Vars, byte for byte otherwise.
    [[nodiscard]] std::string_view content() const { return content_; }
    // X-Ember-Vars, parsed; empty when absent.
    [[nodiscard]] const boost::json::object& message_variables() const { return vars_; }

    // The complete message for one recipient (content() when not
    // personalized).
    [[nodiscard]] std::variant<std::string, MergeError> render(const Variables& vars) const;

    // What render() depends on, as bytes: the value (serialized JSON) of
    // every name and the membership of every tag the templates read.
    // Equal keys, equal renderings; "" when not personalized.
    [[nodiscard]] std::string render_key(const Variables& vars) const;

    // Every distinct name and tag the templates read (for the hook: what
    // to ask for).
    [[nodiscard]] const std::vector<std::string>& names() const { return names_; }
    [[nodiscard]] const std::vector<std::string>& tags() const { return tags_; }

private:
    // A text part with markup and what rendering it may change.
    struct Body {
        Template tpl;
        Escape escape = Escape::None;
        TransferEncoding encoding = TransferEncoding::SevenBit;
        bool trailing_newline = false; // base64 text ended with a line end
        bool converted = false;        // read from a legacy charset: always relabelled
        bool declared_utf8 = false;    // charset=utf-8 already
        std::string content_type_utf8; // the Content-Type field with charset=utf-8
        bool has_content_type = false;
        mime::Span content_type; // the original field, when present
        bool has_transfer_encoding = false;
        mime::Span transfer_encoding;  // likewise
        bool add_mime_version = false; // the message itself, without MIME-Version
    };
    // render() writes the segments in order.
    struct Segment {
        enum class Kind : std::uint8_t {
            Raw,              // content_[a, b)
            Header,           // headers_[a]
            ContentType,      // bodies_[a]'s Content-Type field
            TransferEncoding, // bodies_[a]'s Content-Transfer-Encoding field
            MimeVersion,      // "MIME-Version: 1.0" if bodies_[a] changed its labels
            Body,             // bodies_[a], encoded
        };
        Kind kind = Kind::Raw;
        std::size_t a = 0;
        std::size_t b = 0;
    };
    struct Rendered {
        std::string body;     // transfer-encoded
        bool relabel = false; // charset=utf-8 now
        bool to_qp = false;   // switched to quoted-printable
    };
    friend class Compiler;

    void render_body(const Body& body, const Variables& vars, RenderBudget& budget,
                     Rendered& out) const;
    void append_segment(const Segment& seg, const std::vector<Rendered>& parts,
                        const Variables& vars, RenderBudget& budget, std::string& out) const;

    std::string content_;
    boost::json::object vars_;
    MergeLimits limits_;
    std::vector<Body> bodies_;
    std::vector<HeaderTemplate> headers_;
    std::vector<Segment> segments_;
    std::vector<std::string> names_;
    std::vector<std::string> tags_;
};

} // namespace ember::personalize
