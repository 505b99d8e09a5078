#pragma once
// A scripted core::Deliverer for scheduler tests: answers per address from
// a script (the last entry repeats; delivered when there is none), counts
// concurrent deliver() calls, and can hold every job in flight until
// release(). Shared by the queue and daemon tests.

#include "core/delivery.hpp"
#include "core/outcome.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace ember::queue::test {

namespace fake_asio = boost::asio;

inline core::Outcome remote(core::OutcomeKind kind, int code, std::string enhanced,
                            std::string text) {
    core::Outcome o;
    o.kind = kind;
    o.scope = core::OutcomeScope::Recipient;
    o.code = code;
    o.enhanced = std::move(enhanced);
    o.text = std::move(text);
    o.command = "RCPT TO";
    o.remote_host = "mx.example";
    o.remote_ip = "192.0.2.10";
    return o;
}
inline core::Outcome delivered() {
    return remote(core::OutcomeKind::Delivered, 250, "2.0.0", "ok");
}
inline core::Outcome deferred() {
    return remote(core::OutcomeKind::Deferred, 451, "4.7.1", "try later");
}
inline core::Outcome failed() {
    return remote(core::OutcomeKind::Failed, 550, "5.1.1", "no such user");
}
// Held back by a warm-up gate until `until_ms`, as the daemon's gate answers.
inline core::Outcome throttled(std::int64_t until_ms) {
    core::Outcome o;
    o.kind = core::OutcomeKind::Throttled;
    o.scope = core::OutcomeScope::Recipient;
    o.code = 451;
    o.enhanced = "4.4.5";
    o.text = "held by warm-up: daily cap";
    o.local = true;
    o.not_before_ms = until_ms;
    return o;
}

// Answers from a script per address (the last entry repeats; delivered when
// there is none), counts concurrent deliver() calls, and can hold every job
// in flight until release().
class FakeDeliverer final : public core::Deliverer {
public:
    explicit FakeDeliverer(const fake_asio::any_io_executor& executor) : gate_(executor) {
        gate_.expires_at(fake_asio::steady_timer::time_point::max());
    }

    std::map<std::string, std::deque<core::Outcome>> script;
    std::vector<core::DeliveryJob> jobs; // every job handed over, in order
    bool hold = false;
    std::set<std::string> hold_domains; // jobs to these wait until release_domain()
    bool short_answer = false;          // answer one outcome fewer than asked
    bool throws = false;                // break the Deliverer contract
    int active = 0;
    int max_active = 0;
    std::map<std::string, int> active_by_domain;
    std::map<std::string, int> max_by_domain;

    void release() {
        hold = false;
        hold_domains.clear();
        gate_.cancel();
    }
    void release_domain(const std::string& domain) {
        hold_domains.erase(domain);
        gate_.cancel();
    }

    [[nodiscard]] std::size_t attempts_of(const std::string& address) const {
        return static_cast<std::size_t>(
            std::count_if(jobs.begin(), jobs.end(), [&](const core::DeliveryJob& j) {
                return std::any_of(
                    j.recipients.begin(), j.recipients.end(),
                    [&](const core::JobRecipient& r) { return r.spec.address == address; });
            }));
    }

    fake_asio::awaitable<std::vector<core::Outcome>> deliver(core::DeliveryJob job) override {
        jobs.push_back(job);
        if (throws)
            throw std::runtime_error("deliverer broke its contract");
        ++active;
        max_active = std::max(max_active, active);
        const int in_domain = ++active_by_domain[job.domain];
        max_by_domain[job.domain] = std::max(max_by_domain[job.domain], in_domain);
        while (hold || hold_domains.contains(job.domain)) {
            const auto [ec] =
                co_await gate_.async_wait(fake_asio::as_tuple(fake_asio::use_awaitable));
            (void)ec;
        }
        --active;
        --active_by_domain[job.domain];
        std::vector<core::Outcome> out;
        for (const auto& r : job.recipients)
            out.push_back(next_outcome(r.spec.address));
        if (short_answer && !out.empty())
            out.pop_back();
        co_return out;
    }

private:
    core::Outcome next_outcome(const std::string& address) {
        auto& q = script[address];
        if (q.empty())
            return delivered();
        auto o = q.front();
        if (q.size() > 1)
            q.pop_front();
        return o;
    }
    fake_asio::steady_timer gate_;
};

} // namespace ember::queue::test
