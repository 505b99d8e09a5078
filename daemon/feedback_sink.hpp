#pragma once
// The MessageSink in front of the queue: mail to our own feedback
// addresses (bounces at VERP return paths, feedback-loop reports,
// unsubscribe+TOKEN mail, postmaster at a bounce domain) is read here and
// never queued; everything else goes to the inner sink (the queue).
//
// For our recipients InboundPolicy::decide() gives the actions, carried out
// before the reply: a bounce is a `bounced` event (hard and verified:
// global suppression; soft and verified: one more soft failure), a
// complaint a `complained` event and, when verified, a suppression in the
// complaint scope, a mailto unsubscribe a suppression in the unsubscribe
// scope and an `unsubscribed` event. The 250 is sent only once every write
// is committed (suppression list and webhook outbox, both LMDB); a failed
// write answers 451 so the sender tries again (a repeated report is
// harmless: the latest entry wins). Ignored mail (autoreplies, delay
// notices, unmapped bounces) is logged and taken.
//
// A message to ours and to others (a submission with a feedback address
// among normal recipients) is split: ours are read, the others queued.
// Messages the inner sink queued get one `received` event per recipient
// (dmarc_aligned when the listener's DMARC gate enforces).
//
// Threads: the SMTP sessions' executor.

#include "daemon/feedback_service.hpp"
#include "smtp/server_env.hpp"

#include <boost/asio/awaitable.hpp>

#include <string>
#include <vector>

namespace ember::daemon {

class FeedbackSink final : public smtp::MessageSink {
public:
    // `service` and `inner` must outlive the sink.
    FeedbackSink(FeedbackService& service, smtp::MessageSink& inner)
        : service_(service), inner_(inner) {}

    [[nodiscard]] std::string new_queue_id() override { return inner_.new_queue_id(); }
    [[nodiscard]] boost::asio::awaitable<smtp::SinkStatus>
    commit(smtp::AcceptedMessage message) override;

    // Carries out InboundPolicy's actions for one message; false when a
    // write failed (exposed for tests).
    [[nodiscard]] static boost::asio::awaitable<bool>
    carry_out(FeedbackService* service, std::vector<feedback::InboundAction> actions,
              std::string queue_id);

private:
    [[nodiscard]] std::vector<feedback::Event>
    received_events(const smtp::AcceptedMessage& message) const;

    FeedbackService& service_;
    smtp::MessageSink& inner_;
};

} // namespace ember::daemon
