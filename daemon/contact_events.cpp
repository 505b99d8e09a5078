#include "daemon/contact_events.hpp"

#include "core/log.hpp"

#include <string>

namespace ember::daemon {

namespace log = core::log;

std::optional<personalize::EngagementKind> engagement_of(feedback::EventType type) {
    switch (type) {
    case feedback::EventType::Delivered:
        return personalize::EngagementKind::Delivered;
    case feedback::EventType::Opened:
        return personalize::EngagementKind::Open;
    case feedback::EventType::Clicked:
        return personalize::EngagementKind::Click;
    default:
        return std::nullopt;
    }
}

bool record_contact_event(personalize::ContactStore& contacts, const feedback::Event& event) {
    const auto kind = engagement_of(event.type);
    if (!kind || event.recipient.empty())
        return false;
    // A machine open or click (Apple's prefetch, a link scanner) says
    // nothing about the person: it must not warm the contact up or move
    // send times (daemon/tracking_service.hpp).
    if (const auto* machine = event.extra.if_contains("machine");
        machine != nullptr && machine->is_bool() && machine->as_bool())
        return false;
    contacts.record_event(event.recipient, *kind, event.time_ms, event.sending_domain,
                          [rcpt = event.recipient, kind = *kind](personalize::ContactResult r) {
                              // NotFound: create_on_event is off and this is no contact of ours.
                              if (r.status == personalize::ContactStatus::Ok ||
                                  r.status == personalize::ContactStatus::NotFound)
                                  return;
                              log::warning("contacts.event_failed", "rcpt={} event={} error={}",
                                           log::q(rcpt), personalize::engagement_kind_name(kind),
                                           log::q(r.detail));
                          });
    return true;
}

} // namespace ember::daemon
