#pragma once
// Collected configuration errors, reported all at once as `file:line: message`
// (OpenSMTPD style) so an admin fixes every mistake in one pass.

#include <cstdint>
#include <string>
#include <vector>

namespace ember::core {

struct Diagnostic {
    std::string file;
    std::uint32_t line = 0; // 0: the error concerns the whole file
    std::string message;
};

// "file:line: message", or "file: message" when the line is unknown.
[[nodiscard]] std::string format(const Diagnostic& d);

class Diagnostics {
public:
    void add(std::string file, std::uint32_t line, std::string message);
    void append(const Diagnostics& other);
    [[nodiscard]] bool empty() const { return items_.empty(); }
    [[nodiscard]] std::size_t size() const { return items_.size(); }
    // Ordered by file, then line, then insertion.
    [[nodiscard]] std::vector<Diagnostic> sorted() const;
    // Every diagnostic, one per line, sorted.
    [[nodiscard]] std::string to_string() const;

private:
    std::vector<Diagnostic> items_;
};

} // namespace ember::core
