#include "core/assert.hpp"

#include "core/log.hpp"

#include <cstdlib>

namespace ember::core {

void assert_failed(const char* expr, const char* file, int line) noexcept {
    log::error("assert.failed", "expr={} at={}:{}", log::q(expr), file, line);
    std::abort();
}

} // namespace ember::core
