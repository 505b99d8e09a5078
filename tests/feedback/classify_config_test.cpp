#include "feedback/classify_config.hpp"

#include "feedback/classify.hpp"

#include <doctest/doctest.h>

using namespace ember::feedback;

TEST_CASE("the default configuration is the built-in table alone") {
    const ClassifyConfig config;
    CHECK(config.rules_files.empty());
    CHECK(config.builtin_rules);
    ember::core::Diagnostics diag;
    const auto rules = load_rules(config, diag);
    CHECK(diag.empty());
    CHECK(rules.size() == Rules::builtin().size());
}

TEST_CASE("turning the built-in table off with no files leaves no rules") {
    ClassifyConfig config;
    config.builtin_rules = false;
    ember::core::Diagnostics diag;
    const auto rules = load_rules(config, diag);
    CHECK(rules.size() == 0);
    CHECK(classify(550, "5.1.1", "User unknown", rules).reason == Reason::OnHold);
}
