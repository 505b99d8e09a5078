#include "warmup/config.hpp"

#include <fmt/format.h>
#include <re2/re2.h>

#include <algorithm>

namespace ember::warmup {

std::optional<std::uint64_t> Schedule::cap(std::uint32_t day) const {
    const std::uint32_t d = std::max<std::uint32_t>(day, 1);
    if (d <= caps.size())
        return caps[d - 1];
    if (after == After::Steady)
        return steady_cap;
    return std::nullopt;
}

std::string_view action_name(Action a) {
    switch (a) {
    case Action::Backoff:
        return "backoff";
    case Action::Suspend:
        return "suspend";
    case Action::RetryLater:
        return "retry-later";
    }
    return "?";
}

bool Rule::matches(int reply_code, std::string_view enhanced_code,
                   std::string_view reply_text) const {
    if (code_re && !RE2::FullMatch(std::to_string(reply_code), *code_re))
        return false;
    if (enhanced_re &&
        !RE2::FullMatch(re2::StringPiece(enhanced_code.data(), enhanced_code.size()), *enhanced_re))
        return false;
    if (text_re &&
        !RE2::PartialMatch(re2::StringPiece(reply_text.data(), reply_text.size()), *text_re))
        return false;
    return true;
}

std::string Rule::describe() const {
    std::string out =
        fmt::format("line {}: {}", line, provider.empty() ? "any provider" : provider);
    if (!code.empty())
        out += fmt::format(" code /{}/", code);
    if (!enhanced.empty())
        out += fmt::format(" enhanced /{}/", enhanced);
    if (!text.empty())
        out += fmt::format(" text /{}/", text);
    out += fmt::format(" -> {}", action_name(action));
    if (action == Action::Backoff)
        out += fmt::format(" x{} for {}", factor, core::format_duration(duration));
    else if (action == Action::Suspend)
        out += fmt::format(" for {}", core::format_duration(duration));
    return out;
}

const Schedule* Config::schedule(std::string_view name) const {
    for (const auto& s : schedules) {
        if (s.name == name)
            return &s;
    }
    return nullptr;
}

const Provider* Config::provider(std::string_view name) const {
    for (const auto& p : providers) {
        if (p.name == name)
            return &p;
    }
    return nullptr;
}

const Provider& Config::catch_all() const {
    for (const auto& p : providers) {
        if (p.catch_all())
            return p;
    }
    // Every loaded or built Config has one (load_config adds "other").
    static const Provider fallback = [] {
        Provider p;
        p.name = "other";
        return p;
    }();
    return fallback;
}

const Sender* Config::sender(std::string_view domain, std::string_view source) const {
    const Sender* domain_wide = nullptr;
    for (const auto& s : senders) {
        if (s.domain != domain)
            continue;
        if (!source.empty() && s.source == source)
            return &s;
        if (s.source.empty())
            domain_wide = &s;
    }
    return domain_wide;
}

Config unthrottled_config() {
    Config c;
    c.file = "(none)";
    Provider other;
    other.name = "other";
    c.providers.push_back(std::move(other));
    return c;
}

} // namespace ember::warmup
