#include "smtp/server_env.hpp"

#include <vector>

namespace ember::smtp {

ConnectionTracker::Verdict ConnectionTracker::try_acquire(const core::IpAddress& ip,
                                                          const Limits& limits) {
    if (total_ >= limits.max_connections)
        return Verdict::TooManyTotal;
    auto& count = per_ip_[ip];
    if (count >= limits.max_connections_per_ip) {
        if (count == 0)
            per_ip_.erase(ip);
        return Verdict::TooManyFromIp;
    }
    ++count;
    ++total_;
    return Verdict::Ok;
}

void ConnectionTracker::release(const core::IpAddress& ip) {
    const auto it = per_ip_.find(ip);
    if (it == per_ip_.end())
        return;
    --total_;
    if (--it->second == 0)
        per_ip_.erase(it);
}

std::uint32_t ConnectionTracker::from(const core::IpAddress& ip) const {
    const auto it = per_ip_.find(ip);
    return it == per_ip_.end() ? 0 : it->second;
}

void SessionRegistry::request_stop_all() {
    stopping_ = true;
    // A session may remove itself while being told to stop: iterate a copy.
    const std::vector<Stoppable*> snapshot(live_.begin(), live_.end());
    for (auto* s : snapshot) {
        if (live_.count(s))
            s->request_stop();
    }
}

void SessionRegistry::force_close_all() {
    const std::vector<Stoppable*> snapshot(live_.begin(), live_.end());
    for (auto* s : snapshot) {
        if (live_.count(s))
            s->force_close();
    }
}

} // namespace ember::smtp
