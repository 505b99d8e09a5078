#pragma once
// Always-on invariant checks. A broken invariant is a bug in ember, never a
// reaction to what the network sent: it logs where it broke and aborts.

namespace ember::core {
[[noreturn]] void assert_failed(const char* expr, const char* file, int line) noexcept;
}

#define EMBER_ASSERT(cond)                                                                         \
    ((cond) ? static_cast<void>(0) : ::ember::core::assert_failed(#cond, __FILE__, __LINE__))
