#include "core/diagnostics.hpp"

#include <algorithm>

namespace ember::core {

std::string format(const Diagnostic& d) {
    if (d.line == 0)
        return d.file + ": " + d.message;
    return d.file + ":" + std::to_string(d.line) + ": " + d.message;
}

void Diagnostics::add(std::string file, std::uint32_t line, std::string message) {
    items_.push_back({std::move(file), line, std::move(message)});
}

void Diagnostics::append(const Diagnostics& other) {
    items_.insert(items_.end(), other.items_.begin(), other.items_.end());
}

std::vector<Diagnostic> Diagnostics::sorted() const {
    auto out = items_;
    std::stable_sort(out.begin(), out.end(), [](const Diagnostic& a, const Diagnostic& b) {
        if (a.file != b.file)
            return a.file < b.file;
        return a.line < b.line;
    });
    return out;
}

std::string Diagnostics::to_string() const {
    std::string out;
    for (const auto& d : sorted())
        out += format(d) + "\n";
    return out;
}

} // namespace ember::core
