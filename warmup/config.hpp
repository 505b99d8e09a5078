#pragma once
// warmup.toml as typed data: schedules (the ramp), senders (a sending domain,
// optionally a source IP, bound to a schedule and a start day), providers
// (groups of destinations with their connection, rate and share limits),
// response rules (RE2 patterns on replies mapped to backoff, suspend or
// retry-later) and guardrails (bounce, deferral and complaint thresholds).
//
// Loading collects every problem as `file:line: message` (unknown keys with a
// "did you mean"); nothing throws. RE2 patterns are compiled at load, so a
// bad pattern is a load error, never a runtime surprise. A Config is an
// immutable value once loaded (patterns are shared, so copies are cheap);
// reload builds a new one and swaps it into the Engine. No I/O beyond
// reading the file in load_config().

#include "core/diagnostics.hpp"
#include "core/units.hpp"
#include "warmup/values.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace re2 {
class RE2;
}

namespace ember::warmup {

// What ember.toml holds about warm-up ([warmup] section; the daemon's table
// parses it). An empty file means no warm-up: every sending domain is
// unthrottled and no state is kept.
struct Settings {
    std::string file;                                       // path of warmup.toml
    core::Duration save_interval = std::chrono::minutes(1); // how often state goes to LMDB
    // Lets `emberctl warmup advance DAYS` move the warm-up clock forward (for
    // tests and dry runs on a scratch daemon); never on in production.
    bool allow_clock_advance = false;
};

// After the last listed day: no cap any more, or a steady cap for good.
enum class After : std::uint8_t { Unlimited, Steady };
// None: the day's cap may go out as fast as the rate allows. Hourly: by the
// end of UTC hour h (0..23) at most ceil(cap * (h + 1) / 24) have gone, so
// the cap is spread over the day and what an hour leaves unused carries over.
enum class Spread : std::uint8_t { None, Hourly };

struct Schedule {
    std::string name;
    std::vector<std::uint64_t> caps; // caps[0] is day 1
    After after = After::Unlimited;
    std::uint64_t steady_cap = 0; // the cap after the last day when after == Steady
    Spread spread = Spread::None;

    // The cap of ramp day `day` (1-based; 0 is read as 1); nullopt: unlimited.
    [[nodiscard]] std::optional<std::uint64_t> cap(std::uint32_t day) const;
};

struct Guardrails {
    core::Duration window = std::chrono::hours(24); // whole hours, 1h..7d
    std::uint64_t min_volume = 100;                 // rates below this many attempts are not judged
    double max_bounce_rate = 0.02;                  // hard bounces / (delivered + failed)
    double max_deferral_rate = 0.20;                // deferred / attempts
    double max_complaint_rate = 0.001;              // complaints / delivered
    double suspend_complaint_rate = 0.003;          // at or above: the domain is suspended
    friend bool operator==(const Guardrails&, const Guardrails&) = default;
};

struct Sender {
    std::string domain; // lowercase
    std::string source; // source IP as written; "" = every source of the domain
    std::string schedule;
    Day start{};
    Guardrails guardrails; // [guardrails] with this sender's overrides applied
    std::uint32_t line = 0;
};

struct Provider {
    std::string name;
    std::vector<std::string> domains;  // "gmail.com", "hotmail.*", "*.example.net" (lowercase)
    std::vector<std::string> mx;       // "*.google.com", "mx?.mail.icloud.com"
    std::uint32_t max_connections = 0; // 0: unlimited
    std::uint32_t max_messages_per_connection = 0; // 0: unlimited
    Rate max_rate;                                 // unlimited by default
    double share = 1.0;                            // of the schedule's daily cap
    std::uint32_t line = 0;

    // Neither domains nor MX patterns: the catch-all for everything else.
    [[nodiscard]] bool catch_all() const { return domains.empty() && mx.empty(); }
};

enum class Action : std::uint8_t { Backoff, Suspend, RetryLater };
[[nodiscard]] std::string_view action_name(Action a);

struct Rule {
    std::string provider; // "" = every provider
    // Patterns as written ("" = any); code and enhanced must match in full,
    // text anywhere in the reply text.
    std::string code, enhanced, text;
    std::shared_ptr<const re2::RE2> code_re, enhanced_re, text_re;
    Action action = Action::Backoff;
    double factor = 0.5;                             // backoff: rate *= factor
    core::Duration duration = std::chrono::hours(1); // backoff hold, or suspension length
    std::uint32_t line = 0;                          // where it is written, for explain

    // True when the reply matches every pattern the rule has.
    [[nodiscard]] bool matches(int reply_code, std::string_view enhanced_code,
                               std::string_view reply_text) const;
    // "line 42: gmail 421 /4\.7\.28/ -> backoff x0.5 for 1h"
    [[nodiscard]] std::string describe() const;
};

// Additive increase after a backoff: every `interval`, the rate grows back by
// `step` (a fraction of the provider's configured rate) until it is whole.
struct Recovery {
    double step = 0.1;
    core::Duration interval = std::chrono::minutes(10);
    friend bool operator==(const Recovery&, const Recovery&) = default;
};

struct Config {
    std::string file; // as given to load_config, for messages
    std::vector<Schedule> schedules;
    std::vector<Sender> senders;
    std::vector<Provider> providers; // the catch-all is always present (implicit "other")
    std::vector<Rule> rules;         // provider rules before global ones, each in file order
    Guardrails guardrails;
    Recovery recovery;
    std::string default_schedule; // for unlisted sending domains; "" = unthrottled

    [[nodiscard]] const Schedule* schedule(std::string_view name) const;
    [[nodiscard]] const Provider* provider(std::string_view name) const;
    [[nodiscard]] const Provider& catch_all() const;
    // The sender entry for (domain, source): an exact source match first, then
    // the domain's entry without source; nullptr when the domain is unlisted.
    [[nodiscard]] const Sender* sender(std::string_view domain, std::string_view source) const;
};

// The config used when no warmup.toml is configured: no senders, no rules,
// one unlimited catch-all provider; every domain is unthrottled.
[[nodiscard]] Config unthrottled_config();

// Reads and validates `path`. nullopt (with diagnostics) on any error.
[[nodiscard]] std::optional<Config> load_config(const std::string& path, core::Diagnostics& diag);
// The same from text; `name` is the file name used in messages.
[[nodiscard]] std::optional<Config> parse_config(std::string_view text, const std::string& name,
                                                 core::Diagnostics& diag);

} // namespace ember::warmup
