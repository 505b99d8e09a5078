#pragma once
// smtp::Authenticator for emberd: passwords checked against the users file
// on the worker thread pool (crypt(3) hashes cost milliseconds of CPU each),
// failures counted per client IP by auth::FailureLimiter on the I/O thread.
// update() swaps in a reloaded users file and limits; sessions already
// verifying keep the file they started with.

#include "auth/failure_limiter.hpp"
#include "auth/users.hpp"
#include "smtp/server_env.hpp"

#include <boost/asio/thread_pool.hpp>

#include <memory>

namespace ember::daemon {

class UsersAuthenticator final : public smtp::Authenticator {
public:
    UsersAuthenticator(boost::asio::thread_pool& pool, std::shared_ptr<const auth::UsersFile> users,
                       const smtp::Limits& limits);

    void update(std::shared_ptr<const auth::UsersFile> users, const smtp::Limits& limits);

    [[nodiscard]] bool has_users() const override;
    [[nodiscard]] boost::asio::awaitable<bool> verify(std::string user,
                                                      std::string password) override;
    [[nodiscard]] bool blocked(const core::IpAddress& ip) override;
    void record_failure(const core::IpAddress& ip) override;

private:
    boost::asio::thread_pool& pool_;
    std::shared_ptr<const auth::UsersFile> users_;
    auth::FailureLimiter limiter_;
};

} // namespace ember::daemon
