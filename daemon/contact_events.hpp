#pragma once
// Feedback events as contact engagement (issue 7): a delivered, opened or
// clicked event (feedback/events.hpp) becomes personalize::ContactStore::
// record_event() for its recipient, at the event's own time, with its
// sending domain (opens and clicks also move that domain's hour-of-week
// histogram, which send-time optimisation falls back to). Other events
// (deferred, bounced, complained, ...) are not engagement and are ignored:
// suppression already acts on them; so are opens and clicks flagged
// extra.machine = true (Apple Mail Privacy Protection, link scanners).
//
// The FeedbackService event listener calls record_contact_event() on the
// I/O thread; the write is queued on the Store's group committer and its
// result only logged (engagement is best effort: a lost update costs a
// slightly worse send time, never mail).

#include "feedback/events.hpp"
#include "personalize/contacts.hpp"

#include <optional>

namespace ember::daemon {

// Delivered, Open, Click; nullopt for every other event type.
[[nodiscard]] std::optional<personalize::EngagementKind> engagement_of(feedback::EventType type);

// Records `event` for its recipient when it is engagement; false when it
// is not (or has no recipient).
bool record_contact_event(personalize::ContactStore& contacts, const feedback::Event& event);

} // namespace ember::daemon
