#pragma once
// Internal to daemon/config.cpp: the declarative table of every ember.toml
// section, in file order. Each section knows how to parse its TOML table
// into its member of Config (bounds and types via core/config_table.hpp),
// how to print that member back as TOML, and which keys it documents.
// Cross-field rules are not here: they need the whole Config (config.cpp).
// Pure: no I/O, no clock.

#include "core/config_table.hpp"
#include "daemon/config.hpp"

#include <functional>
#include <string>
#include <vector>

namespace ember::daemon {

struct Section {
    std::string name;   // "server", or "listener" for [[listener]]
    bool array = false; // an array of tables: parse() runs once per element
    // Parses one table into `config` (appending, for an array section).
    std::function<void(const toml::value&, Config&, const core::config::Context&)> parse;
    // The section's header(s) and keys as TOML.
    std::function<std::string(const Config&)> dump;
    std::function<std::vector<KeyDoc>()> docs;
};

[[nodiscard]] const std::vector<Section>& sections();

// [dns], [delivery], [[dkim]], [warmup] (config_tables_delivery.cpp).
[[nodiscard]] std::vector<Section> delivery_sections();
// [feedback], [events], [[webhook]] (config_tables_feedback.cpp).
[[nodiscard]] std::vector<Section> feedback_sections();
// [[api_key]] (config_tables_api.cpp).
[[nodiscard]] Section api_key_section();
// [personalize] (config_tables_personalize.cpp).
[[nodiscard]] std::vector<Section> personalize_sections();
// [tracking] (config_tables_tracking.cpp); after [http] and [feedback].
[[nodiscard]] std::vector<Section> tracking_sections();
[[nodiscard]] core::config::Field<AuthConfig> alignment_field();
[[nodiscard]] core::config::Field<smtp::ListenerConfig> listener_alignment_field();

// "[server]" or "[[listener]]", as messages name a section.
[[nodiscard]] std::string section_title(const Section& section);

// A host name as EHLO and Received: use it: dot-separated LDH labels
// (RFC 1035 2.3.1, RFC 1123 2.1), 1..63 octets each, 253 in all, not an IP.
[[nodiscard]] bool valid_hostname(std::string_view name);

// A list of sending domains ([[api_key]] domains, [tracking] domains):
// lowercased, a trailing dot dropped, "*" standing for every domain. False
// (and an error at `v`) when an entry is not a domain name.
[[nodiscard]] bool read_domain_list(const toml::value& v, std::vector<std::string>& out,
                                    const core::config::Context& ctx);

} // namespace ember::daemon
