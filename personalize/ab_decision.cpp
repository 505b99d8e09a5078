#include "personalize/ab_decision.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace ember::personalize {
namespace {

std::uint64_t fnv1a(std::string_view text) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const char c : text) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001b3ULL;
    }
    return h;
}

// splitmix64 (Steele, Lea, Flood 2014): fully specified, unlike the
// standard library's distributions, so an assignment never depends on the
// toolchain.
std::uint64_t next(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

std::uint64_t successes(const AbCellCounts& cell, AbMetric metric) {
    return metric == AbMetric::Clicks ? cell.clicks : cell.opens;
}

std::uint64_t denominator(const AbCellCounts& cell, AbMetric metric) {
    return std::max(cell.delivered, successes(cell, metric));
}

// The best cell among those `skip` does not exclude; ties to the earlier.
std::optional<std::size_t> best(const std::vector<AbCellCounts>& cells, AbMetric metric,
                                std::optional<std::size_t> skip) {
    std::optional<std::size_t> out;
    for (std::size_t i = 0; i < cells.size(); ++i) {
        if (skip && *skip == i)
            continue;
        if (!out || ab_rate(cells[i], metric) > ab_rate(cells[*out], metric))
            out = i;
    }
    return out;
}

} // namespace

std::string_view ab_metric_name(AbMetric metric) {
    return metric == AbMetric::Clicks ? "clicks" : "opens";
}

std::optional<AbMetric> parse_ab_metric(std::string_view text) {
    if (text == "clicks")
        return AbMetric::Clicks;
    if (text == "opens")
        return AbMetric::Opens;
    return std::nullopt;
}

std::vector<std::optional<std::size_t>> assign_cells(std::size_t recipients,
                                                     const std::vector<double>& split_percent,
                                                     std::string_view test_id) {
    std::vector<std::size_t> order(recipients);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::uint64_t state = fnv1a(test_id);
    for (std::size_t i = recipients; i > 1; --i) {
        // Modulo bias is below 2^-40 for any realistic request size.
        const auto j = static_cast<std::size_t>(next(state) % i);
        std::swap(order[i - 1], order[j]);
    }
    std::vector<std::optional<std::size_t>> cells(recipients);
    std::size_t taken = 0;
    for (std::size_t c = 0; c < split_percent.size(); ++c) {
        const auto want = static_cast<std::size_t>(
            std::floor(split_percent[c] / 100.0 * static_cast<double>(recipients) + 0.5));
        const auto size = std::min(want, recipients - taken);
        for (std::size_t k = 0; k < size; ++k)
            cells[order[taken + k]] = c;
        taken += size;
    }
    return cells;
}

double ab_rate(const AbCellCounts& cell, AbMetric metric) {
    const auto n = denominator(cell, metric);
    return n == 0 ? 0.0 : static_cast<double>(successes(cell, metric)) / static_cast<double>(n);
}

ZTest two_proportion_z(std::uint64_t s1, std::uint64_t n1, std::uint64_t s2, std::uint64_t n2) {
    if (n1 == 0 || n2 == 0)
        return {};
    const auto a = static_cast<double>(n1);
    const auto b = static_cast<double>(n2);
    const double pooled = static_cast<double>(s1 + s2) / (a + b);
    const double se = std::sqrt(pooled * (1 - pooled) * (1 / a + 1 / b));
    if (!(se > 0))
        return {};
    const double z = (static_cast<double>(s1) / a - static_cast<double>(s2) / b) / se;
    return {z, std::erfc(std::fabs(z) / std::sqrt(2.0))};
}

AbDecision decide(const std::vector<AbCellCounts>& cells, AbMetric metric) {
    AbDecision d;
    if (cells.empty())
        return d;
    d.winner = *best(cells, metric, std::nullopt);
    d.winner_rate = ab_rate(cells[d.winner], metric);
    d.runner_up = best(cells, metric, d.winner);
    if (!d.runner_up)
        return d;
    const auto& w = cells[d.winner];
    const auto& r = cells[*d.runner_up];
    d.runner_up_rate = ab_rate(r, metric);
    const auto test = two_proportion_z(successes(w, metric), denominator(w, metric),
                                       successes(r, metric), denominator(r, metric));
    d.z = test.z;
    d.p_value = test.p_value;
    d.significant = d.p_value < kAbSignificance;
    return d;
}

} // namespace ember::personalize
