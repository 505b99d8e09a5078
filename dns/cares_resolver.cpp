#include "dns/cares_resolver.hpp"

#include "core/log.hpp"
#include "dns/cares_answer.hpp"
#include "dns/cares_channel.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <vector>

namespace ember::dns {

namespace asio = boost::asio;
namespace log = core::log;

struct Lookup {
    Lookup(const asio::any_io_executor& executor, RecordType t, std::string n, std::string k)
        : type(t), name(std::move(n)), key(std::move(k)), deadline(executor) {}
    RecordType type;
    std::string name; // normalized
    std::string key;  // in_flight_'s
    std::vector<std::function<void(const AnyAnswer&)>> waiters;
    asio::steady_timer deadline;
    bool done = false;
};

namespace {

AnyAnswer timed_out() {
    AnyAnswer out;
    out.status = Status::Timeout;
    return out;
}

// c-ares doubles the per-try timeout each round (timeout << try / nservers):
// with one server, tries rounds take first * (2^tries - 1).
core::Duration first_try_timeout(core::Duration total, std::uint32_t tries) {
    const auto rounds = std::clamp<std::uint32_t>(tries, 1, 16);
    const auto divisor = (std::int64_t{1} << rounds) - 1;
    return std::max(core::Duration(1), core::Duration(total.count() / divisor));
}

} // namespace

CaresResolver::CaresResolver(asio::any_io_executor executor, const ResolverConfig& config,
                             Clock clock)
    : executor_(std::move(executor)), timeout_(config.timeout), clock_(std::move(clock)),
      cache_(CacheLimits{config.cache_entries, config.max_cache_ttl, config.negative_ttl}) {}

std::unique_ptr<CaresResolver> CaresResolver::create(asio::any_io_executor executor,
                                                     const ResolverConfig& config,
                                                     std::string& error, Clock clock) {
    const ChannelOptions options{config.servers, first_try_timeout(config.timeout, config.tries),
                                 config.tries};
    auto channel = AresChannel::create(executor, options, error);
    if (!channel)
        return nullptr;
    std::unique_ptr<CaresResolver> resolver(
        new CaresResolver(std::move(executor), config, std::move(clock)));
    resolver->channel_ = std::move(channel);
    return resolver;
}

CaresResolver::~CaresResolver() {
    // ares_destroy completes every pending lookup (ARES_EDESTRUCTION -> Timeout)
    // while the members finish() uses are still alive.
    channel_.reset();
    auto left = std::move(in_flight_);
    for (auto& [key, lookup] : left)
        finish(lookup, timed_out(), false);
}

template <typename T>
asio::awaitable<Answer<T>> CaresResolver::ask(RecordType type, std::string name) {
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(Answer<T>)>(
        [this, alive = std::weak_ptr<int>(alive_)](auto handler, RecordType t, std::string n) {
            // std::function needs a copyable callable: share the one-shot handler.
            auto shared = std::make_shared<decltype(handler)>(std::move(handler));
            Waiter waiter = [shared](const AnyAnswer& any) {
                auto ex = asio::get_associated_executor(*shared);
                asio::post(ex, [shared, answer = unwrap<T>(any)]() mutable {
                    std::move (*shared)(std::move(answer));
                });
            };
            if (alive.expired()) {
                waiter(timed_out());
                return;
            }
            resolve(t, n, std::move(waiter));
        },
        asio::use_awaitable, type, std::move(name));
}

void CaresResolver::resolve(RecordType type, const std::string& raw_name, Waiter waiter) {
    std::string name = normalize_name(raw_name);
    if (auto hit = cache_.find(type, name, clock_())) {
        ++stats_.cache_hits;
        waiter(*hit);
        return;
    }
    std::string key = fmt::format("{} {}", record_type_name(type), name);
    if (const auto it = in_flight_.find(key); it != in_flight_.end()) {
        ++stats_.coalesced;
        it->second->waiters.push_back(std::move(waiter));
        return;
    }
    auto lookup = std::make_shared<Lookup>(executor_, type, name, key);
    lookup->waiters.push_back(std::move(waiter));
    in_flight_.emplace(std::move(key), lookup);
    start_deadline(lookup);
    ++stats_.queries;
    // `this` is safe: c-ares runs callbacks only while channel_ (a member) lives.
    channel_->query(name, type, [this, lookup](int status, std::span<const std::uint8_t> reply) {
        finish(lookup, interpret_reply(lookup->type, status, reply), true);
    });
}

void CaresResolver::start_deadline(const std::shared_ptr<Lookup>& lookup) {
    lookup->deadline.expires_after(timeout_);
    lookup->deadline.async_wait([this, alive = std::weak_ptr<int>(alive_),
                                 weak = std::weak_ptr<Lookup>(lookup)](const auto& ec) {
        const auto l = weak.lock();
        if (ec || alive.expired() || !l || l->done)
            return;
        ++stats_.deadlines;
        finish(l, timed_out(), false);
    });
}

void CaresResolver::finish(const std::shared_ptr<Lookup>& lookup, const AnyAnswer& answer,
                           bool from_server) {
    if (lookup->done)
        return; // the deadline answered first; c-ares's late answer is dropped
    lookup->done = true;
    lookup->deadline.cancel();
    if (from_server)
        cache_.store(lookup->type, lookup->name, answer, clock_());
    if (const auto it = in_flight_.find(lookup->key);
        it != in_flight_.end() && it->second == lookup)
        in_flight_.erase(it);
    log::debug("dns.answer", "type={} name={} status={} records={} ttl={} waiters={}",
               record_type_name(lookup->type), log::q(lookup->name), status_name(answer.status),
               answer.records.size(), answer.ttl, lookup->waiters.size());
    const auto waiters = std::move(lookup->waiters);
    for (const auto& waiter : waiters)
        waiter(answer);
}

asio::awaitable<MxAnswer> CaresResolver::mx(std::string domain) {
    return ask<MxRecord>(RecordType::Mx, std::move(domain));
}

asio::awaitable<AddressAnswer> CaresResolver::a(std::string name) {
    return ask<core::IpAddress>(RecordType::A, std::move(name));
}

asio::awaitable<AddressAnswer> CaresResolver::aaaa(std::string name) {
    return ask<core::IpAddress>(RecordType::Aaaa, std::move(name));
}

asio::awaitable<TxtAnswer> CaresResolver::txt(std::string name) {
    return ask<std::string>(RecordType::Txt, std::move(name));
}

asio::awaitable<NameAnswer> CaresResolver::ptr(core::IpAddress address) {
    return ask<std::string>(RecordType::Ptr, reverse_name(address));
}

std::unique_ptr<Resolver> make_resolver(asio::any_io_executor executor,
                                        const ResolverConfig& config, std::string& error) {
    return CaresResolver::create(std::move(executor), config, error);
}

} // namespace ember::dns
