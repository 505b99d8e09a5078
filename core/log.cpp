#include "core/log.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>

namespace ember::core::log {
namespace {

std::atomic<Level> g_level{Level::Info};

bool journal_attached() {
    static const bool attached = std::getenv("JOURNAL_STREAM") != nullptr;
    return attached;
}

int syslog_priority(Level level) {
    switch (level) {
    case Level::Debug:
        return 7;
    case Level::Info:
        return 6;
    case Level::Warning:
        return 4;
    case Level::Error:
        return 3;
    }
    return 6;
}

std::string timestamp() {
    const auto now = std::chrono::system_clock::now();
    const auto secs = std::chrono::system_clock::to_time_t(now);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    const auto n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    return fmt::format("{}.{:03}Z", std::string_view(buf, n), millis);
}

bool needs_quotes(std::string_view value) {
    if (value.empty())
        return true;
    for (const char c : value) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f || c == '"' || c == '=' || c == '\\')
            return true;
    }
    return false;
}

} // namespace

bool parse_level(std::string_view text, Level& out) {
    if (text == "debug")
        out = Level::Debug;
    else if (text == "info")
        out = Level::Info;
    else if (text == "warning" || text == "warn")
        out = Level::Warning;
    else if (text == "error")
        out = Level::Error;
    else
        return false;
    return true;
}

std::string_view level_name(Level level) {
    switch (level) {
    case Level::Debug:
        return "debug";
    case Level::Info:
        return "info";
    case Level::Warning:
        return "warning";
    case Level::Error:
        return "error";
    }
    return "info";
}

void set_level(Level level) {
    g_level.store(level, std::memory_order_relaxed);
}

bool enabled(Level level) {
    return level >= g_level.load(std::memory_order_relaxed);
}

void write(Level level, std::string_view event, std::string_view fields) {
    std::string line;
    line.reserve(event.size() + fields.size() + 48);
    if (journal_attached())
        line += fmt::format("<{}>", syslog_priority(level));
    else
        line += timestamp() + ' ';
    line += level_name(level);
    line += ' ';
    line += event;
    if (!fields.empty()) {
        line += ' ';
        line += fields;
    }
    line += '\n';
    // One write(2): atomic for lines up to PIPE_BUF on pipes, and never
    // interleaved with another thread's line on a terminal or file.
    std::string_view rest = line;
    while (!rest.empty()) {
        const auto n = ::write(STDERR_FILENO, rest.data(), rest.size());
        if (n <= 0)
            return;
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
}

std::string q(std::string_view value) {
    if (!needs_quotes(value))
        return std::string(value);
    std::string out = "\"";
    for (const char c : value) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (u < 0x20 || u == 0x7f) {
            out += fmt::format("\\x{:02x}", u);
        } else {
            out += c;
        }
    }
    out += '"';
    return out;
}

} // namespace ember::core::log
