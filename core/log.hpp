#pragma once
// One line per event: `LEVEL EVENT key=value ...`, written to stderr with a
// single write(2) so lines from different threads never interleave.
// Under systemd (JOURNAL_STREAM set) each line carries a `<N>` syslog
// priority prefix for journald instead of a timestamp.
// Thread-safe; never throws. Values that need it are quoted with log::q().

#include <fmt/core.h>

#include <string>
#include <string_view>

namespace ember::core::log {

enum class Level { Debug, Info, Warning, Error };

// "debug", "info", "warning" (or "warn"), "error"; false on anything else.
[[nodiscard]] bool parse_level(std::string_view text, Level& out);
[[nodiscard]] std::string_view level_name(Level level);

void set_level(Level level);
[[nodiscard]] bool enabled(Level level);

// Writes one already formatted event line (without trailing newline).
void write(Level level, std::string_view event, std::string_view fields);

// Quotes a value for a key=value field when it is empty or holds a space,
// a quote, '=' or a control character; control characters are escaped so a
// remote peer can never forge a log line.
[[nodiscard]] std::string q(std::string_view value);

template <typename... Args>
void emit(Level level, std::string_view event, fmt::format_string<Args...> fields, Args&&... args) {
    if (!enabled(level))
        return;
    write(level, event, fmt::format(fields, std::forward<Args>(args)...));
}

template <typename... Args>
void debug(std::string_view event, fmt::format_string<Args...> f, Args&&... a) {
    emit(Level::Debug, event, f, std::forward<Args>(a)...);
}
template <typename... Args>
void info(std::string_view event, fmt::format_string<Args...> f, Args&&... a) {
    emit(Level::Info, event, f, std::forward<Args>(a)...);
}
template <typename... Args>
void warning(std::string_view event, fmt::format_string<Args...> f, Args&&... a) {
    emit(Level::Warning, event, f, std::forward<Args>(a)...);
}
template <typename... Args>
void error(std::string_view event, fmt::format_string<Args...> f, Args&&... a) {
    emit(Level::Error, event, f, std::forward<Args>(a)...);
}

} // namespace ember::core::log
