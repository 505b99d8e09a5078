// The config table of open and click tracking: [tracking]
// (daemon/tracking_config.hpp, daemon/tracking_service.hpp). Same rules as
// config_tables.cpp: one row per key, defaults in the structs. The section
// comes after [http] and [feedback], so public_url and token_keys are known
// when it checks that tracking has what it needs.

#include "daemon/config_tables.hpp"

#include <utility>

namespace ember::daemon {
namespace {

namespace cfg = core::config;
using namespace std::chrono_literals;

// Sending domains, lowercased, trailing dot dropped; "*" is every domain.
cfg::Field<TrackingConfig> domains_field() {
    auto field = cfg::string_list_field<TrackingConfig>("domains", &TrackingConfig::domains);
    field.parse = [](const toml::value& v, TrackingConfig& t, const cfg::Context& ctx) {
        std::vector<std::string> list;
        if (read_domain_list(v, list, ctx))
            t.domains = std::move(list);
    };
    return field;
}

// RE2 patterns, each compiled here so --check refuses what the daemon could not use.
cfg::Field<TrackingConfig> user_agents_field() {
    auto field = cfg::nested(&TrackingConfig::machine,
                             cfg::string_list_field<feedback::MachineConfig>(
                                 "machine_user_agents", &feedback::MachineConfig::user_agents));
    field.parse = [](const toml::value& v, TrackingConfig& t, const cfg::Context& ctx) {
        std::vector<std::string> list;
        if (!cfg::read_string_list(v, list, ctx))
            return;
        for (const auto& p : list) {
            if (const auto error = feedback::check_user_agent_pattern(p); !error.empty()) {
                ctx.error(v, "machine_user_agents: " + cfg::quote(p) + ": " + error);
                return;
            }
        }
        t.machine.user_agents = std::move(list);
    };
    return field;
}

template <typename F> cfg::Field<TrackingConfig> machine(F&& field) {
    return cfg::nested(&TrackingConfig::machine, std::forward<F>(field));
}

const cfg::Table<TrackingConfig>& tracking_table() {
    using T = TrackingConfig;
    using M = feedback::MachineConfig;
    static const cfg::Table<T> table{
        domains_field(),
        cfg::bool_field<T>("opens", &T::opens),
        cfg::bool_field<T>("clicks", &T::clicks),
        machine(cfg::duration_field<M>("machine_click_window", &M::click_window, 0s, 1h)),
        user_agents_field(),
        machine(cfg::cidr_list_field<M>("machine_networks", &M::networks)),
        cfg::duration_field<T>("retention", &T::retention, 1h, 3650 * 24h),
    };
    return table;
}

// Tracking links are signed and point at public_url: without either there
// is nothing to track with.
void check_tracking(const toml::value& v, const Config& c, const cfg::Context& ctx) {
    if (c.tracking.domains.empty())
        return;
    if (c.feedback.token_keys.empty())
        ctx.error(v, "[tracking] domains needs [feedback] token_keys (tracking links are signed)");
    if (c.http.public_url.empty())
        ctx.error(v, "[tracking] domains needs [http] public_url (where tracking links point)");
}

} // namespace

std::vector<Section> tracking_sections() {
    Section s;
    s.name = "tracking";
    s.parse = [](const toml::value& v, Config& c, const cfg::Context& ctx) {
        cfg::parse_table(v, "[tracking]", tracking_table(), c.tracking, ctx);
        if (v.is_table())
            check_tracking(v, c, ctx);
    };
    s.dump = [](const Config& c) {
        return "[tracking]\n" + cfg::dump_table(tracking_table(), c.tracking);
    };
    s.docs = [] {
        std::vector<KeyDoc> out;
        const TrackingConfig defaults{};
        for (const auto& f : tracking_table())
            out.push_back({"tracking", f.key, f.dump(defaults)});
        return out;
    };
    return {std::move(s)};
}

} // namespace ember::daemon
