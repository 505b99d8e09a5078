#pragma once
// Internal to warmup/: the effective state of one key at a given instant,
// computed from the stored state without changing it. admit() rolls the
// state over first and then reads the same view, so peek(), remaining(),
// status() and explain() answer exactly what admit() would.

#include "warmup/engine.hpp"

#include <optional>

namespace ember::warmup {

struct Engine::View {
    const Key* key = nullptr; // the caller's, outlives the view
    const Provider* provider = nullptr;
    SenderInfo sender;
    const DomainState* ds = nullptr; // nullptr: no state yet
    const KeyState* ks = nullptr;    // nullptr: no state yet
    std::int64_t today = 0;
    std::uint32_t ramp_day = 0;             // 0: unthrottled
    std::optional<std::uint64_t> cap;       // this key's share of today's cap
    std::optional<std::uint64_t> allowance; // what may have gone by now (cap, or less when spread)
    std::uint64_t sent = 0;                 // today
    double multiplier = 1.0;                // backoff
    std::optional<double> rate;             // effective, per second; nullopt: unlimited
};

} // namespace ember::warmup
