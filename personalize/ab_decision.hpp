#pragma once
// A/B tests as policy, without I/O: which recipients form the test cells,
// and which variant wins once the test's time is up.
//
// Assignment (assign_cells): the n accepted recipients are shuffled with a
// deterministic Fisher-Yates shuffle seeded from the test id (FNV-1a 64 of
// the id into a splitmix64 stream), so the same test assigns the same way
// on every build and platform; then the first round(split_i% x n) of the
// shuffled order go to cell i, in variant order, and the rest (the
// remainder of 100 %) wait for the winner. Rounding is half up; a cell
// never takes more than what is left, so the cells never exceed n.
//
// Decision (decide): a cell's rate is its unique human successes (opens or
// clicks, as the metric says) over its delivered count. The denominator is
// at least the successes: a click proves a delivery whose event may have
// been lost (a restart between saves), and a rate above 1 would be
// nonsense. The winner is the cell with the highest rate; a tie, including
// "no data at all", goes to the earlier cell, so the control (the first
// variant) wins unless another variant does strictly better. The runner-up
// is the best of the others, and the difference is judged with the
// two-proportion z-test (pooled standard error):
//   p = (s1 + s2) / (n1 + n2),  se = sqrt(p (1 - p) (1/n1 + 1/n2)),
//   z = (r1 - r2) / se,         p-value = erfc(|z| / sqrt 2) (two-sided)
// and is significant when p-value < 0.05. With an empty cell or se == 0
// (both rates 0 or both 1) there is no evidence: z = 0, p-value = 1. The
// winner is sent whether or not the difference is significant (the test's
// time is up and the rest must go out); significance is reported so the
// sender knows how much to trust it. A normal approximation: with very few
// successes (under about 5 per cell) the p-value is rough.
//
// Pure; thread-safe.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::personalize {

enum class AbMetric { Clicks, Opens };

[[nodiscard]] std::string_view ab_metric_name(AbMetric metric);
[[nodiscard]] std::optional<AbMetric> parse_ab_metric(std::string_view text);

inline constexpr double kAbSignificance = 0.05;

// Per recipient (in the order given), the cell it belongs to: an index
// into `split_percent`, or nullopt for the rest. `split_percent` are the
// cells' percentages (each > 0, sum <= 100: the caller checks).
[[nodiscard]] std::vector<std::optional<std::size_t>>
assign_cells(std::size_t recipients, const std::vector<double>& split_percent,
             std::string_view test_id);

struct AbCellCounts {
    std::uint64_t delivered = 0;
    std::uint64_t opens = 0;  // unique human opens
    std::uint64_t clicks = 0; // unique human clicks
};

struct AbDecision {
    std::size_t winner = 0;               // index of the winning cell
    std::optional<std::size_t> runner_up; // none with a single cell
    double winner_rate = 0;               // successes / max(delivered, successes)
    double runner_up_rate = 0;
    double z = 0;
    double p_value = 1;
    bool significant = false;
};

// The cell's rate under the metric (0 for an empty cell).
[[nodiscard]] double ab_rate(const AbCellCounts& cell, AbMetric metric);

// `cells` in variant order (the control first); at least one.
[[nodiscard]] AbDecision decide(const std::vector<AbCellCounts>& cells, AbMetric metric);

// The two-proportion z-test of s1/n1 against s2/n2: {z, two-sided p}.
struct ZTest {
    double z = 0;
    double p_value = 1;
};
[[nodiscard]] ZTest two_proportion_z(std::uint64_t s1, std::uint64_t n1, std::uint64_t s2,
                                     std::uint64_t n2);

} // namespace ember::personalize
