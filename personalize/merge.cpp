#include "personalize/merge.hpp"

#include "personalize/charset.hpp"
#include "personalize/rfc2047.hpp"
#include "personalize/text.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/core.h>

#include <optional>
#include <unordered_set>

namespace ember::personalize {
namespace {

constexpr std::size_t kMaxLine = 998; // RFC 5322 2.1.1
constexpr std::string_view kQpField = "Content-Transfer-Encoding: quoted-printable\r\n";
constexpr std::string_view kMimeVersion = "MIME-Version: 1.0\r\n";

MergeError error(std::string enhanced, std::string text) {
    for (auto& c : text)
        if (c == '\r' || c == '\n')
            c = ' ';
    return MergeError{550, std::move(enhanced), std::move(text)};
}

// 7bit and 8bit text (RFC 2045 2.7, 2.8): lines of at most 998 octets,
// no NUL.
bool fits_8bit(std::string_view text) {
    std::size_t line = 0;
    for (const char c : text) {
        if (c == '\0')
            return false;
        if (c == '\n') {
            line = 0;
        } else if (++line > kMaxLine + 1) { // + 1: the CR of CRLF
            return false;
        }
    }
    return true;
}

std::size_t line_end_start(std::string_view text, std::size_t end) {
    if (end > 0 && text[end - 1] == '\n')
        --end;
    if (end > 0 && text[end - 1] == '\r')
        --end;
    return end;
}

void add_distinct(std::vector<std::string>& out, std::unordered_set<std::string>& seen,
                  const std::vector<std::string>& names) {
    for (const auto& n : names)
        if (seen.insert(n).second)
            out.push_back(n);
}

} // namespace

// Builds a CompiledMessage: one walk over the MIME tree that decides which
// fields and parts are templates and cuts the rest into raw segments.
class Compiler {
public:
    Compiler(CompiledMessage& m, const MergeLimits& limits) : m_(m), limits_(limits) {}

    std::optional<MergeError> strip_vars(std::string_view raw);
    std::optional<MergeError> run();

private:
    std::optional<MergeError> compile_headers(const mime::Entity& root);
    std::optional<MergeError> emit(const mime::Entity& e, const std::string& id, bool top);
    std::optional<MergeError> plan_leaf(const mime::Entity& e, const std::string& id, bool top,
                                        std::optional<std::size_t>& body);
    void emit_fields(const mime::Entity& e, bool top, std::optional<std::size_t> body);
    void fill_labels(const mime::Entity& e, CompiledMessage::Body& b) const;
    void raw_until(std::size_t pos);
    void push(CompiledMessage::Segment::Kind kind, std::size_t a);
    void collect_names();

    CompiledMessage& m_;
    MergeLimits limits_;
    std::vector<int> header_slot_; // per top-level field: index in headers_, or -1
    std::size_t cursor_ = 0;
};

std::optional<MergeError> Compiler::strip_vars(std::string_view raw) {
    const auto block = mime::parse_header(raw, {0, raw.size()});
    const mime::Field* vars = nullptr;
    for (const auto& f : block.fields) {
        if (!text::iequals(f.name, kVarsHeader))
            continue;
        if (vars != nullptr)
            return error("5.6.0", fmt::format("more than one {} field", kVarsHeader));
        vars = &f;
    }
    if (vars == nullptr) {
        m_.content_.assign(raw);
        return std::nullopt;
    }
    boost::system::error_code ec;
    auto value = boost::json::parse(text::trim(unfold(vars->value)), ec);
    if (ec)
        return error("5.6.0", fmt::format("{} is not valid JSON: {}", kVarsHeader, ec.message()));
    if (!value.is_object())
        return error("5.6.0", fmt::format("{} must be a JSON object", kVarsHeader));
    m_.vars_ = std::move(value.as_object());
    m_.content_.reserve(raw.size() - vars->raw.size());
    m_.content_.append(raw.substr(0, vars->raw.begin));
    m_.content_.append(raw.substr(vars->raw.end));
    return std::nullopt;
}

std::optional<MergeError> Compiler::run() {
    const auto root = mime::parse(m_.content_, {limits_.max_mime_depth, limits_.max_mime_parts});
    if (auto err = compile_headers(root))
        return err;
    if (auto err = emit(root, "", true))
        return err;
    raw_until(m_.content_.size());
    if (!m_.personalized())
        m_.segments_.clear(); // render() returns content() as it is
    collect_names();
    return std::nullopt;
}

std::optional<MergeError> Compiler::compile_headers(const mime::Entity& root) {
    header_slot_.assign(root.fields.size(), -1);
    for (std::size_t i = 0; i < root.fields.size(); ++i) {
        const auto& f = root.fields[i];
        auto compiled = HeaderTemplate::compile(f.name, f.value, limits_.max_section_depth);
        if (!compiled.error.empty())
            return error("5.6.0", "template error in " + compiled.error);
        if (!compiled.header)
            continue;
        header_slot_[i] = static_cast<int>(m_.headers_.size());
        m_.headers_.push_back(std::move(*compiled.header));
    }
    return std::nullopt;
}

// Part ids follow IMAP (RFC 3501 6.4.5): "1" for a single-part message's
// body, "1", "2", "2.1", ... inside multiparts.
std::optional<MergeError> Compiler::emit(const mime::Entity& e, const std::string& id, bool top) {
    std::optional<std::size_t> body;
    if (e.children.empty())
        if (auto err = plan_leaf(e, id.empty() ? "1" : id, top, body))
            return err;
    emit_fields(e, top, body);
    if (body) {
        raw_until(e.body.begin);
        push(CompiledMessage::Segment::Kind::Body, *body);
        cursor_ = e.body.end;
        return std::nullopt;
    }
    for (std::size_t i = 0; i < e.children.size(); ++i) {
        const auto child_id = id.empty() ? std::to_string(i + 1) : fmt::format("{}.{}", id, i + 1);
        if (auto err = emit(e.children[i], child_id, false))
            return err;
    }
    return std::nullopt;
}

std::optional<MergeError> Compiler::plan_leaf(const mime::Entity& e, const std::string& id,
                                              bool top, std::optional<std::size_t>& body) {
    const auto& ct = e.content_type;
    const bool text_part = ct.type == "text" && (ct.subtype == "plain" || ct.subtype == "html");
    if (!text_part || e.attachment || !e.has_separator || e.encoding == TransferEncoding::Other)
        return std::nullopt;
    const auto raw_body = std::string_view(m_.content_).substr(e.body.begin, e.body.size());
    const auto decoded = decode_transfer(raw_body, e.encoding);
    if (!has_markup(decoded))
        return std::nullopt;
    const auto* charset_param = ct.param("charset");
    const std::string charset = charset_param != nullptr ? charset_param->value : "";
    const auto utf8 = to_utf8(decoded, charset);
    if (!utf8)
        return error("5.6.3", fmt::format("text/{} part {} has template markup in charset "
                                          "\"{}\", which cannot be converted to UTF-8",
                                          ct.subtype, id, charset));
    if (!has_markup(*utf8))
        return std::nullopt;
    auto parsed = Template::parse(*utf8, limits_.max_section_depth);
    if (auto* err = std::get_if<TemplateError>(&parsed))
        return error("5.6.0", fmt::format("template error in text/{} part {}: {}", ct.subtype, id,
                                          err->to_string()));
    CompiledMessage::Body b;
    b.tpl = std::move(std::get<Template>(parsed));
    b.escape = ct.subtype == "html" ? Escape::Html : Escape::None;
    b.encoding = e.encoding;
    b.trailing_newline = !raw_body.empty() && raw_body.back() == '\n';
    b.declared_utf8 = text::iequals(charset, "utf-8") || text::iequals(charset, "utf8");
    b.converted = !b.declared_utf8 && *utf8 != decoded;
    b.add_mime_version = top && e.field("MIME-Version") == nullptr;
    fill_labels(e, b);
    body = m_.bodies_.size();
    m_.bodies_.push_back(std::move(b));
    return std::nullopt;
}

// The Content-Type field as it will read once the part is UTF-8: the
// charset value replaced in place, or the parameter appended, so every
// other parameter (format=flowed, name, ...) stays as written.
void Compiler::fill_labels(const mime::Entity& e, CompiledMessage::Body& b) const {
    const std::string_view content = m_.content_;
    if (const auto* f = e.field("Content-Type")) {
        b.has_content_type = true;
        b.content_type = f->raw;
        const auto field = content.substr(f->raw.begin, f->raw.size());
        if (const auto* p = e.content_type.param("charset")) {
            const auto at = p->raw_value.begin - f->raw.begin;
            b.content_type_utf8 = std::string(field.substr(0, at)) + "utf-8" +
                                  std::string(field.substr(p->raw_value.end - f->raw.begin));
        } else {
            const auto at = line_end_start(field, field.size());
            b.content_type_utf8 = std::string(field.substr(0, at)) + "; charset=utf-8" +
                                  std::string(field.substr(at));
        }
    } else {
        b.content_type_utf8 = "Content-Type: text/plain; charset=utf-8\r\n";
    }
    if (const auto* f = e.field("Content-Transfer-Encoding")) {
        b.has_transfer_encoding = true;
        b.transfer_encoding = f->raw;
    }
}

// A merged part's Content-Type and Content-Transfer-Encoding fields become
// slots where they stand, or are added at the end of its header; merged
// message fields become Header slots.
void Compiler::emit_fields(const mime::Entity& e, bool top, std::optional<std::size_t> body) {
    using Kind = CompiledMessage::Segment::Kind;
    bool content_type = false;
    bool transfer_encoding = false;
    for (std::size_t i = 0; i < e.fields.size(); ++i) {
        const auto& f = e.fields[i];
        std::optional<std::pair<Kind, std::size_t>> slot;
        if (top && header_slot_[i] >= 0) {
            slot = {Kind::Header, static_cast<std::size_t>(header_slot_[i])};
        } else if (body && !content_type && text::iequals(f.name, "Content-Type")) {
            slot = {Kind::ContentType, *body};
            content_type = true;
        } else if (body && !transfer_encoding &&
                   text::iequals(f.name, "Content-Transfer-Encoding")) {
            slot = {Kind::TransferEncoding, *body};
            transfer_encoding = true;
        }
        if (!slot)
            continue;
        raw_until(f.raw.begin);
        push(slot->first, slot->second);
        cursor_ = f.raw.end;
    }
    if (!body)
        return;
    raw_until(e.header.end);
    if (!content_type)
        push(Kind::ContentType, *body);
    if (!transfer_encoding)
        push(Kind::TransferEncoding, *body);
    if (m_.bodies_[*body].add_mime_version)
        push(Kind::MimeVersion, *body);
}

void Compiler::raw_until(std::size_t pos) {
    if (pos > cursor_)
        m_.segments_.push_back({CompiledMessage::Segment::Kind::Raw, cursor_, pos});
    cursor_ = std::max(cursor_, pos);
}

void Compiler::push(CompiledMessage::Segment::Kind kind, std::size_t a) {
    m_.segments_.push_back({kind, a, 0});
}

void Compiler::collect_names() {
    std::unordered_set<std::string> names;
    std::unordered_set<std::string> tags;
    auto add = [&](const Template& t) {
        add_distinct(m_.names_, names, t.names());
        add_distinct(m_.tags_, tags, t.tags());
    };
    for (const auto& h : m_.headers_)
        for (const auto* t : h.templates())
            add(*t);
    for (const auto& b : m_.bodies_)
        add(b.tpl);
}

std::variant<CompiledMessage, MergeError> CompiledMessage::compile(std::string_view raw,
                                                                   const MergeLimits& limits) {
    CompiledMessage m;
    m.limits_ = limits;
    Compiler compiler(m, limits);
    if (auto err = compiler.strip_vars(raw))
        return std::move(*err);
    if (auto err = compiler.run())
        return std::move(*err);
    return m;
}

void CompiledMessage::render_body(const Body& body, const Variables& vars, RenderBudget& budget,
                                  Rendered& out) const {
    std::string text;
    body.tpl.render(vars, body.escape, text, budget);
    if (!is_crlf_text(text)) // canonical form, RFC 2045 6.7 (4), 6.8
        text = to_crlf(text);
    const bool ascii = text::is_ascii(text);
    out.relabel = body.converted || (!body.declared_utf8 && !ascii);
    switch (body.encoding) {
    case TransferEncoding::QuotedPrintable:
        encode_quoted_printable(text, out.body);
        return;
    case TransferEncoding::Base64:
        encode_base64(text, out.body);
        if (body.trailing_newline)
            out.body += "\r\n";
        return;
    case TransferEncoding::SevenBit:
        out.to_qp = !ascii || !fits_8bit(text);
        break;
    default: // 8bit, binary
        out.to_qp = !fits_8bit(text);
        break;
    }
    if (out.to_qp)
        encode_quoted_printable(text, out.body);
    else
        out.body = text;
}

void CompiledMessage::append_segment(const Segment& seg, const std::vector<Rendered>& parts,
                                     const Variables& vars, RenderBudget& budget,
                                     std::string& out) const {
    const std::string_view content = content_;
    const auto span = [&](const mime::Span& s) {
        return content.substr(s.begin, s.size());
    };
    switch (seg.kind) {
    case Segment::Kind::Raw:
        out.append(content.substr(seg.a, seg.b - seg.a));
        return;
    case Segment::Kind::Header:
        headers_[seg.a].render(vars, out, budget);
        return;
    case Segment::Kind::ContentType: {
        const auto& b = bodies_[seg.a];
        if (parts[seg.a].relabel)
            out.append(b.content_type_utf8);
        else if (b.has_content_type)
            out.append(span(b.content_type));
        return;
    }
    case Segment::Kind::TransferEncoding: {
        const auto& b = bodies_[seg.a];
        if (parts[seg.a].to_qp)
            out.append(kQpField);
        else if (b.has_transfer_encoding)
            out.append(span(b.transfer_encoding));
        return;
    }
    case Segment::Kind::MimeVersion:
        if (parts[seg.a].relabel || parts[seg.a].to_qp)
            out.append(kMimeVersion);
        return;
    case Segment::Kind::Body:
        out.append(parts[seg.a].body);
        return;
    }
}

std::variant<std::string, MergeError> CompiledMessage::render(const Variables& vars) const {
    if (!personalized())
        return content_;
    RenderBudget budget;
    budget.output_left = limits_.max_rendered_size;
    budget.iterations_left = limits_.max_list_iterations;
    std::vector<Rendered> parts(bodies_.size());
    for (std::size_t i = 0; i < bodies_.size() && !budget.exhausted; ++i)
        render_body(bodies_[i], vars, budget, parts[i]);
    std::string out;
    if (!budget.exhausted) {
        std::size_t size = content_.size() + 1024;
        for (const auto& p : parts)
            size += p.body.size();
        out.reserve(size);
        for (const auto& seg : segments_)
            append_segment(seg, parts, vars, budget, out);
    }
    if (budget.exhausted)
        return error("5.3.4", fmt::format("personalized message exceeds the merge limits ({} "
                                          "list elements, {} bytes of merged text)",
                                          limits_.max_list_iterations, limits_.max_rendered_size));
    return out;
}

std::string CompiledMessage::render_key(const Variables& vars) const {
    std::string key;
    for (const auto& name : names_) {
        const auto* v = vars.find(name);
        if (v == nullptr) {
            key += '-';
            continue;
        }
        const auto json = boost::json::serialize(*v);
        fmt::format_to(std::back_inserter(key), "{}:", json.size());
        key += json;
    }
    for (const auto& tag : tags_)
        key += vars.has_tag(tag) ? '1' : '0';
    return key;
}

} // namespace ember::personalize
