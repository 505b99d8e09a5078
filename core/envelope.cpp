#include "core/envelope.hpp"

namespace ember::core {

std::string address_domain(std::string_view address) {
    const auto at = address.rfind('@');
    if (at == std::string_view::npos)
        return {};
    std::string domain(address.substr(at + 1));
    for (auto& c : domain) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    }
    return domain;
}

} // namespace ember::core
