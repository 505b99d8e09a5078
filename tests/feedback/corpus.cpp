#include "tests/feedback/corpus.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <sstream>

namespace ember::feedback::test {

std::filesystem::path corpus_root() {
    const auto root =
        std::filesystem::path(EMBER_SOURCE_DIR) / ".." / "shared" / "corpora" / "bounces";
    std::error_code ec;
    if (!std::filesystem::exists(root / "labels.tsv", ec))
        return {};
    return root;
}

std::vector<Label> read_labels(const std::filesystem::path& root) {
    std::vector<Label> labels;
    std::ifstream in(root / "labels.tsv");
    std::string line;
    std::getline(in, line); // header
    while (std::getline(in, line)) {
        std::vector<std::string> cols;
        std::stringstream ss(line);
        std::string col;
        while (std::getline(ss, col, '\t'))
            cols.push_back(col);
        cols.resize(10);
        Label l;
        l.file = cols[0];
        l.index = cols[1].empty() ? 0 : std::stoi(cols[1]);
        l.reason = cols[2];
        l.status = cols[4];
        l.pseudo_status = cols[5] == "1";
        l.hard = cols[7] == "1";
        l.feedback_type = cols[8];
        labels.push_back(std::move(l));
    }
    return labels;
}

std::vector<std::filesystem::path> corpus_files(const std::filesystem::path& root) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root / "maildir")) {
        if (entry.is_regular_file())
            files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    return files;
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

} // namespace ember::feedback::test
