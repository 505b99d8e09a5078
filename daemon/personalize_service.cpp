#include "daemon/personalize_service.hpp"

#include "core/log.hpp"
#include "daemon/dispatch.hpp"
#include "daemon/personalize_stages.hpp"
#include "personalize/rfc2047.hpp"
#include "smtp/message_header.hpp"

#include <chrono>

namespace ember::daemon {
namespace {

namespace asio = boost::asio;
namespace log = core::log;
namespace pz = personalize;

// Compiled messages kept: the jobs of one message (one per destination
// domain) come close together, so a few cover the messages in flight.
constexpr std::size_t kCompiledCacheEntries = 16;
// send_at memories kept (message, recipient) before the oldest go.
constexpr std::size_t kHeldEntries = 100'000;

std::int64_t system_unix_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string trim(std::string_view s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos)
        return {};
    const auto e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
}

std::vector<std::string> split_tags(std::string_view value) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos <= value.size()) {
        const auto comma = value.find(',', pos);
        auto item =
            trim(value.substr(pos, comma == std::string_view::npos ? value.npos : comma - pos));
        if (!item.empty())
            out.push_back(std::move(item));
        if (comma == std::string_view::npos)
            break;
        pos = comma + 1;
    }
    return out;
}

bool same_hook(const pz::HookConfig& a, const pz::HookConfig& b) {
    return a.url == b.url && a.timeout == b.timeout && a.batch == b.batch &&
           a.concurrency == b.concurrency && a.on_error == b.on_error &&
           a.breaker.failure_threshold == b.breaker.failure_threshold &&
           a.breaker.cool_down == b.breaker.cool_down && a.max_response == b.max_response;
}

// What the hook is told about the message, read from the queued header.
void describe(CompiledEntry& entry, std::string_view queued) {
    const auto header = smtp::parse_header_block(queued);
    if (const auto* f = smtp::find_field(header, kCampaignHeader))
        entry.campaign = trim(smtp::unfold(f->value));
    if (const auto* f = smtp::find_field(header, kTagsHeader))
        entry.tags = split_tags(smtp::unfold(f->value));
    if (const auto* f = smtp::find_field(header, "From")) {
        const auto boxes = smtp::parse_mailbox_list(smtp::unfold(f->value));
        if (boxes && !boxes->empty())
            entry.from = boxes->front().address();
    }
    if (const auto* f = smtp::find_field(header, "Subject"))
        entry.subject = trim(pz::decode_words(pz::unfold(f->value)));
}

std::shared_ptr<const CompiledEntry> compile_entry(const std::string& queued) {
    auto entry = std::make_shared<CompiledEntry>();
    describe(*entry, queued);
    const std::vector<std::string_view> ours{kCampaignHeader, kTagsHeader, kSendWithinHeader,
                                             kAbHeader, kTrackHeader};
    const auto stripped = strip_fields(queued, ours);
    auto compiled = pz::CompiledMessage::compile(stripped ? *stripped : queued);
    if (auto* error = std::get_if<pz::MergeError>(&compiled)) {
        entry->error = std::move(*error);
        return entry;
    }
    auto message = std::make_shared<const pz::CompiledMessage>(std::move(std::get<0>(compiled)));
    entry->stripped = message->content().size() != queued.size();
    if (entry->stripped)
        entry->content = std::make_shared<const std::string>(message->content());
    entry->message = std::move(message);
    return entry;
}

} // namespace

PersonalizeService::PersonalizeService(asio::any_io_executor executor, FeedbackService* feedback,
                                       asio::thread_pool* pool, Clock clock)
    : executor_(std::move(executor)), feedback_(feedback), pool_(pool),
      clock_(clock ? std::move(clock) : Clock(system_unix_ms)) {}

PersonalizeService::~PersonalizeService() = default;

std::unique_ptr<PersonalizeService>
PersonalizeService::create(asio::any_io_executor executor, const Config& config,
                           queue::Store& store, std::string& error, FeedbackService* feedback,
                           asio::thread_pool* pool, Clock clock) {
    std::unique_ptr<PersonalizeService> s(
        new PersonalizeService(std::move(executor), feedback, pool, std::move(clock)));
    s->config_ = config.personalize;
    s->max_retry_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                           config.delivery.scheduler.retry.max_retry_time)
                           .count();
    s->contacts_ = pz::ContactStore::open(store, config.personalize.contacts, error);
    if (!s->contacts_)
        return nullptr;
    if (!s->make_hook(config.personalize.hook, error))
        return nullptr;
    return s;
}

bool PersonalizeService::make_hook(const pz::HookConfig& config, std::string& error) {
    if (config.url.empty()) {
        hook_.reset();
        return true;
    }
    auto hook = pz::HookClient::create(executor_, config, error);
    if (!hook)
        return false;
    hook_ = std::move(hook);
    log::info("personalize.hook", "url={} timeout={} batch={} concurrency={} on_error={}",
              log::q(config.url), core::format_duration(config.timeout), config.batch,
              config.concurrency, pz::hook_error_policy_name(config.on_error));
    return true;
}

void PersonalizeService::apply(const Config& config) {
    const auto& next = config.personalize;
    if (!same_hook(next.hook, config_.hook)) {
        std::string error;
        if (!make_hook(next.hook, error)) {
            log::error("personalize.reload_failed", "error={} note=\"old hook kept\"",
                       log::q(error));
            auto kept = next;
            kept.hook = config_.hook;
            config_ = kept;
            return;
        }
    }
    if (next.contacts.create_on_event != config_.contacts.create_on_event)
        log::warning("config.restart_needed",
                     "setting=personalize.contacts_create_on_event note=\"kept until restart\"");
    const bool create_on_event = config_.contacts.create_on_event;
    config_ = next;
    config_.contacts.create_on_event = create_on_event;
    max_retry_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                        config.delivery.scheduler.retry.max_retry_time)
                        .count();
}

void PersonalizeService::add_stages(Dispatcher& dispatcher) {
    for (const auto& stage : before_merge_)
        dispatcher.add_stage(stage);
    dispatcher.add_stage(std::make_shared<PersonalizeStage>(*this));
    for (const auto& stage : after_merge_)
        dispatcher.add_stage(stage);
}

double PersonalizeService::priority(std::string_view address) const {
    return contacts_->priority(address, clock_());
}

pz::SendTime PersonalizeService::send_time(std::string_view address,
                                           std::string_view sending_domain, core::Duration within,
                                           std::int64_t now_ms) const {
    const auto contact = contacts_->get(address);
    const pz::HourHistogram none{};
    const auto domain = contacts_->domain_histogram(sending_domain);
    return pz::choose_send_time(now_ms, within, contact ? contact->engagement.hours : none, domain,
                                config_.send_time);
}

std::shared_ptr<const CompiledEntry> PersonalizeService::compiled(const core::DeliveryJob& job) {
    for (auto it = cache_.begin(); it != cache_.end(); ++it) {
        if (it->message_id != job.message_id)
            continue;
        if (it->content == job.content || *it->content == *job.content) {
            cache_.splice(cache_.begin(), cache_, it);
            return cache_.front().entry;
        }
    }
    auto entry = compile_entry(*job.content);
    if (!entry->message)
        log::warning("personalize.compile_failed", "id={} error={} note=\"sent as queued\"",
                     job.queue_id, log::q(entry->error.text));
    cache_.push_front(Cached{job.message_id, job.content, entry});
    if (cache_.size() > kCompiledCacheEntries)
        cache_.pop_back();
    return entry;
}

bool PersonalizeService::held_before(std::uint64_t message_id, std::uint32_t index,
                                     std::int64_t now_ms) {
    const auto it = held_.find({message_id, index});
    if (it == held_.end())
        return false;
    // Came back at (or after) the time it was held for: this is its turn.
    if (now_ms + 1000 >= it->second) {
        held_.erase(it);
        return true;
    }
    return false;
}

void PersonalizeService::note_held(std::uint64_t message_id, std::uint32_t index,
                                   std::int64_t until_ms) {
    if (held_.size() >= kHeldEntries)
        held_.erase(held_.begin()); // the oldest message ids: ids grow with time
    held_[{message_id, index}] = until_ms;
}

} // namespace ember::daemon
