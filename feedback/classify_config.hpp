#pragma once
// The classifier's typed configuration ([feedback] in ember.toml) and the
// one call that turns it into rules. The daemon's config table fills the
// struct; defaults live here, once.

#include "core/diagnostics.hpp"
#include "feedback/rules.hpp"

#include <string>
#include <vector>

namespace ember::feedback {

struct ClassifyConfig {
    // Admin rules files, read after the built-in table; a later file's
    // rules win over an earlier one's, all of them over the built-in ones.
    std::vector<std::string> rules_files;
    // false: only rules_files apply (an admin who replaces the table).
    bool builtin_rules = true;
};

// Every error is added as file:line: message; the rules that did load are
// returned either way (reload keeps the old rules when diag is not empty).
[[nodiscard]] inline Rules load_rules(const ClassifyConfig& config, core::Diagnostics& diag) {
    return Rules::load(config.rules_files, diag, config.builtin_rules);
}

} // namespace ember::feedback
