#include "personalize/header_template.hpp"

#include "personalize/rfc2047.hpp"
#include "personalize/text.hpp"

#include <fmt/core.h>

namespace ember::personalize {
namespace {

// Control characters in merged header text become spaces: a CR or LF in a
// value must never start a new field (header injection).
std::string sanitized(std::string text) {
    for (auto& c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 32 || u == 127)
            c = ' ';
    }
    return text;
}

// Where a `{{` tag that starts at `i` ends (after "}}"), or the end.
std::size_t skip_tag(std::string_view s, std::size_t i) {
    const auto close = s.find("}}", i + 2);
    return close == std::string_view::npos ? s.size() : close + 2;
}

// RFC 5322 3.4 address-list elements, split at top-level commas (not in
// quotes, comments, angle brackets or a template tag).
std::vector<std::string_view> split_addresses(std::string_view value) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    bool quoted = false;
    int comment = 0;
    int angle = 0;
    for (std::size_t i = 0; i < value.size(); ++i) {
        const char c = value[i];
        if ((quoted || comment > 0) && c == '\\') {
            ++i;
        } else if (quoted) {
            quoted = c != '"';
        } else if (c == '{' && value.substr(i, 2) == "{{") {
            i = skip_tag(value, i) - 1;
        } else if (c == '"' && comment == 0) {
            quoted = true;
        } else if (c == '(') {
            ++comment;
        } else if (c == ')' && comment > 0) {
            --comment;
        } else if (comment == 0 && c == '<') {
            ++angle;
        } else if (comment == 0 && c == '>' && angle > 0) {
            --angle;
        } else if (comment == 0 && angle == 0 && c == ',') {
            out.push_back(value.substr(start, i - start));
            start = i + 1;
        }
    }
    out.push_back(value.substr(start));
    return out;
}

// The top-level '<' of a name-addr, npos when there is none.
std::size_t angle_start(std::string_view element) {
    bool quoted = false;
    for (std::size_t i = 0; i < element.size(); ++i) {
        const char c = element[i];
        if (quoted && c == '\\')
            ++i;
        else if (quoted)
            quoted = c != '"';
        else if (c == '"')
            quoted = true;
        else if (c == '{' && element.substr(i, 2) == "{{")
            i = skip_tag(element, i) - 1;
        else if (c == '<')
            return i;
    }
    return std::string_view::npos;
}

// A phrase as text: quotes dropped, quoted-pairs resolved (RFC 5322
// 3.2.4), encoded-words decoded.
std::string phrase_text(std::string_view phrase) {
    std::string plain;
    bool quoted = false;
    for (std::size_t i = 0; i < phrase.size(); ++i) {
        const char c = phrase[i];
        if (c == '"')
            quoted = !quoted;
        else if (quoted && c == '\\' && i + 1 < phrase.size())
            plain += phrase[++i];
        else
            plain += c;
    }
    return decode_words(plain);
}

} // namespace

HeaderRule header_rule(std::string_view field_name) {
    if (text::iequals(field_name, "Subject"))
        return HeaderRule::Unstructured;
    for (const auto* n : {"From", "To", "Cc", "Reply-To"})
        if (text::iequals(field_name, n))
            return HeaderRule::DisplayNames;
    return HeaderRule::NotMerged;
}

CompiledHeader HeaderTemplate::compile(std::string_view name, std::string_view raw_value,
                                       std::size_t max_depth) {
    CompiledHeader result;
    const auto rule = header_rule(name);
    if (rule == HeaderRule::NotMerged)
        return result;
    const auto unfolded = unfold(raw_value);
    if (!has_markup(decode_words(unfolded)))
        return result;
    HeaderTemplate h;
    h.name_ = std::string(name);
    if (rule == HeaderRule::Unstructured) {
        auto parsed = Template::parse(text::trim(decode_words(unfolded)), max_depth);
        if (auto* e = std::get_if<TemplateError>(&parsed)) {
            result.error = fmt::format("{}: column {}: {}", name, e->column, e->message);
            return result;
        }
        h.unstructured_ = std::move(std::get<Template>(parsed));
        result.header = std::move(h);
        return result;
    }
    for (const auto element : split_addresses(unfolded)) {
        result.error = h.add_element(name, text::trim(element), max_depth);
        if (!result.error.empty())
            return result;
    }
    result.header = std::move(h);
    return result;
}

// One address-list element: kept as written without markup in its display
// name, else the display name's template and the address.
std::string HeaderTemplate::add_element(std::string_view name, std::string_view element,
                                        std::size_t max_depth) {
    Element el;
    const auto lt = angle_start(element);
    const auto display =
        lt == std::string_view::npos ? std::string_view{} : text::trim(element.substr(0, lt));
    const auto address = lt == std::string_view::npos ? element : element.substr(lt);
    if (has_markup(address))
        return fmt::format("{}: markup is only merged in a display name, as in "
                           "\"{{{{ name }}}}\" <user@example.com>",
                           name);
    const auto display_text = phrase_text(display);
    if (!has_markup(display_text)) {
        el.raw = std::string(element);
        elements_.push_back(std::move(el));
        return {};
    }
    auto parsed = Template::parse(text::trim(display_text), max_depth);
    if (auto* e = std::get_if<TemplateError>(&parsed))
        return fmt::format("{}: display name: column {}: {}", name, e->column, e->message);
    el.display = std::move(std::get<Template>(parsed));
    el.address = std::string(text::trim(address));
    elements_.push_back(std::move(el));
    return {};
}

void HeaderTemplate::render(const Variables& vars, std::string& out, RenderBudget& budget) const {
    std::string merged;
    if (unstructured_) {
        unstructured_->render(vars, Escape::None, merged, budget);
        append_folded_field(name_, encode_words(text::trim(sanitized(std::move(merged)))), out);
        return;
    }
    std::string value;
    for (const auto& el : elements_) {
        if (!value.empty())
            value += ", ";
        if (!el.display) {
            value += el.raw;
            continue;
        }
        merged.clear();
        el.display->render(vars, Escape::None, merged, budget);
        const auto phrase = encode_phrase(text::trim(sanitized(std::move(merged))));
        if (!phrase.empty()) {
            value += phrase;
            value += ' ';
        }
        value += el.address;
    }
    append_folded_field(name_, value, out);
}

std::vector<const Template*> HeaderTemplate::templates() const {
    std::vector<const Template*> out;
    if (unstructured_)
        out.push_back(&*unstructured_);
    for (const auto& el : elements_)
        if (el.display)
            out.push_back(&*el.display);
    return out;
}

} // namespace ember::personalize
