#include "core/outcome.hpp"

#include <fmt/core.h>

namespace ember::core {

std::string_view kind_name(OutcomeKind kind) {
    switch (kind) {
    case OutcomeKind::Delivered:
        return "delivered";
    case OutcomeKind::Deferred:
        return "deferred";
    case OutcomeKind::Failed:
        return "failed";
    case OutcomeKind::Suppressed:
        return "suppressed";
    case OutcomeKind::Throttled:
        return "throttled";
    }
    return "deferred";
}

std::string Outcome::summary() const {
    std::string reply = std::to_string(code);
    if (!enhanced.empty())
        reply += " " + enhanced;
    if (!text.empty())
        reply += " " + text;
    if (local || remote_host.empty())
        return fmt::format("{} ({})", reply, command.empty() ? "local" : command);
    return fmt::format("host {}[{}] said: {} (in reply to {} command)", remote_host, remote_ip,
                       reply, command);
}

} // namespace ember::core
