#include "personalize/variables.hpp"

#include "core/assert.hpp"
#include "personalize/text.hpp"

#include <fmt/format.h>

#include <cstring>
#include <iterator>

namespace ember::personalize {

Variables& Variables::add(const boost::json::object& layer) {
    EMBER_ASSERT(count_ < kMaxLayers);
    layers_[count_++] = &layer;
    return *this;
}

Variables& Variables::tags(std::span<const std::string> tags) {
    tags_ = tags;
    return *this;
}

const boost::json::value* Variables::find(std::string_view name) const {
    for (std::size_t i = 0; i < count_; ++i)
        if (const auto* v = find_in(*layers_[i], name))
            return v;
    return nullptr;
}

bool Variables::has_tag(std::string_view tag) const {
    for (const auto& t : tags_)
        if (text::iequals(t, tag))
            return true;
    return false;
}

const boost::json::value* find_in(const boost::json::object& object, std::string_view name) {
    if (const auto* v = object.if_contains(name))
        return v;
    auto dot = name.find('.');
    if (dot == std::string_view::npos)
        return nullptr;
    const boost::json::object* current = &object;
    for (;;) {
        const auto* v = current->if_contains(name.substr(0, dot));
        if (v == nullptr)
            return nullptr;
        if (dot == std::string_view::npos)
            return v;
        current = v->if_object();
        if (current == nullptr)
            return nullptr;
        name.remove_prefix(dot + 1);
        dot = name.find('.');
    }
}

bool truthy(const boost::json::value* value) {
    if (value == nullptr)
        return false;
    switch (value->kind()) {
    case boost::json::kind::null:
        return false;
    case boost::json::kind::bool_:
        return value->get_bool();
    case boost::json::kind::int64:
        return value->get_int64() != 0;
    case boost::json::kind::uint64:
        return value->get_uint64() != 0;
    case boost::json::kind::double_:
        return value->get_double() != 0.0;
    case boost::json::kind::string:
        return !value->get_string().empty();
    case boost::json::kind::array:
        return !value->get_array().empty();
    case boost::json::kind::object:
        return true;
    }
    return false;
}

void append_text(const boost::json::value* value, std::string& out, bool* has_text) {
    bool present = false;
    if (value != nullptr) {
        switch (value->kind()) {
        case boost::json::kind::string: {
            const auto& s = value->get_string();
            out.append(s.data(), s.size());
            present = !s.empty();
            break;
        }
        case boost::json::kind::int64:
            fmt::format_to(std::back_inserter(out), "{}", value->get_int64());
            present = true;
            break;
        case boost::json::kind::uint64:
            fmt::format_to(std::back_inserter(out), "{}", value->get_uint64());
            present = true;
            break;
        case boost::json::kind::double_:
            // Shortest round-trip form ("1.5", not Boost.JSON's "1.5E0").
            fmt::format_to(std::back_inserter(out), "{}", value->get_double());
            present = true;
            break;
        case boost::json::kind::bool_:
            out += value->get_bool() ? "true" : "false";
            present = true;
            break;
        default:
            break;
        }
    }
    if (has_text != nullptr)
        *has_text = present;
}

bool has_markup(std::string_view text) {
    const char* p = text.data();
    const char* end = p + text.size();
    while (p < end) {
        const auto* brace =
            static_cast<const char*>(std::memchr(p, '{', static_cast<std::size_t>(end - p)));
        if (brace == nullptr || brace + 1 >= end)
            return false;
        if (brace[1] == '{')
            return true;
        p = brace + 2; // brace[1] is not '{', so it cannot start a pair
    }
    return false;
}

} // namespace ember::personalize
