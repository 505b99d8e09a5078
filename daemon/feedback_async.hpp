#pragma once
// One adapter from "start an operation and call me back on some thread"
// (the Store's group committer, the webhook outbox, the suppression list)
// to a coroutine: co_await await_callback<T>(start) resumes on the
// awaiting coroutine's own executor with the value the callback was given.
// The callback may run on any thread, or inline inside `start`; a work
// guard keeps the executor alive meanwhile. `start` must call its callback
// exactly once (every Store write does, also when shutting down).
//
// Not a coroutine itself: g++ 12 miscompiles a coroutine that co_awaits
// async_initiate with capturing lambdas (see core/async.hpp offload()).

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <functional>
#include <memory>
#include <utility>

namespace ember::daemon {

// Start: callable as start(std::function<void(T)> done).
template <typename T, typename Start> boost::asio::awaitable<T> await_callback(Start start) {
    return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(T)>(
        [](auto handler, Start begin) {
            using Handler = decltype(handler);
            auto home = boost::asio::get_associated_executor(handler);
            // std::function needs a copyable callable: share the one-shot handler.
            auto shared = std::make_shared<Handler>(std::move(handler));
            auto work = std::make_shared<boost::asio::executor_work_guard<decltype(home)>>(home);
            std::function<void(T)> done = [shared, work](T value) {
                boost::asio::post(work->get_executor(),
                                  [shared, work, value = std::move(value)]() mutable {
                                      std::move (*shared)(std::move(value));
                                  });
            };
            begin(std::move(done));
        },
        boost::asio::use_awaitable, std::move(start));
}

} // namespace ember::daemon
