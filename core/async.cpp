#include "core/async.hpp"

#include "core/log.hpp"

#include <cstdlib>

namespace ember::core {

void report_task_failure(const std::string& name, std::exception_ptr error, TaskKind kind) {
    std::string what = "unknown exception";
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        what = e.what();
    } catch (...) {
    }
    log::error("task.failed", "task={} error={}", log::q(name), log::q(what));
    if (kind == TaskKind::TopLevel)
        std::abort();
}

} // namespace ember::core
