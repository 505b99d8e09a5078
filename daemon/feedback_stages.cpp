#include "daemon/feedback_stages.hpp"

#include "core/ascii.hpp"
#include "core/log.hpp"
#include "daemon/personalize_service.hpp"
#include "daemon/warmup_service.hpp"
#include "feedback/classify.hpp"
#include "queue/record.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace ember::daemon {
namespace {

namespace asio = boost::asio;
namespace log = core::log;
using feedback::Event;
using feedback::EventType;

std::string trim(std::string_view s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos)
        return {};
    const auto e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
}

// At most `max` octets, cut at a UTF-8 character boundary.
std::string capped(std::string text, std::size_t max) {
    if (text.size() <= max)
        return text;
    auto cut = max;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
        --cut;
    text.resize(cut);
    return text;
}

std::vector<std::string> split_tags(std::string_view value) {
    std::vector<std::string> out;
    for (std::size_t pos = 0; pos <= value.size() && out.size() < kMaxTags;) {
        auto comma = value.find(',', pos);
        if (comma == std::string_view::npos)
            comma = value.size();
        auto tag = trim(value.substr(pos, comma - pos));
        if (!tag.empty())
            out.push_back(capped(std::move(tag), kMaxTagOctets));
        pos = comma + 1;
    }
    return out;
}

// "TESTID; cell=NAME" (parameters after ';', names case-insensitive, a
// value may be quoted as in RFC 2045's parameters).
void parse_ab(std::string_view value, CampaignFields& out) {
    const auto semi = value.find(';');
    out.ab_test = capped(trim(value.substr(0, semi)), kMaxVariantOctets);
    for (auto pos = semi; pos != std::string_view::npos;) {
        const auto next = value.find(';', pos + 1);
        const auto param =
            value.substr(pos + 1, next == std::string_view::npos ? value.npos : next - pos - 1);
        pos = next;
        const auto eq = param.find('=');
        if (eq == std::string_view::npos || core::ascii_lower(trim(param.substr(0, eq))) != "cell")
            continue;
        auto cell = trim(param.substr(eq + 1));
        if (cell.size() >= 2 && cell.front() == '"' && cell.back() == '"')
            cell = trim(std::string_view(cell).substr(1, cell.size() - 2));
        out.variant = capped(std::move(cell), kMaxVariantOctets);
    }
}

// An event about one recipient of a job: the fields every type shares.
Event job_event(EventType type, const core::DeliveryJob& job, const core::JobRecipient& r,
                const std::string& sending_domain, const CampaignFields& campaign) {
    Event e;
    e.type = type;
    e.queue_id = job.queue_id;
    e.recipient = r.spec.address;
    e.sending_domain = sending_domain;
    e.destination = job.domain;
    set_campaign(e, campaign);
    return e;
}

CampaignFields job_campaign(const core::DeliveryJob& job) {
    return job.content ? campaign_fields(*job.content) : CampaignFields{};
}

void add_reply(Event& e, const core::Outcome& o) {
    e.code = o.code;
    e.status = o.enhanced;
    e.remote_host = o.remote_host;
    e.remote_ip = o.remote_ip;
    e.text = o.text;
    if (!o.command.empty())
        e.extra["command"] = o.command;
    // Known once a session reached the host; a local outcome before any
    // (DNS, connect) says nothing about TLS.
    if (!o.tls.empty() || !o.remote_ip.empty())
        e.tls = !o.tls.empty();
    if (!o.tls.empty())
        e.extra["tls_protocol"] = o.tls;
}

void add_classification(Event& e, const feedback::Classification& c) {
    e.reason = c.reason;
    e.hard = c.hard;
    if (!c.status.empty())
        e.status = c.status;
}

std::size_t undecided(const DispatchContext& ctx) {
    return static_cast<std::size_t>(
        std::count_if(ctx.recipients.begin(), ctx.recipients.end(),
                      [](const DispatchRecipient& r) { return !r.decided; }));
}

// RFC 5322 2.2.3: fold between the URIs so the field stays near 78 columns.
std::string fold_uris(std::string_view value) {
    std::string out;
    for (std::size_t pos = 0;;) {
        const auto comma = value.find(", <", pos);
        if (comma == std::string_view::npos) {
            out.append(value.substr(pos));
            return out;
        }
        out.append(value.substr(pos, comma - pos));
        out.append(",\r\n ");
        pos = comma + 2;
    }
}

} // namespace

// ---- pure helpers -----------------------------------------------------------

CampaignFields campaign_fields(const smtp::HeaderBlock& header) {
    CampaignFields out;
    if (const auto* f = smtp::find_field(header, kCampaignHeader))
        out.campaign = capped(trim(smtp::unfold(f->value)), kMaxCampaignOctets);
    if (const auto* f = smtp::find_field(header, kTagsHeader))
        out.tags = split_tags(smtp::unfold(f->value));
    if (const auto* f = smtp::find_field(header, kAbHeader))
        parse_ab(smtp::unfold(f->value), out);
    return out;
}

CampaignFields campaign_fields(std::string_view content) {
    return campaign_fields(smtp::parse_header_block(content));
}

void set_campaign(feedback::Event& event, const CampaignFields& fields) {
    event.campaign = fields.campaign;
    event.tags = fields.tags;
    event.ab_test = fields.ab_test;
    event.variant = fields.variant;
}

bool wants_list_unsubscribe(const FeedbackPolicy& policy, std::string_view sending_domain,
                            const smtp::HeaderBlock& header) {
    if (sending_domain.empty() || smtp::find_field(header, "List-Unsubscribe") != nullptr)
        return false;
    if (policy.bulk_domain(sending_domain))
        return true;
    // Precedence (RFC 2076 3.9) is how list and bulk software has long
    // marked such mail; an application can mark one message without a
    // config change.
    if (const auto* f = smtp::find_field(header, "Precedence")) {
        const auto value = core::ascii_lower(trim(smtp::unfold(f->value)));
        return value == "bulk" || value == "list";
    }
    return false;
}

std::string list_unsubscribe_fields(const FeedbackPolicy& policy, std::string_view address,
                                    std::string_view sending_domain) {
    if (!policy.signer)
        return {};
    const auto lu = feedback::list_unsubscribe_for(
        *policy.signer, address, sending_domain, policy.public_url,
        policy.config.unsubscribe_mailto_domain, policy.config.inbound.unsubscribe_local_part);
    if (lu.list_unsubscribe.empty())
        return {};
    std::string out = "List-Unsubscribe: " + fold_uris(lu.list_unsubscribe) + "\r\n";
    if (!lu.list_unsubscribe_post.empty())
        out += "List-Unsubscribe-Post: " + lu.list_unsubscribe_post + "\r\n";
    return out;
}

std::string ember_id_value(const FeedbackPolicy& policy, std::uint64_t message_id,
                           std::uint32_t index, std::string_view address, bool per_recipient) {
    if (!per_recipient || !policy.signer)
        return queue::format_queue_id(message_id);
    return policy.signer->ember_id(message_id, index, address);
}

core::Outcome suppressed_outcome(const feedback::SuppressionEntry& entry) {
    core::Outcome o;
    o.kind = core::OutcomeKind::Suppressed;
    o.scope = core::OutcomeScope::Recipient;
    // RFC 3463 X.7.1: refused by policy; never sent, so no DSN either.
    o.code = 550;
    o.enhanced = "5.7.1";
    o.text = describe_suppression(entry);
    o.command = "suppression";
    o.local = true;
    return o;
}

// ---- stages -----------------------------------------------------------------

asio::awaitable<void> SuppressionStage::apply(std::shared_ptr<DispatchContext> ctx) {
    auto& list = service_.suppressions();
    std::optional<CampaignFields> campaign; // read once, at the first hit
    for (auto& r : ctx->recipients) {
        if (r.decided)
            continue;
        const auto entry = list.check(r.recipient.spec.address, ctx->sending_domain);
        if (!entry)
            continue;
        r.decided = suppressed_outcome(*entry);
        log::info("feedback.suppressed_at_dispatch", "id={} rcpt={} reason={} scope={}",
                  ctx->job.queue_id, log::q(r.recipient.spec.address),
                  feedback::suppression_reason_name(entry->reason),
                  entry->scope.empty() ? "global" : entry->scope);
        if (!campaign)
            campaign = job_campaign(ctx->job);
        auto e =
            job_event(EventType::Suppressed, ctx->job, r.recipient, ctx->sending_domain, *campaign);
        e.text = r.decided->text;
        e.source = "queue";
        e.extra["suppression_reason"] = feedback::suppression_reason_name(entry->reason);
        e.extra["scope"] = entry->scope.empty() ? "global" : entry->scope;
        e.extra["suppressed_since"] = entry->time_ms;
        service_.emit(std::move(e));
    }
    co_return;
}

asio::awaitable<void> VerpStage::apply(std::shared_ptr<DispatchContext> ctx) {
    const auto p = service_.policy();
    // Never give a bounce (null sender, RFC 5321 4.5.5) a return path.
    if (!p->config.verp || !p->signer || ctx->job.envelope.mail_from.empty())
        co_return;
    const auto bounce_domain = p->bounce_domain_for(ctx->sending_domain);
    if (bounce_domain.empty())
        co_return;
    for (auto& r : ctx->recipients) {
        if (r.decided)
            continue;
        const auto id = feedback::make_verp_id(ctx->job.message_id, r.recipient.index,
                                               ctx->sending_domain, r.recipient.spec.address);
        r.mail_from = p->signer->verp_address(p->config.inbound.verp_local_part, id, bounce_domain);
    }
    co_return;
}

asio::awaitable<void> UnsubscribeStage::apply(std::shared_ptr<DispatchContext> ctx) {
    if (!ctx->job.content)
        co_return;
    const auto p = service_.policy();
    const auto header = smtp::parse_header_block(*ctx->job.content);
    const bool bulk = wants_list_unsubscribe(*p, ctx->sending_domain, header);
    const bool alone = undecided(*ctx) == 1;
    for (auto& r : ctx->recipients) {
        if (r.decided)
            continue;
        const auto& address = r.recipient.spec.address;
        std::string fields;
        if (bulk)
            fields = list_unsubscribe_fields(*p, address, ctx->sending_domain);
        // Per recipient only where the recipient has its own transaction anyway.
        const bool own = alone || !fields.empty() || r.mail_from != ctx->job.envelope.mail_from;
        if (p->signer) // without keys the message stays as submitted (see the header)
            fields += fmt::format(
                "{}: {}\r\n", feedback::kEmberIdHeader,
                ember_id_value(*p, ctx->job.message_id, r.recipient.index, address, own));
        r.prepend += fields;
    }
    co_return;
}

// ---- results ----------------------------------------------------------------

asio::awaitable<std::vector<core::Outcome>> OutcomeObserver::deliver(core::DeliveryJob job) {
    const core::DeliveryJob kept = job; // the content is shared, not copied
    auto outcomes = co_await inner_.deliver(std::move(job));
    record(kept, outcomes);
    co_return outcomes;
}

void OutcomeObserver::record(const core::DeliveryJob& job,
                             const std::vector<core::Outcome>& outcomes) {
    const auto p = service_.policy();
    const auto sending = sending_domain_of(job);
    std::optional<bool> bulk; // parsed once, when a delivery needs it
    // Once per job, not per recipient: the content is shared.
    const auto campaign = job_campaign(job);
    for (std::size_t i = 0; i < outcomes.size() && i < job.recipients.size(); ++i) {
        const auto& o = outcomes[i];
        const auto& r = job.recipients[i];
        if (o.kind == core::OutcomeKind::Suppressed)
            continue; // the stage that settled it reported it
        if (o.kind == core::OutcomeKind::Throttled) {
            if (!service_.throttle_changed(job.message_id, r.index, o.text))
                continue;
            auto e = job_event(EventType::Throttled, job, r, sending, campaign);
            e.text = o.text;
            e.source = "queue";
            e.extra["until"] = o.not_before_ms;
            service_.emit(std::move(e));
            continue;
        }
        service_.forget_throttle(job.message_id, r.index);
        const auto& address = r.spec.address;
        auto e = job_event(EventType::Delivered, job, r, sending, campaign);
        add_reply(e, o);
        e.source = "smtp";
        e.extra["attempt"] = job.attempt;
        if (o.kind == core::OutcomeKind::Delivered) {
            if (!bulk)
                bulk =
                    job.content &&
                    wants_list_unsubscribe(*p, sending, smtp::parse_header_block(*job.content)) &&
                    !list_unsubscribe_fields(*p, address, sending).empty();
            e.bulk = *bulk;
            if (*bulk)
                e.one_click = p->public_url.starts_with("https://");
            service_.emit(std::move(e));
            service_.record_delivery_later(address);
            continue;
        }
        const auto c = feedback::classify(o, *p->rules);
        add_classification(e, c);
        if (o.kind == core::OutcomeKind::Deferred) {
            e.type = EventType::Deferred;
            e.hard = false;
            service_.emit(std::move(e));
            continue;
        }
        e.type = EventType::Bounced;
        const auto source =
            feedback::clean_source(fmt::format("{} (queue {})", o.summary(), job.queue_id));
        log::info("feedback.bounced", "id={} rcpt={} reason={} hard={}", job.queue_id,
                  log::q(address), feedback::reason_name(c.reason), c.hard);
        service_.emit(std::move(e));
        if (c.hard)
            service_.suppress_later(feedback::SuppressionEntry{
                address, "", feedback::SuppressionReason::HardBounce, service_.now_ms(), source});
        else
            service_.record_soft_failure_later(address, source);
    }
}

void BounceObserver::failed(const queue::Message& message, std::vector<std::uint32_t> indexes) {
    std::optional<std::string> sending;
    CampaignFields campaign;
    for (const auto i : indexes) {
        if (i >= message.recipients.size())
            continue;
        const auto& r = message.recipients[i];
        const auto& o = r.outcome;
        const bool expired = o.local && o.enhanced == "4.4.7";
        const bool admin = o.local && o.enhanced == "5.0.0" && o.text == "bounced by administrator";
        if (!expired && !admin)
            continue; // an SMTP answer: OutcomeObserver reported it
        if (!sending) {
            core::DeliveryJob job;
            job.envelope = message.envelope;
            if (const auto content = service_.store().load_content(message.id))
                job.content = std::make_shared<const std::string>(*content);
            sending = sending_domain_of(job);
            campaign = job_campaign(job);
        }
        const auto queue_id = queue::format_queue_id(message.id);
        Event e;
        e.type = expired ? EventType::Expired : EventType::Bounced;
        e.queue_id = queue_id;
        e.recipient = r.spec.address;
        e.sending_domain = *sending;
        e.destination = core::address_domain(r.spec.address);
        set_campaign(e, campaign);
        add_reply(e, o);
        e.reason = expired ? feedback::Reason::Expired : feedback::Reason::OnHold;
        e.hard = false;
        e.source = expired ? "queue" : "admin";
        e.extra["attempts"] = r.attempts;
        service_.emit(std::move(e));
        if (expired) // a final soft failure: one more in the streak
            service_.record_soft_failure_later(
                r.spec.address,
                feedback::clean_source(fmt::format("{} (queue {})", o.summary(), queue_id)));
    }
    inner_.failed(message, std::move(indexes));
}

void BounceObserver::delayed(const queue::Message& message, std::vector<std::uint32_t> indexes) {
    inner_.delayed(message, std::move(indexes));
}

} // namespace ember::daemon
