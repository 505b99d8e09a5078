#include "smtp/connection_pool.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace ember::smtp {
namespace {

namespace asio = boost::asio;

// Destinations whose slots are all free are forgotten once the map is this
// large, so a long-running daemon does not keep one entry per domain ever seen.
constexpr std::size_t kSweepAbove = 1024;

} // namespace

// --- AsyncSlots ---

AsyncSlots::AsyncSlots(asio::any_io_executor executor, std::size_t limit)
    : executor_(std::move(executor)), limit_(limit == 0 ? 1 : limit) {}

bool AsyncSlots::try_acquire() {
    // Never ahead of a queued waiter: FIFO keeps a busy destination from
    // starving the others.
    if (in_use_ >= limit_ || !waiters_.empty())
        return false;
    ++in_use_;
    return true;
}

asio::awaitable<bool> AsyncSlots::acquire(bool front) {
    if (in_use_ < limit_ && (waiters_.empty() || front)) {
        ++in_use_;
        co_return true;
    }
    auto waiter = std::make_shared<Waiter>(executor_);
    waiter->timer.expires_at(asio::steady_timer::time_point::max());
    if (front)
        waiters_.push_front(waiter);
    else
        waiters_.push_back(waiter);
    while (!waiter->granted && !waiter->nudged) {
        auto [ec] = co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
        (void)ec; // woken by release() or nudge(), which set the flags first
    }
    co_return waiter->granted;
}

void AsyncSlots::release() {
    if (waiters_.empty()) {
        if (in_use_ > 0)
            --in_use_;
        return;
    }
    // The slot passes straight to the oldest waiter; in_use_ stays.
    auto waiter = std::move(waiters_.front());
    waiters_.pop_front();
    waiter->granted = true;
    wake(std::move(waiter));
}

void AsyncSlots::nudge() {
    if (waiters_.empty())
        return;
    auto waiter = std::move(waiters_.front());
    waiters_.pop_front();
    waiter->nudged = true;
    wake(std::move(waiter));
}

// Moving the expiry into the past (rather than cancel()) also wakes a
// waiter whose wait has not been started yet.
void AsyncSlots::wake(std::shared_ptr<Waiter> waiter) {
    waiter->timer.expires_at(asio::steady_timer::time_point::min());
}

// --- Lease ---

Lease::Lease(std::shared_ptr<AsyncSlots> global, std::shared_ptr<AsyncSlots> destination)
    : global_(std::move(global)), destination_(std::move(destination)) {}

Lease& Lease::operator=(Lease&& other) noexcept {
    if (this != &other) {
        release();
        global_ = std::move(other.global_);
        destination_ = std::move(other.destination_);
    }
    return *this;
}

Lease::~Lease() {
    release();
}

void Lease::release() {
    if (destination_)
        destination_->release();
    if (global_)
        global_->release();
    destination_.reset();
    global_.reset();
}

// --- ConnectionPool ---

ConnectionPool::ConnectionPool(asio::any_io_executor executor, PoolLimits limits)
    : executor_(executor), limits_(limits),
      global_(std::make_shared<AsyncSlots>(executor, limits.max_connections)),
      state_(std::make_shared<State>()) {}

ConnectionPool::~ConnectionPool() {
    close_idle();
}

std::shared_ptr<AsyncSlots> ConnectionPool::slots_for(const std::string& key) {
    if (const auto it = per_destination_.find(key); it != per_destination_.end())
        return it->second;
    if (per_destination_.size() > kSweepAbove) {
        std::erase_if(per_destination_, [](const auto& entry) {
            return entry.second.use_count() == 1 && entry.second->idle();
        });
    }
    auto slots = std::make_shared<AsyncSlots>(executor_, limits_.max_connections_per_destination);
    per_destination_.emplace(key, slots);
    return slots;
}

asio::awaitable<Checkout> ConnectionPool::checkout(std::string key) {
    auto destination = slots_for(key);
    bool front = false;
    while (true) {
        if (auto idle = take(key))
            co_return Checkout{std::move(idle), Lease()};
        const bool granted = co_await destination->acquire(front);
        if (granted)
            break;
        front = true; // nudged: a connection to key went idle, look again
    }
    if (!global_->try_acquire()) {
        (void)evict_oldest_idle();
        const bool granted = co_await global_->acquire();
        (void)granted; // the global slots are never nudged
    }
    co_return Checkout{std::nullopt, Lease(global_, std::move(destination))};
}

bool ConnectionPool::worth_keeping(const std::string& key) {
    if (global_->waiting() == 0)
        return true;
    const auto it = per_destination_.find(key);
    return it != per_destination_.end() && it->second->waiting() > 0;
}

std::optional<PooledConnection> ConnectionPool::take(const std::string& key) {
    const auto it = state_->idle.find(key);
    if (it == state_->idle.end() || it->second.empty())
        return std::nullopt;
    Idle idle = std::move(it->second.back());
    it->second.pop_back();
    if (it->second.empty())
        state_->idle.erase(it);
    idle.timer->cancel();
    return std::move(idle.connection);
}

void ConnectionPool::give_back(const std::string& key, PooledConnection connection) {
    Idle idle;
    idle.id = state_->next_id++;
    idle.connection = std::move(connection);
    idle.timer = std::make_unique<asio::steady_timer>(executor_);
    idle.timer->expires_after(limits_.idle_timeout);
    idle.timer->async_wait([this, weak = std::weak_ptr<State>(state_), key,
                            id = idle.id](boost::system::error_code ec) {
        if (!ec && weak.lock())
            expire(key, id);
    });
    state_->idle[key].push_back(std::move(idle));
    if (const auto it = per_destination_.find(key); it != per_destination_.end())
        it->second->nudge();
}

void ConnectionPool::expire(const std::string& key, std::uint64_t id) {
    const auto it = state_->idle.find(key);
    if (it == state_->idle.end())
        return;
    it->second.remove_if([id](const Idle& idle) { return idle.id == id; });
    if (it->second.empty())
        state_->idle.erase(it);
}

bool ConnectionPool::evict_oldest_idle() {
    auto oldest = state_->idle.end();
    for (auto it = state_->idle.begin(); it != state_->idle.end(); ++it) {
        if (!it->second.empty() &&
            (oldest == state_->idle.end() || it->second.front().id < oldest->second.front().id))
            oldest = it;
    }
    if (oldest == state_->idle.end())
        return false;
    oldest->second.pop_front();
    if (oldest->second.empty())
        state_->idle.erase(oldest);
    return true;
}

void ConnectionPool::close_idle() {
    state_->idle.clear();
}

std::size_t ConnectionPool::idle_count() const {
    std::size_t n = 0;
    for (const auto& [key, list] : state_->idle)
        n += list.size();
    return n;
}

std::size_t ConnectionPool::in_use() const {
    return global_->in_use();
}

} // namespace ember::smtp
