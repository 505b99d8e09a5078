#pragma once
// ASCII case helpers for protocol text (header names, domains, tokens):
// only A-Z and a-z fold, so UTF-8 bytes pass through untouched and the
// result never depends on the process locale (std::tolower does).

#include <algorithm>
#include <string>
#include <string_view>

namespace ember::core {

[[nodiscard]] constexpr char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

[[nodiscard]] inline std::string ascii_lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) { return ascii_lower(c); });
    return out;
}

[[nodiscard]] constexpr bool ascii_iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return ascii_lower(x) == ascii_lower(y);
           });
}

} // namespace ember::core
