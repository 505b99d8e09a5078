#pragma once
// The labelled bounce corpus of ../shared/corpora/bounces (sisimai's
// set-of-emails with labels.tsv), read by the accuracy and robustness
// tests. Users' clones lack ../shared: callers skip when root() is empty.

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace ember::feedback::test {

struct Label {
    std::string file; // "maildir/bsd/lhost-qmail-01.eml"
    int index = 0;    // 1-based recipient order; 0 for whole-file labels
    std::string reason;
    std::string status;
    bool pseudo_status = false;
    bool hard = false;
    std::string feedback_type;
};

// ../shared/corpora/bounces next to the source tree, or "" when absent.
std::filesystem::path corpus_root();

// labels.tsv, header skipped.
std::vector<Label> read_labels(const std::filesystem::path& root);

// Every regular file under root/maildir, sorted.
std::vector<std::filesystem::path> corpus_files(const std::filesystem::path& root);

std::string read_file(const std::filesystem::path& path);

} // namespace ember::feedback::test
