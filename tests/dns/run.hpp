#pragma once
// Runs one awaitable to completion on an io_context and returns its value.
// The loop stops as soon as the task is done (the resolver may still hold
// sockets); a task that never finishes fails the test after a generous
// bound instead of hanging CTest.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <optional>

namespace ember::dns::test {

template <typename T> T run(boost::asio::io_context& ctx, boost::asio::awaitable<T> task) {
    std::optional<T> result;
    std::exception_ptr error;
    boost::asio::co_spawn(ctx, std::move(task), [&](std::exception_ptr e, T value) {
        error = e;
        result = std::move(value);
    });
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!result && std::chrono::steady_clock::now() < give_up) {
        if (ctx.stopped())
            ctx.restart();
        ctx.run_one_for(std::chrono::milliseconds(100));
    }
    REQUIRE_MESSAGE(result.has_value(), "the task did not finish");
    if (error)
        std::rethrow_exception(error);
    return std::move(*result);
}

} // namespace ember::dns::test
