#pragma once
// Task plumbing for C++20 coroutines on Asio, used by every library that
// does I/O. Runs on whatever executor it is given; holds no state.
//
// - spawn(): co_spawn with a completion handler that never swallows an
//   exception: it logs the task name and the exception, and aborts when the
//   task is a top-level one (an acceptor, the scheduler), because a silently
//   dead top-level task is a daemon that looks alive and does nothing.
// - offload(): runs CPU-heavy work (password hashing, later DKIM signing) on a
//   thread pool and resumes the coroutine on its own executor, keeping the
//   event loop responsive.

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <exception>
#include <string>
#include <type_traits>
#include <utility>

namespace ember::core {

enum class TaskKind { TopLevel, Child };

void report_task_failure(const std::string& name, std::exception_ptr error, TaskKind kind);

template <typename Executor>
void spawn(Executor executor, boost::asio::awaitable<void> task, std::string name,
           TaskKind kind = TaskKind::Child) {
    boost::asio::co_spawn(executor, std::move(task),
                          [name = std::move(name), kind](std::exception_ptr error) {
                              if (error)
                                  report_task_failure(name, error, kind);
                          });
}

// Not a coroutine itself on purpose: g++ 12 relocates lambda temporaries
// that live across a co_await with memcpy, which corrupts captured
// std::strings. async_initiate hands the initiation to Asio's own frame.
template <typename Fn>
boost::asio::awaitable<std::invoke_result_t<Fn&>>
offload(boost::asio::thread_pool::executor_type pool, Fn fn) {
    using Result = std::invoke_result_t<Fn&>;
    return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(Result)>(
        [pool](auto handler, Fn work_fn) {
            auto home = boost::asio::get_associated_executor(handler);
            auto work = boost::asio::make_work_guard(home);
            boost::asio::post(pool, [handler = std::move(handler), work = std::move(work),
                                     work_fn = std::move(work_fn)]() mutable {
                Result result = work_fn();
                auto target = work.get_executor();
                boost::asio::post(
                    target, [handler = std::move(handler), result = std::move(result)]() mutable {
                        std::move(handler)(std::move(result));
                    });
            });
        },
        boost::asio::use_awaitable, std::move(fn));
}

} // namespace ember::core
