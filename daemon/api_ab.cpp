#include "daemon/api_ab.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <random>

namespace ember::daemon {
namespace {

std::string open_tag(char sigil, std::string_view name) {
    return fmt::format("{{{{{}tag:variant:{}}}}}", sigil, name);
}

std::string close_tag(std::string_view name) {
    return fmt::format("{{{{/tag:variant:{}}}}}", name);
}

// `line`: every tag on its own line (bodies), else inline.
std::string sections(const std::vector<std::string>& names, const std::vector<std::string>& values,
                     bool line) {
    const std::string eol = line ? "\n" : "";
    auto value = [&](std::size_t i) {
        std::string v = values[i];
        if (line && !v.empty() && v.back() != '\n' && v.back() != '\r')
            v += '\n';
        return v;
    };
    std::string out;
    for (std::size_t i = 1; i < names.size(); ++i)
        out += open_tag('^', names[i]) + eol;
    out += value(0);
    for (std::size_t i = names.size(); i-- > 1;)
        out += close_tag(names[i]) + eol;
    for (std::size_t i = 1; i < names.size(); ++i)
        out += open_tag('#', names[i]) + eol + value(i) + close_tag(names[i]) + eol;
    return out;
}

bool all_same(const std::vector<std::string>& values) {
    return std::all_of(values.begin(), values.end(),
                       [&](const std::string& v) { return v == values.front(); });
}

// The variants' values of one field: a variant's own, else `base`.
std::vector<std::string> values_of(const MessageRequest& r, const std::string& base,
                                   std::optional<std::string> ApiVariant::*field) {
    std::vector<std::string> out;
    for (const auto& v : r.variants)
        out.push_back((v.*field).value_or(base));
    return out;
}

} // namespace

std::string ab_inline_sections(const std::vector<std::string>& names,
                               const std::vector<std::string>& values) {
    return sections(names, values, false);
}

std::string ab_block_sections(const std::vector<std::string>& names,
                              const std::vector<std::string>& values) {
    return sections(names, values, true);
}

void apply_variants(const MessageRequest& r, personalize::ComposeInput& in) {
    if (r.variants.empty())
        return;
    std::vector<std::string> names;
    for (const auto& v : r.variants)
        names.push_back(v.name);
    auto field = [&](std::string& target, std::optional<std::string> ApiVariant::*member,
                     bool line) {
        const auto values = values_of(r, target, member);
        if (!all_same(values))
            target = sections(names, values, line);
    };
    field(in.subject, &ApiVariant::subject, false);
    field(in.from_name, &ApiVariant::from_name, false);
    if (in.text)
        field(*in.text, &ApiVariant::text, true);
    if (in.html)
        field(*in.html, &ApiVariant::html, true);
}

std::string new_ab_test_id() {
    std::random_device device;
    const std::uint64_t high = device();
    const std::uint64_t low = device();
    return fmt::format("{:016x}", (high << 32) ^ low);
}

} // namespace ember::daemon
