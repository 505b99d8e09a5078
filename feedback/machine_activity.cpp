#include "feedback/machine_activity.hpp"

#include <re2/re2.h>

#include <chrono>

namespace ember::feedback {
namespace {

std::shared_ptr<const re2::RE2> compile(std::string_view pattern, std::string& error) {
    re2::RE2::Options options;
    options.set_case_sensitive(false);
    options.set_log_errors(false);
    auto re =
        std::make_shared<const re2::RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
    if (!re->ok()) {
        error = re->error();
        return nullptr;
    }
    return re;
}

} // namespace

std::vector<std::string> default_machine_user_agents() {
    return {// Crawlers and bots; "bot" as a word end ("Googlebot/2.1", "bingbot").
            "bot([^a-z]|$)|crawler|spider|slurp",
            // Security gateways and link scanners that pre-click.
            "barracuda", "mimecast", "proofpoint", "safelinks", "trend ?micro", "symantec",
            "messagelabs", "sophos", "forti(net|guard)", "ironport", "zscaler", "forcepoint",
            "check ?point", "bitdefender", "kaspersky", "spamtitan", "hornetsecurity", "libraesva",
            // Office apps preflight links ("Microsoft Office Existence Discovery") and
            // Outlook fetches link previews ("Microsoft Office/16.0 ... Outlook"): machine
            // clicks. The same Outlook fetches the pixel when a person reads the
            // message, so for opens it is a person: click-only.
            "click:microsoft office",
            // Headless browsers and HTTP libraries: no person behind them.
            "headlesschrome", "phantomjs", "^curl/", "^wget/", "python-requests", "python-urllib",
            "aiohttp", "go-http-client", "^java/", "okhttp", "libwww-perl", "apache-httpclient",
            "node-fetch", "axios/", "scrapy", "httpx"};
}

std::string check_user_agent_pattern(std::string_view pattern) {
    std::string error;
    if (pattern.starts_with(kClickOnly))
        pattern.remove_prefix(kClickOnly.size());
    (void)compile(pattern, error);
    return error;
}

std::optional<MachineDetector> MachineDetector::create(const MachineConfig& config,
                                                       std::string& error) {
    MachineDetector d;
    d.config_ = config;
    for (const auto& p : config.user_agents) {
        const bool click_only = std::string_view(p).starts_with(kClickOnly);
        std::string why;
        auto re = compile(click_only ? std::string_view(p).substr(kClickOnly.size()) : p, why);
        if (!re) {
            error = "user agent pattern \"" + p + "\": " + why;
            return std::nullopt;
        }
        d.patterns_.push_back({click_only, std::move(re)});
    }
    return d;
}

MachineVerdict MachineDetector::classify(const TrackingHit& hit) const {
    if (hit.method == "HEAD")
        return {true, "head-request"};
    if (hit.user_agent == "Mozilla/5.0")
        return {true, "apple-mpp"};
    if (hit.ip && core::any_contains(config_.networks, *hit.ip))
        return {true, "proxy-network"};
    if (hit.user_agent.empty())
        return {true, "no-user-agent"};
    const re2::StringPiece ua(hit.user_agent.data(), hit.user_agent.size());
    for (const auto& [click_only, re] : patterns_)
        if ((hit.click || !click_only) && re2::RE2::PartialMatch(ua, *re))
            return {true, "user-agent"};
    const auto window =
        std::chrono::duration_cast<std::chrono::seconds>(config_.click_window).count();
    if (hit.click && hit.seconds_since_dispatch >= 0 && hit.seconds_since_dispatch < window)
        return {true, "fast-click"};
    return {};
}

} // namespace ember::feedback
