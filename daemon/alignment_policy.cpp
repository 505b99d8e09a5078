#include "daemon/alignment_policy.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>

namespace ember::daemon {
namespace {

std::optional<auth::AlignmentPolicy> listener_override(smtp::ListenerAlignment a) {
    switch (a) {
    case smtp::ListenerAlignment::Inherit:
        return std::nullopt;
    case smtp::ListenerAlignment::Enforce:
        return auth::AlignmentPolicy::Enforce;
    case smtp::ListenerAlignment::Warn:
        return auth::AlignmentPolicy::Warn;
    case smtp::ListenerAlignment::Off:
        return auth::AlignmentPolicy::Off;
    }
    return std::nullopt;
}

} // namespace

AlignmentGate::AlignmentGate(dns::Resolver& resolver, AlignmentSettings settings)
    : resolver_(resolver), psl_(auth::PublicSuffixList::system()), settings_(std::move(settings)) {}

boost::asio::awaitable<smtp::PolicyVerdict> AlignmentGate::check(smtp::ContentCheck check) {
    const auto policy = listener_override(check.listener.alignment).value_or(settings_.policy);
    if (policy == auth::AlignmentPolicy::Off ||
        check.listener.mode != smtp::ListenerMode::Submission)
        co_return smtp::PolicyVerdict{};
    const auto settings = settings_; // a reload during the lookups does not change this check
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    auth::AlignmentRequest request;
    request.from_domains = check.from_domains;
    for (const auto& from : check.from_domains) {
        if (!settings.signer)
            break;
        for (const auto* key : settings.signer->keys_for(from, now)) {
            if (std::find(request.dkim_domains.begin(), request.dkim_domains.end(),
                          key->config.domain) == request.dkim_domains.end())
                request.dkim_domains.push_back(key->config.domain);
        }
    }
    request.mail_from = check.envelope.mail_from;
    request.helo = settings.helo_name;
    request.egress_ips = settings.egress_ips;
    auto context = fmt::format("id={} client={}", check.queue_id, check.info.client_ip.to_string());
    const auto decision = co_await auth::alignment_gate(&resolver_, psl_, policy,
                                                        std::move(request), std::move(context));
    smtp::PolicyVerdict verdict;
    verdict.accept = decision.accept;
    verdict.code = decision.reply.code;
    verdict.enhanced = decision.reply.enhanced;
    verdict.text = decision.reply.text;
    co_return verdict;
}

} // namespace ember::daemon
