#include "daemon/feedback_sink.hpp"

#include "core/log.hpp"
#include "queue/record.hpp"
#include "smtp/message_header.hpp"

#include <fmt/format.h>

#include <variant>

namespace ember::daemon {
namespace {

namespace asio = boost::asio;
namespace log = core::log;
using feedback::Event;
using feedback::EventType;

std::string trace_queue_id(const feedback::TraceRef& trace) {
    if (trace.via == feedback::TraceRef::Via::Verp || trace.via == feedback::TraceRef::Via::EmberId)
        return queue::format_queue_id(trace.queue_id);
    return {};
}

void add_trace(Event& e, const feedback::TraceRef& trace, bool verified) {
    e.queue_id = trace_queue_id(trace);
    e.extra["via"] = feedback::trace_via_name(trace.via);
    e.extra["verified"] = verified;
    if (!trace.message_id.empty())
        e.extra["message_id"] = trace.message_id;
}

Event bounce_event(const feedback::BounceAction& a) {
    Event e;
    e.type = EventType::Bounced;
    e.recipient = a.recipient;
    e.sending_domain = a.sending_domain;
    e.destination = core::address_domain(a.recipient);
    e.reason = a.reason;
    e.hard = a.hard;
    e.code = a.reply_code;
    e.status = a.status;
    e.remote_host = a.remote_mta;
    e.text = a.diagnostic;
    e.source = "dsn";
    add_trace(e, a.trace, a.recipient_verified);
    e.extra["format"] = a.format;
    return e;
}

Event complaint_event(const feedback::ComplaintAction& a) {
    Event e;
    e.type = EventType::Complained;
    e.recipient = a.recipient;
    e.sending_domain = a.sending_domain;
    e.destination = core::address_domain(a.recipient);
    e.reason = feedback::Reason::Feedback;
    e.source = "arf";
    add_trace(e, a.trace, a.recipient_verified);
    e.extra["feedback_type"] = a.feedback_type;
    e.extra["format"] = a.format;
    if (!a.user_agent.empty())
        e.extra["user_agent"] = a.user_agent;
    if (!a.source_ip.empty())
        e.extra["source_ip"] = a.source_ip;
    return e;
}

bool write_ok(const feedback::WriteResult& r, std::string_view what, const std::string& rcpt) {
    if (r.status == feedback::WriteStatus::Ok)
        return true;
    log::error("feedback.write_failed", "what={} rcpt={} error={}", what, log::q(rcpt),
               log::q(r.detail));
    // Invalid input (not an address) will never write: taking the report is right.
    return r.status == feedback::WriteStatus::Invalid;
}

asio::awaitable<bool> bounce(FeedbackService* s, feedback::BounceAction a, std::string id) {
    log::info("feedback.bounce", "id={} rcpt={} reason={} hard={} via={} verified={}", id,
              log::q(a.recipient), feedback::reason_name(a.reason), a.hard,
              feedback::trace_via_name(a.trace.via), a.recipient_verified);
    const auto source = feedback::clean_source(fmt::format(
        "{} {} {} (dsn {})", a.status, feedback::reason_name(a.reason), a.diagnostic, id));
    bool ok = true;
    // Named locals, not temporaries, go into co_await (g++ 12, helper notes).
    if (a.recipient_verified && a.hard) {
        feedback::SuppressionEntry entry{a.recipient, "", feedback::SuppressionReason::HardBounce,
                                         s->now_ms(), source};
        const auto r = co_await s->suppress(std::move(entry));
        ok = write_ok(r, "suppress", a.recipient);
    } else if (a.recipient_verified) {
        std::string address = a.recipient;
        std::string why = source;
        const auto r = co_await s->record_soft_failure(std::move(address), std::move(why));
        ok = write_ok(r, "soft_bounce", a.recipient);
    }
    // Counted in the rates only when the recipient is ours for certain.
    auto event = bounce_event(a);
    const bool stored =
        co_await s->emit_durable(std::move(event), EmitOptions{a.recipient_verified});
    co_return ok&& stored;
}

asio::awaitable<bool> complaint(FeedbackService* s, feedback::ComplaintAction a, std::string id) {
    if (a.feedback_type == "not-spam") {
        log::info("feedback.ignored", "id={} why=\"a not-spam report is no complaint\"", id);
        co_return true;
    }
    log::info("feedback.complaint", "id={} rcpt={} type={} via={} verified={}", id,
              log::q(a.recipient), log::q(a.feedback_type), feedback::trace_via_name(a.trace.via),
              a.recipient_verified);
    bool ok = true;
    if (a.recipient_verified && !a.recipient.empty()) {
        const auto p = s->policy();
        const auto scope = feedback::scope_for(feedback::SuppressionReason::Complaint,
                                               a.sending_domain, p->config.suppression);
        const auto source = feedback::clean_source(
            fmt::format("complaint {} via {} (report {})", a.feedback_type, a.format, id));
        feedback::SuppressionEntry entry{a.recipient, scope, feedback::SuppressionReason::Complaint,
                                         s->now_ms(), source};
        const auto r = co_await s->suppress(std::move(entry));
        ok = write_ok(r, "suppress", a.recipient);
    }
    const bool mapped = a.trace.via != feedback::TraceRef::Via::None;
    auto event = complaint_event(a);
    const bool stored = co_await s->emit_durable(std::move(event), EmitOptions{mapped});
    co_return ok&& stored;
}

asio::awaitable<bool> unsubscribe(FeedbackService* s, feedback::UnsubscribeAction a,
                                  std::string id) {
    const auto started = s->now_ms();
    const auto p = s->policy();
    const auto scope = feedback::scope_for(feedback::SuppressionReason::Unsubscribe,
                                           a.who.sending_domain, p->config.suppression);
    feedback::SuppressionEntry entry{
        a.who.address, scope, feedback::SuppressionReason::Unsubscribe, started,
        feedback::clean_source(fmt::format("unsubscribe by mail (message {})", id))};
    const auto r = co_await s->suppress(std::move(entry));
    const bool ok = write_ok(r, "suppress", a.who.address);
    if (r.status == feedback::WriteStatus::Ok)
        s->note_unsubscribe_delay(s->now_ms() - started);
    log::info("feedback.unsubscribed", "id={} rcpt={} domain={} via=mailto", id,
              log::q(a.who.address), log::q(a.who.sending_domain));
    Event e;
    e.type = EventType::Unsubscribed;
    e.recipient = a.who.address;
    e.sending_domain = a.who.sending_domain;
    e.destination = core::address_domain(a.who.address);
    e.source = "mailto";
    e.extra["scope"] = scope.empty() ? "global" : scope;
    const bool stored = co_await s->emit_durable(std::move(e));
    co_return ok&& stored;
}

} // namespace

asio::awaitable<bool> FeedbackSink::carry_out(FeedbackService* service,
                                              std::vector<feedback::InboundAction> actions,
                                              std::string queue_id) {
    bool ok = true;
    for (auto& action : actions) {
        bool done = true;
        if (auto* b = std::get_if<feedback::BounceAction>(&action)) {
            auto task = bounce(service, std::move(*b), queue_id);
            done = co_await std::move(task);
        } else if (auto* c = std::get_if<feedback::ComplaintAction>(&action)) {
            auto task = complaint(service, std::move(*c), queue_id);
            done = co_await std::move(task);
        } else if (auto* u = std::get_if<feedback::UnsubscribeAction>(&action)) {
            auto task = unsubscribe(service, std::move(*u), queue_id);
            done = co_await std::move(task);
        } else if (auto* i = std::get_if<feedback::IgnoreAction>(&action)) {
            log::info("feedback.ignored", "id={} why={}", queue_id, log::q(i->why));
        }
        ok = ok && done;
    }
    co_return ok;
}

asio::awaitable<smtp::SinkStatus> FeedbackSink::commit(smtp::AcceptedMessage message) {
    const auto p = service_.policy();
    std::vector<std::string> ours;
    std::vector<core::RecipientSpec> others;
    for (auto& r : message.envelope.recipients) {
        if (p->feedback_address(r.address))
            ours.push_back(r.address);
        else
            others.push_back(std::move(r));
    }
    if (!ours.empty()) {
        feedback::InboundEnvelope envelope{message.envelope.mail_from, ours};
        auto actions = p->inbound->decide(envelope, message.content);
        log::info("feedback.received", "id={} from=<{}> nrcpt={} actions={}", message.queue_id,
                  log::q(message.envelope.mail_from), ours.size(), actions.size());
        auto task = carry_out(&service_, std::move(actions), message.queue_id);
        const bool ok = co_await std::move(task);
        if (!ok)
            co_return smtp::SinkStatus::LocalError; // 451: the sender retries
    }
    if (others.empty())
        co_return smtp::SinkStatus::Ok;
    message.envelope.recipients = std::move(others);
    auto received = received_events(message);
    const auto status = co_await inner_.commit(std::move(message));
    if (status == smtp::SinkStatus::Ok)
        for (auto& e : received)
            service_.emit(std::move(e));
    co_return status;
}

std::vector<Event> FeedbackSink::received_events(const smtp::AcceptedMessage& message) const {
    const auto p = service_.policy();
    const auto froms = smtp::from_domains(smtp::parse_header_block(message.content));
    const auto sending =
        froms.empty() ? core::address_domain(message.envelope.mail_from) : froms.front();
    std::optional<bool> aligned; // known only where the DMARC gate refused unaligned mail
    if (const auto it = p->aligned_listeners.find(message.info.listener);
        it != p->aligned_listeners.end() && it->second)
        aligned = true;
    std::vector<Event> out;
    for (const auto& r : message.envelope.recipients) {
        Event e;
        e.type = EventType::Received;
        e.queue_id = message.queue_id;
        e.recipient = r.address;
        e.sending_domain = sending;
        e.destination = core::address_domain(r.address);
        e.source = "smtp";
        e.dmarc_aligned = aligned;
        if (!message.info.auth_user.empty())
            e.extra["auth_user"] = message.info.auth_user;
        out.push_back(std::move(e));
    }
    return out;
}

} // namespace ember::daemon
