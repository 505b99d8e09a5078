#pragma once
// What `emberctl warmup status|explain` print: a text table for people and
// JSON (Boost.JSON values, the admin socket's currency) for --json. Field
// names in JSON are snake_case and stable; times are RFC 3339 UTC; rates are
// per second. Pure.

#include "warmup/engine.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <string>
#include <vector>

namespace ember::warmup {

[[nodiscard]] boost::json::object to_json(const KeyStatus& s);
[[nodiscard]] boost::json::array to_json(const std::vector<KeyStatus>& rows);
[[nodiscard]] boost::json::object to_json(const Explanation& e);
[[nodiscard]] boost::json::object to_json(const Event& e);
[[nodiscard]] boost::json::object to_json(const Admission& a);

// One line per key: domain, provider, ramp day, sent/cap, rate, state
// (backoff or suspension and until when), then the domain's guardrail rates.
[[nodiscard]] std::string format_status(const std::vector<KeyStatus>& rows);
// "backoff_started news.example.com/gmail: rate x0.5 until ..." for logs.
[[nodiscard]] std::string format_event(const Event& e);

} // namespace ember::warmup
