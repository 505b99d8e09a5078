#include "daemon/authenticator.hpp"

#include "core/async.hpp"

#include <chrono>

namespace ember::daemon {

UsersAuthenticator::UsersAuthenticator(boost::asio::thread_pool& pool,
                                       std::shared_ptr<const auth::UsersFile> users,
                                       const smtp::Limits& limits)
    : pool_(pool), users_(std::move(users)),
      limiter_(limits.auth_max_failures, limits.auth_failure_window) {}

void UsersAuthenticator::update(std::shared_ptr<const auth::UsersFile> users,
                                const smtp::Limits& limits) {
    users_ = std::move(users);
    limiter_.reconfigure(limits.auth_max_failures, limits.auth_failure_window);
}

bool UsersAuthenticator::has_users() const {
    return users_ != nullptr && users_->size() > 0;
}

boost::asio::awaitable<bool> UsersAuthenticator::verify(std::string user, std::string password) {
    auto users = users_;
    if (!users)
        co_return false;
    // A named task, not a temporary inside the co_await (see core::offload).
    auto task = [users, user = std::move(user), password = std::move(password)] {
        return users->verify(user, password);
    };
    const bool ok = co_await core::offload(pool_.get_executor(), std::move(task));
    co_return ok;
}

bool UsersAuthenticator::blocked(const core::IpAddress& ip) {
    return limiter_.blocked(ip, std::chrono::steady_clock::now());
}

void UsersAuthenticator::record_failure(const core::IpAddress& ip) {
    limiter_.record_failure(ip, std::chrono::steady_clock::now());
}

} // namespace ember::daemon
