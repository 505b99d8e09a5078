#pragma once
// The sample messages kept in tests/data (copied from the public corpora
// so the unit tests always run; see tests/data/*/SOURCE.txt).

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace ember::feedback::test {

inline std::string sample(const std::string& relative) {
    const auto path = std::filesystem::path(EMBER_SOURCE_DIR) / "tests" / "data" / relative;
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

} // namespace ember::feedback::test
