#include "daemon/tracking_service.hpp"

#include "core/ascii.hpp"
#include "core/log.hpp"
#include "daemon/feedback_service.hpp"
#include "daemon/personalize_service.hpp"
#include "personalize/tracking.hpp"
#include "queue/record.hpp"
#include "smtp/message_header.hpp"

#include <fmt/format.h>

#include <chrono>
#include <exception>
#include <sstream>
#include <utility>
#include <vector>

namespace ember::daemon {
namespace {

namespace asio = boost::asio;
namespace log = core::log;
using feedback::TrackingKind;

constexpr std::int64_t kPruneEveryMs = 3'600'000;
constexpr std::size_t kPruneBatch = 10'000;
constexpr std::size_t kMaxUserAgent = 512; // what an event keeps of it

std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return std::string(s);
}

// "TEST-ID; cell=NAME" (personalize_service.hpp kAbHeader).
std::pair<std::string, std::string> parse_ab(std::string_view value) {
    const auto semi = value.find(';');
    auto test = trim(value.substr(0, semi));
    std::string cell;
    if (semi != std::string_view::npos) {
        auto rest = value.substr(semi + 1);
        while (!rest.empty()) {
            const auto next = rest.find(';');
            const auto param = trim(rest.substr(0, next));
            if (core::ascii_lower(param.substr(0, 5)) == "cell=")
                cell = trim(std::string_view(param).substr(5));
            rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
        }
    }
    return {std::move(test), std::move(cell)};
}

std::optional<std::string> field(const smtp::HeaderBlock& header, std::string_view name) {
    if (const auto* f = smtp::find_field(header, name))
        return trim(smtp::unfold(f->value));
    return std::nullopt;
}

bool domain_listed(const std::vector<std::string>& domains, std::string_view domain) {
    for (const auto& d : domains)
        if (d == "*" || d == domain)
            return true;
    return false;
}

class TrackingStage final : public DispatchStage {
public:
    explicit TrackingStage(TrackingService& service) : service_(service) {}
    asio::awaitable<void> apply(std::shared_ptr<DispatchContext> context) override {
        service_.track(*context);
        co_return;
    }

private:
    TrackingService& service_;
};

HttpResponse not_found() {
    return HttpResponse{404,
                        "text/plain; charset=utf-8",
                        "unknown or expired link\n",
                        {{"Cache-Control", "no-store"}, {"X-Robots-Tag", "noindex"}}};
}

// The client: the peer, or behind a loopback proxy the address it added.
std::optional<core::IpAddress> client_ip(const HttpRequest& request) {
    const auto peer = core::Endpoint::parse(request.remote);
    auto ip = peer ? core::IpAddress::parse(peer->host) : std::nullopt;
    const auto forwarded = request.header("x-forwarded-for");
    const bool loopback = ip && (ip->to_string().starts_with("127.") || ip->to_string() == "::1");
    if (loopback && forwarded) {
        const auto comma = forwarded->rfind(',');
        const auto last =
            trim(comma == std::string_view::npos ? *forwarded : forwarded->substr(comma + 1));
        if (auto proxied = core::IpAddress::parse(last))
            return proxied;
    }
    return ip;
}

std::string mark_key(const feedback::TrackingId& id) {
    auto key = queue::format_queue_id(id.queue_id) + ":" + core::ascii_lower(id.recipient);
    if (key.size() > 511)
        key.resize(511); // LMDB's key limit; an address that long is no one's
    return key;
}

} // namespace

TrackingChoice tracking_choice(const TrackingConfig& config, std::string_view sending_domain,
                               const std::optional<std::string>& track_field) {
    TrackingChoice choice;
    if (!track_field) {
        if (domain_listed(config.domains, sending_domain))
            choice = {true, true};
    } else {
        std::stringstream words(core::ascii_lower(*track_field));
        std::string word;
        while (std::getline(words, word, ',')) {
            word = trim(word);
            choice.opens = choice.opens || word == "opens";
            choice.clicks = choice.clicks || word == "clicks";
        }
    }
    choice.opens = choice.opens && config.opens;
    choice.clicks = choice.clicks && config.clicks;
    return choice;
}

std::string_view transparent_gif() {
    static constexpr unsigned char kGif[] = {
        0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
        0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};
    return {reinterpret_cast<const char*>(kGif), sizeof kGif};
}

TrackingService::TrackingService(asio::any_io_executor executor, queue::Store& store,
                                 FeedbackService& feedback, Clock clock)
    : executor_(std::move(executor)), store_(store), feedback_(feedback), clock_(std::move(clock)) {
}

std::unique_ptr<TrackingService> TrackingService::create(asio::any_io_executor executor,
                                                         const Config& config, queue::Store& store,
                                                         FeedbackService& feedback,
                                                         std::string& error, Clock clock) {
    if (!clock)
        clock = [] {
            return std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                .count();
        };
    std::unique_ptr<TrackingService> s(
        new TrackingService(std::move(executor), store, feedback, std::move(clock)));
    const auto table = store.open_table(kTrackingTable, error);
    if (!table)
        return nullptr;
    s->table_ = *table;
    s->detector_ = feedback::MachineDetector::create(config.tracking.machine, error);
    if (!s->detector_)
        return nullptr;
    s->config_ = config.tracking;
    s->stage_ = std::make_shared<TrackingStage>(*s);
    return s;
}

void TrackingService::apply(const Config& config) {
    std::string error;
    auto detector = feedback::MachineDetector::create(config.tracking.machine, error);
    if (!detector) { // the config check compiled these patterns already
        log::error("tracking.reload_failed", "error={}", log::q(error));
        return;
    }
    detector_ = std::move(detector);
    config_ = config.tracking;
}

std::shared_ptr<DispatchStage> TrackingService::stage() {
    return stage_;
}

void TrackingService::track(DispatchContext& ctx) {
    if (!ctx.job.content || ctx.job.envelope.mail_from.empty())
        return; // a DSN quotes mail; it is no one's campaign
    const auto header = smtp::parse_header_block(*ctx.job.content);
    const auto choice = tracking_choice(config_, ctx.sending_domain, field(header, kTrackHeader));
    if (!choice.any() || !personalize::has_html_part(*ctx.job.content))
        return;
    const auto policy = feedback_.policy();
    if (!policy->signer || policy->public_url.empty()) {
        log::warning("tracking.unavailable",
                     "id={} why=\"needs [feedback] token_keys and [http] "
                     "public_url\"",
                     ctx.job.queue_id);
        return;
    }
    feedback::TrackingId base;
    base.queue_id = ctx.job.message_id;
    base.dispatched_at = ctx.now_ms / 1000;
    base.sending_domain = ctx.sending_domain;
    base.campaign = field(header, kCampaignHeader).value_or("");
    const auto ab = parse_ab(field(header, kAbHeader).value_or(""));
    base.ab_test = ab.first;
    personalize::TrackingOptions options;
    options.public_url = policy->public_url;
    options.opens = choice.opens;
    options.clicks = choice.clicks;
    std::size_t tracked = 0;
    for (auto& r : ctx.recipients) {
        if (r.decided)
            continue;
        const auto content = r.render_key.empty() ? ctx.job.content : r.content;
        if (!content)
            continue;
        try {
            auto id = base;
            id.recipient = r.recipient.spec.address;
            id.variant = !ab.second.empty() ? ab.second : r.variant;
            const personalize::ClickToken click = [&](std::string_view url) {
                auto link = id;
                link.kind = TrackingKind::Click;
                link.url = url;
                return policy->signer->tracking_token(link);
            };
            const auto open = choice.opens ? policy->signer->tracking_token(id) : std::string();
            auto result = personalize::add_tracking(*content, options, click, open);
            if (!result.changed)
                continue;
            r.content = std::make_shared<const std::string>(std::move(result.content));
            r.render_key += "\x1ftrk:" + std::to_string(r.recipient.index);
            ++tracked;
        } catch (const std::exception& e) { // bad_alloc: send it untracked
            log::error("tracking.rewrite_failed", "id={} rcpt={} error={}", ctx.job.queue_id,
                       log::q(r.recipient.spec.address), log::q(e.what()));
        }
    }
    if (tracked > 0)
        log::debug("tracking.added", "id={} recipients={} opens={} clicks={}", ctx.job.queue_id,
                   tracked, choice.opens, choice.clicks);
}

HttpResponse TrackingService::handle(const HttpRequest& request, TrackingKind kind) {
    const auto prefix = kind == TrackingKind::Click ? kClickPrefix : kOpenPrefix;
    const auto policy = feedback_.policy();
    if (!policy->signer)
        return not_found();
    const auto check =
        policy->signer->verify_tracking_token(std::string_view(request.path).substr(prefix.size()));
    if (!check.ok() || check.id.kind != kind) {
        log::info("tracking.refused", "client={} path={} token={}", request.remote,
                  kind == TrackingKind::Click ? "c" : "o",
                  check.ok() ? "wrong-kind" : feedback::token_status_name(check.status));
        return not_found();
    }
    const auto& id = check.id;
    const auto now = clock_();
    const auto ua = request.header("user-agent").value_or("");
    const auto ip = client_ip(request);
    const auto verdict = detector_->classify(
        {kind == TrackingKind::Click, request.method, ua, ip, now / 1000 - id.dispatched_at});
    const bool unique = !verdict.machine && first_human(id, now);
    feedback::Event e;
    e.type =
        kind == TrackingKind::Click ? feedback::EventType::Clicked : feedback::EventType::Opened;
    e.time_ms = now;
    e.queue_id = queue::format_queue_id(id.queue_id);
    e.recipient = id.recipient;
    e.sending_domain = id.sending_domain;
    e.destination = core::ascii_lower(core::address_domain(id.recipient));
    e.campaign = id.campaign;
    e.ab_test = id.ab_test;
    e.variant = id.variant;
    e.source = "http";
    if (kind == TrackingKind::Click)
        e.extra["url"] = id.url;
    e.extra["user_agent"] = feedback::sanitize_utf8(ua.substr(0, kMaxUserAgent));
    if (ip)
        e.extra["ip"] = ip->to_string();
    e.extra["machine"] = verdict.machine;
    if (verdict.machine)
        e.extra["machine_reason"] = verdict.reason;
    e.extra["unique"] = unique;
    feedback_.emit(std::move(e));
    const std::vector<std::pair<std::string, std::string>> no_store{
        {"Cache-Control", "no-store, private"}, {"X-Robots-Tag", "noindex"}};
    if (kind == TrackingKind::Open)
        return HttpResponse{200, "image/gif", std::string(transparent_gif()), no_store};
    auto fields = no_store;
    fields.emplace_back("Location", id.url);
    return HttpResponse{302, "text/plain; charset=utf-8", "", std::move(fields)};
}

bool TrackingService::first_human(const feedback::TrackingId& id, std::int64_t now_ms) {
    const auto key = mark_key(id);
    std::int64_t open_ms = 0;
    std::int64_t click_ms = 0;
    std::optional<std::string> stored;
    {
        const std::lock_guard lock(pending_->mutex);
        if (const auto it = pending_->marks.find(key); it != pending_->marks.end())
            stored = it->second;
    }
    if (!stored)
        stored = store_.kv_get(table_, key);
    if (stored) {
        std::istringstream in(*stored);
        int version = 0;
        in >> version >> open_ms >> click_ms;
    }
    auto& mark = id.kind == TrackingKind::Click ? click_ms : open_ms;
    if (mark != 0)
        return false;
    mark = now_ms;
    auto value = fmt::format("1 {} {}", open_ms, click_ms);
    {
        const std::lock_guard lock(pending_->mutex);
        pending_->marks[key] = value;
    }
    std::vector<queue::Store::KvWrite> writes;
    writes.push_back({table_, key, value});
    store_.kv_write(std::move(writes), [pending = pending_, key, value](queue::CommitResult r) {
        if (r.status != queue::CommitStatus::Ok)
            log::error("tracking.mark_failed", "key={} error={}", log::q(key), log::q(r.detail));
        const std::lock_guard lock(pending->mutex);
        const auto it = pending->marks.find(key);
        if (it != pending->marks.end() && it->second == value)
            pending->marks.erase(it);
    });
    prune(now_ms);
    return true;
}

// Keys start with the queue id, whose text sorts by arrival time: the old
// marks are a prefix of the table.
void TrackingService::prune(std::int64_t now_ms) {
    if (now_ms - pruned_ms_ < kPruneEveryMs)
        return;
    pruned_ms_ = now_ms;
    const auto cutoff_ms =
        now_ms - std::chrono::duration_cast<std::chrono::milliseconds>(config_.retention).count();
    std::vector<queue::Store::KvWrite> erase;
    store_.kv_scan(table_, "", "", [&](std::string_view key, std::string_view) {
        const auto id = queue::parse_queue_id(key.substr(0, key.find(':')));
        if (id && static_cast<std::int64_t>(*id >> 16) >= cutoff_ms)
            return false;
        erase.push_back({table_, std::string(key), std::nullopt});
        return erase.size() < kPruneBatch;
    });
    if (erase.empty())
        return;
    log::info("tracking.pruned", "marks={}", erase.size());
    store_.kv_write(std::move(erase), [](queue::CommitResult r) {
        if (r.status != queue::CommitStatus::Ok)
            log::error("tracking.prune_failed", "error={}", log::q(r.detail));
    });
}

void TrackingService::add_routes(Router& router) {
    router.add("GET", std::string(kClickPrefix) + "*",
               [this](const HttpRequest& request) { return handle(request, TrackingKind::Click); });
    router.add("GET", std::string(kOpenPrefix) + "*",
               [this](const HttpRequest& request) { return handle(request, TrackingKind::Open); });
}

} // namespace ember::daemon
