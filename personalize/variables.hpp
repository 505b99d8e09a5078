#pragma once
// Merge variables: where a template's names get their values.
//
// Layers, highest precedence first (issue 7): the hook's answer, the
// message's own variables (the API, or SMTP's X-Ember-Vars header), the
// contact's attributes. A name is looked up in each layer in turn and the
// first layer that has it wins, so a hook can override a contact attribute
// for one message. Within a layer an exact key ("user.name") is tried
// before the dotted path (user -> name through nested objects). Tags
// ({{#tag:runner}}) come from the contact, as a list of strings compared
// without regard to ASCII case.
//
// A Variables only points at the layers and tags: they must outlive it.
// Cheap to build per recipient (no allocation); lookups are const and
// thread-safe while nobody modifies the layers.

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace ember::personalize {

class Variables {
public:
    static constexpr std::size_t kMaxLayers = 4;

    Variables() = default;

    // Adds the next layer, lower in precedence than those already added.
    // More than kMaxLayers is a bug (asserts).
    Variables& add(const boost::json::object& layer);
    // The contact's tags (see the header comment).
    Variables& tags(std::span<const std::string> tags);

    // The value `name` resolves to, or nullptr when no layer has it.
    [[nodiscard]] const boost::json::value* find(std::string_view name) const;
    [[nodiscard]] bool has_tag(std::string_view tag) const;

private:
    std::array<const boost::json::object*, kMaxLayers> layers_{};
    std::size_t count_ = 0;
    std::span<const std::string> tags_;
};

// `name` (dotted) inside one object: exact key first, then the path.
[[nodiscard]] const boost::json::value* find_in(const boost::json::object& object,
                                                std::string_view name);

// Mustache truthiness, as the README documents: false for missing, null,
// false, 0, "", [] (an object, even empty, is true).
[[nodiscard]] bool truthy(const boost::json::value* value);

// The text a variable tag writes for a value: strings as they are, numbers
// in shortest round-trip form, true/false; "" for null, lists and objects
// (sections iterate those). `*has_text` tells whether the value counts as
// present for `| default:` (false for missing, null, "", lists, objects).
void append_text(const boost::json::value* value, std::string& out, bool* has_text = nullptr);

// True when `text` contains "{{": the quick test that lets a part or header
// without markup skip parsing and stay byte for byte.
[[nodiscard]] bool has_markup(std::string_view text);

} // namespace ember::personalize
