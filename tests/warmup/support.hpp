#pragma once
// Shared helpers for the warm-up tests: configs from inline TOML, instants
// from RFC 3339 text (the clock is always a plain value, never the system's),
// and outcomes as the SMTP client would report them.

#include "core/outcome.hpp"
#include "warmup/config.hpp"
#include "warmup/values.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

namespace ember::warmup::test {

inline Config config_from(std::string_view toml) {
    core::Diagnostics diag;
    auto config = parse_config(toml, "test.toml", diag);
    INFO(diag.to_string());
    REQUIRE(config.has_value());
    return *config;
}

inline TimePoint at(std::string_view rfc3339) {
    const auto t = parse_time(rfc3339);
    REQUIRE_MESSAGE(t.has_value(), std::string(rfc3339));
    return *t;
}

inline core::Outcome reply(core::OutcomeKind kind, int code, std::string enhanced,
                           std::string text) {
    core::Outcome o;
    o.kind = kind;
    o.scope = core::OutcomeScope::Recipient;
    o.code = code;
    o.enhanced = std::move(enhanced);
    o.text = std::move(text);
    o.command = "RCPT TO";
    o.remote_host = "mx.example.net";
    return o;
}

inline core::Outcome delivered() {
    return reply(core::OutcomeKind::Delivered, 250, "2.0.0", "ok");
}
inline core::Outcome deferred() {
    return reply(core::OutcomeKind::Deferred, 451, "4.3.0", "try again later");
}
inline core::Outcome bounced() {
    return reply(core::OutcomeKind::Failed, 550, "5.1.1", "no such user");
}

} // namespace ember::warmup::test
