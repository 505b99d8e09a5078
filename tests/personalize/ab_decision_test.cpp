#include "personalize/ab_decision.hpp"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

using namespace ember::personalize;

TEST_CASE("the winner is the highest rate; ties and no data go to the control") {
    struct Case {
        const char* what;
        std::vector<AbCellCounts> cells;
        AbMetric metric;
        std::size_t winner;
        std::optional<std::size_t> runner_up;
    };
    const std::vector<Case> cases = {
        {"no data at all", {{0, 0, 0}, {0, 0, 0}}, AbMetric::Clicks, 0, 1},
        {"equal rates", {{100, 10, 5}, {100, 10, 5}}, AbMetric::Clicks, 0, 1},
        {"b clicks more", {{100, 10, 2}, {100, 10, 9}}, AbMetric::Clicks, 1, 0},
        {"b clicks more but a opens more (opens)",
         {{100, 30, 2}, {100, 10, 9}},
         AbMetric::Opens,
         0,
         1},
        {"rate, not count, decides", {{1000, 0, 20}, {100, 0, 10}}, AbMetric::Clicks, 1, 0},
        {"three cells, c best, a second",
         {{100, 0, 5}, {100, 0, 1}, {100, 0, 7}},
         AbMetric::Clicks,
         2,
         0},
        {"three cells, b and c tie ahead of a",
         {{100, 0, 1}, {100, 0, 4}, {100, 0, 4}},
         AbMetric::Clicks,
         1,
         2},
        {"clicks without delivered events still count",
         {{0, 0, 0}, {0, 0, 3}},
         AbMetric::Clicks,
         1,
         0},
        {"a single cell", {{10, 1, 1}}, AbMetric::Clicks, 0, std::nullopt},
    };
    for (const auto& c : cases) {
        CAPTURE(c.what);
        const auto d = decide(c.cells, c.metric);
        CHECK(d.winner == c.winner);
        CHECK(d.runner_up == c.runner_up);
        CHECK(d.winner_rate >= d.runner_up_rate);
    }
}

TEST_CASE("the two-proportion z-test gives z and the two-sided p-value") {
    struct Case {
        std::uint64_t s1, n1, s2, n2;
        double z, p;
    };
    // Values checked by hand: pooled p, se = sqrt(p(1-p)(1/n1+1/n2)).
    const std::vector<Case> cases = {
        {60, 500, 40, 500, 2.1082, 0.0350},
        {30, 500, 25, 500, 0.6935, 0.4880},
        {25, 500, 30, 500, -0.6935, 0.4880},
        {0, 0, 5, 100, 0, 1},     // an empty cell: no evidence
        {0, 100, 0, 100, 0, 1},   // se == 0
        {100, 100, 50, 50, 0, 1}, // se == 0 at the other end
    };
    for (const auto& c : cases) {
        CAPTURE(c.s1);
        CAPTURE(c.n1);
        CAPTURE(c.s2);
        CAPTURE(c.n2);
        const auto t = two_proportion_z(c.s1, c.n1, c.s2, c.n2);
        CHECK(t.z == doctest::Approx(c.z).epsilon(0.001));
        CHECK(t.p_value == doctest::Approx(c.p).epsilon(0.002));
    }
}

TEST_CASE("a decision is significant only when p < 0.05") {
    const auto strong = decide({{500, 0, 40}, {500, 0, 60}}, AbMetric::Clicks);
    CHECK(strong.winner == 1);
    CHECK(strong.z == doctest::Approx(2.1082).epsilon(0.001));
    CHECK(strong.p_value < 0.05);
    CHECK(strong.significant);
    const auto weak = decide({{500, 0, 25}, {500, 0, 30}}, AbMetric::Clicks);
    CHECK(weak.winner == 1);
    CHECK(weak.p_value > 0.05);
    CHECK_FALSE(weak.significant);
    const auto none = decide({{0, 0, 0}, {0, 0, 0}}, AbMetric::Opens);
    CHECK(none.p_value == 1);
    CHECK_FALSE(none.significant);
}

TEST_CASE("cells take round(split x n) recipients each, the rest wait for the winner") {
    struct Case {
        std::size_t n;
        std::vector<double> split;
        std::vector<std::size_t> sizes; // per cell
        std::size_t rest;
    };
    const std::vector<Case> cases = {
        {20, {25, 25}, {5, 5}, 10}, {1000, {10, 10}, {100, 100}, 800},
        {10, {50, 50}, {5, 5}, 0},  {3, {10, 10}, {0, 0}, 3},
        {1, {50, 50}, {1, 0}, 0},   {7, {33.3, 33.3, 33.4}, {2, 2, 2}, 1},
        {5, {10, 90}, {1, 4}, 0},   {0, {10, 10}, {0, 0}, 0},
    };
    for (const auto& c : cases) {
        CAPTURE(c.n);
        CAPTURE(c.split.size());
        const auto cells = assign_cells(c.n, c.split, "0123456789abcdef");
        REQUIRE(cells.size() == c.n);
        std::vector<std::size_t> sizes(c.split.size());
        std::size_t rest = 0;
        for (const auto& cell : cells) {
            if (cell)
                ++sizes.at(*cell);
            else
                ++rest;
        }
        CHECK(sizes == c.sizes);
        CHECK(rest == c.rest);
    }
}

TEST_CASE("the assignment is a deterministic shuffle seeded by the test id") {
    const auto a1 = assign_cells(40, {25, 25}, "aaaaaaaaaaaaaaaa");
    const auto a2 = assign_cells(40, {25, 25}, "aaaaaaaaaaaaaaaa");
    const auto b = assign_cells(40, {25, 25}, "bbbbbbbbbbbbbbbb");
    CHECK(a1 == a2);
    CHECK(a1 != b);
    // Shuffled: the first ten recipients are not simply cell 0.
    std::size_t first_ten_in_cell0 = 0;
    for (std::size_t i = 0; i < 10; ++i)
        first_ten_in_cell0 += a1[i] == std::optional<std::size_t>(0) ? 1 : 0;
    CHECK(first_ten_in_cell0 < 10);
}

TEST_CASE("metric names parse both ways and nothing else parses") {
    CHECK(parse_ab_metric("clicks") == AbMetric::Clicks);
    CHECK(parse_ab_metric("opens") == AbMetric::Opens);
    CHECK_FALSE(parse_ab_metric("Clicks"));
    CHECK_FALSE(parse_ab_metric(""));
    CHECK(ab_metric_name(AbMetric::Opens) == "opens");
}
