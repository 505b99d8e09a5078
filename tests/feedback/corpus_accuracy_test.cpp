// Reason accuracy and hard/soft agreement on the labelled corpus of real
// bounces (../shared/corpora/bounces), with a per-reason table. Skips when
// the corpus is absent. EMBER_CORPUS_VERBOSE=1 prints every disagreement.

#include "feedback/bounce_parser.hpp"

#include "tests/feedback/corpus.hpp"

#include <doctest/doctest.h>
#include <fmt/core.h>

#include <algorithm>
#include <cstdlib>
#include <map>

using namespace ember::feedback;
using namespace ember::feedback::test;

namespace {

struct Tally {
    int total = 0;
    int reason_ok = 0;
    int hard_ok = 0;
};

struct Results {
    Tally all;
    std::map<std::string, Tally> by_reason;
    std::map<std::string, int> confusions; // "want -> got"
    int not_bounce_total = 0;
    int not_bounce_ok = 0;
    int status_total = 0; // rows whose status is a real one (not a Sisimai pseudo code)
    int status_ok = 0;
};

bool verbose() {
    const char* v = std::getenv("EMBER_CORPUS_VERBOSE");
    return v != nullptr && *v != '\0' && *v != '0';
}

// The parsed copies of one labelled message: LF, and the CRLF / CR
// variants when the corpus has them.
std::vector<std::string> variants(const std::filesystem::path& root, const std::string& file) {
    std::vector<std::string> out{file};
    const std::string bsd = "maildir/bsd/";
    if (!file.starts_with(bsd))
        return out;
    for (const char* dir : {"maildir/dos/", "maildir/mac/"}) {
        const auto other = std::string(dir) + file.substr(bsd.size());
        if (std::filesystem::exists(root / other))
            out.push_back(other);
    }
    return out;
}

void score(const Label& label, const std::string& file, const BounceReport& report, Results& r) {
    if (label.reason == "UNLABELLED")
        return;
    if (label.reason == "NOT-A-BOUNCE") {
        ++r.not_bounce_total;
        r.not_bounce_ok += report.kind != BounceKind::Bounce ? 1 : 0;
        return;
    }
    const auto i = static_cast<std::size_t>(label.index - 1);
    const bool present = label.index >= 1 && i < report.recipients.size();
    const std::string got =
        present ? std::string(reason_name(report.recipients[i].classification.reason)) : "(none)";
    const bool hard = present && report.recipients[i].classification.hard;
    auto& t = r.by_reason[label.reason];
    for (auto* tally : {&r.all, &t}) {
        ++tally->total;
        tally->reason_ok += got == label.reason ? 1 : 0;
        tally->hard_ok += hard == label.hard ? 1 : 0;
    }
    if (got != label.reason)
        ++r.confusions[label.reason + " -> " + got];
    // Sisimai's pseudo codes (5.0.9xx) are its own invention: compare the
    // reason only for those rows.
    if (!label.status.empty() && !label.pseudo_status) {
        ++r.status_total;
        r.status_ok += present && report.recipients[i].classification.status == label.status;
    }
    if (verbose() && (got != label.reason || hard != label.hard)) {
        const auto& rc = present ? report.recipients[i] : BouncedRecipient{};
        fmt::print("MISS {} #{} want={}{} got={}{} status={} rule={} cmd={} diag={}\n", file,
                   label.index, label.reason, label.hard ? "/hard" : "", got, hard ? "/hard" : "",
                   rc.classification.status, rc.classification.rule, command_name(rc.command),
                   rc.diagnostic.substr(0, 300));
    }
}

void print_table(const Results& r) {
    fmt::print("\nbounce corpus: {} labelled recipients\n", r.all.total);
    fmt::print("{:<16} {:>6} {:>8} {:>9}\n", "reason", "total", "correct", "accuracy");
    for (const auto& [reason, t] : r.by_reason)
        fmt::print("{:<16} {:>6} {:>8} {:>8.1f}%\n", reason, t.total, t.reason_ok,
                   100.0 * t.reason_ok / t.total);
    fmt::print("reason accuracy:     {:.1f}% ({}/{})\n", 100.0 * r.all.reason_ok / r.all.total,
               r.all.reason_ok, r.all.total);
    fmt::print("hard/soft agreement: {:.1f}% ({}/{})\n", 100.0 * r.all.hard_ok / r.all.total,
               r.all.hard_ok, r.all.total);
    fmt::print("status agreement:    {:.1f}% ({}/{}, rows without a pseudo code)\n",
               100.0 * r.status_ok / std::max(1, r.status_total), r.status_ok, r.status_total);
    fmt::print("not-a-bounce files recognised: {}/{}\n", r.not_bounce_ok, r.not_bounce_total);
    fmt::print("most frequent disagreements (label -> ember):\n");
    std::vector<std::pair<int, std::string>> sorted;
    for (const auto& [k, n] : r.confusions)
        sorted.emplace_back(n, k);
    std::sort(sorted.rbegin(), sorted.rend());
    for (std::size_t i = 0; i < sorted.size() && i < 15; ++i)
        fmt::print("  {:>3}  {}\n", sorted[i].first, sorted[i].second);
}

} // namespace

TEST_CASE("the labelled bounce corpus gets at least 90% reason accuracy and 97% hard/soft "
          "agreement") {
    const auto root = corpus_root();
    if (root.empty()) {
        MESSAGE("skipped: ../shared/corpora/bounces is not there");
        return;
    }
    std::map<std::string, std::vector<Label>> by_file;
    for (auto& label : read_labels(root))
        by_file[label.file].push_back(label);
    REQUIRE(by_file.size() > 100);

    Results results;
    for (const auto& [file, labels] : by_file) {
        for (const auto& copy : variants(root, file)) {
            const auto report = parse_bounce(read_file(root / copy));
            for (const auto& label : labels)
                score(label, copy, report, results);
        }
    }
    print_table(results);
    const double reason = 1.0 * results.all.reason_ok / results.all.total;
    const double hard = 1.0 * results.all.hard_ok / results.all.total;
    CHECK(reason >= 0.90);
    CHECK(hard >= 0.97);
    CHECK(results.not_bounce_ok == results.not_bounce_total);
}
