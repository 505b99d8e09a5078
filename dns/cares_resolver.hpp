#pragma once
// The production Resolver (make_resolver()): c-ares on the caller's
// executor (cares_channel.hpp), a TTL cache in front of it (cache.hpp), and
// coalescing: concurrent identical questions (same type, same name in any
// case) share one in-flight lookup and all get its answer.
//
// Every question is bounded by ResolverConfig::timeout, all tries included:
// c-ares's first try gets timeout / (2^tries - 1) (it doubles each round,
// so one server uses exactly the budget), and a deadline per lookup answers
// Timeout when several servers would take longer.
//
// Threading: single-threaded, on the executor given (see cares_channel.hpp).
// Answers are always delivered by posting to the awaiting coroutine's
// executor, never from inside c-ares.
// Lifetime: the resolver may be destroyed with questions pending: their
// coroutines resume with Status::Timeout (ares_destroy cancels the queries).
// An awaitable obtained before the destruction and awaited after it also
// completes with Timeout.

#include "dns/cache.hpp"
#include "dns/resolver.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

namespace ember::dns {

class AresChannel;
struct Lookup;

class CaresResolver final : public Resolver {
public:
    using Clock = std::function<Cache::TimePoint()>; // tests pass a manual clock

    struct Stats {
        std::uint64_t queries = 0;    // questions sent to c-ares
        std::uint64_t cache_hits = 0; // answered from the cache
        std::uint64_t coalesced = 0;  // joined a lookup already in flight
        std::uint64_t deadlines = 0;  // answered Timeout by the overall deadline
    };

    // nullptr and `error` set when c-ares cannot start or a server is not an IP.
    [[nodiscard]] static std::unique_ptr<CaresResolver>
    create(boost::asio::any_io_executor executor, const ResolverConfig& config, std::string& error,
           Clock clock = &std::chrono::steady_clock::now);

    ~CaresResolver() override;
    CaresResolver(const CaresResolver&) = delete;
    CaresResolver& operator=(const CaresResolver&) = delete;

    [[nodiscard]] boost::asio::awaitable<MxAnswer> mx(std::string domain) override;
    [[nodiscard]] boost::asio::awaitable<AddressAnswer> a(std::string name) override;
    [[nodiscard]] boost::asio::awaitable<AddressAnswer> aaaa(std::string name) override;
    [[nodiscard]] boost::asio::awaitable<TxtAnswer> txt(std::string name) override;
    [[nodiscard]] boost::asio::awaitable<NameAnswer> ptr(core::IpAddress address) override;

    [[nodiscard]] Stats stats() const { return stats_; }

private:
    using Waiter = std::function<void(const AnyAnswer&)>;

    CaresResolver(boost::asio::any_io_executor executor, const ResolverConfig& config, Clock clock);

    // Not coroutines (g++ 12 rules in helper notes): they return async_initiate.
    template <typename T>
    [[nodiscard]] boost::asio::awaitable<Answer<T>> ask(RecordType type, std::string name);
    void resolve(RecordType type, const std::string& name, Waiter waiter);
    void start_deadline(const std::shared_ptr<Lookup>& lookup);
    void finish(const std::shared_ptr<Lookup>& lookup, const AnyAnswer& answer, bool from_server);

    boost::asio::any_io_executor executor_;
    core::Duration timeout_;
    Clock clock_;
    Cache cache_;
    std::unique_ptr<AresChannel> channel_;
    std::unordered_map<std::string, std::shared_ptr<Lookup>> in_flight_; // "TYPE name"
    std::shared_ptr<int> alive_ = std::make_shared<int>(0); // weak_ptrs tell late handlers
    Stats stats_;
};

} // namespace ember::dns
