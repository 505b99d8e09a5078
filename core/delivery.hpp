#pragma once
// The seam between the scheduler (queue/) and whatever carries mail out
// (the SMTP client in smtp/, wired by the daemon): a DeliveryJob is one
// message's due recipients for one destination domain, handed to a
// Deliverer that answers one Outcome per recipient, in order.
// The scheduler never parses SMTP; the deliverer never touches the store.
// In core because queue/ and smtp/ are siblings that must not depend on
// each other.

#include "core/envelope.hpp"
#include "core/outcome.hpp"

#include <boost/asio/awaitable.hpp>

#include <memory>
#include <string>
#include <vector>

namespace ember::core {

struct JobRecipient {
    std::uint32_t index = 0; // the recipient's index in its message
    RecipientSpec spec;
};

struct DeliveryJob {
    std::uint64_t message_id = 0; // the queue's id
    std::string queue_id;         // the same, as printed in logs and Received:
    std::string domain;           // destination (lowercase)
    Envelope envelope;            // mail_from, body, smtputf8, ret, envid (recipients unused)
    std::vector<JobRecipient> recipients;
    std::shared_ptr<const std::string> content; // the message as queued
    std::uint32_t attempt = 1;                  // 1 for the first try of these recipients
    // "" while content is the message as queued; dispatch (daemon/dispatch.hpp)
    // names each changed copy (VERP sender, added fields, rendering) so a
    // cache keyed by message (the DKIM signature) never mixes two copies.
    std::string variant;
    // Set by the warm-up gate from the destination's provider: at most this
    // many messages per outbound connection (0: the agent's own limit).
    std::uint32_t max_messages_per_connection = 0;
};

class Deliverer {
public:
    virtual ~Deliverer() = default;
    // One outcome per job.recipients[i], in the same order. Never throws:
    // local trouble (DNS, connect, TLS) becomes Deferred or Failed outcomes.
    [[nodiscard]] virtual boost::asio::awaitable<std::vector<Outcome>> deliver(DeliveryJob job) = 0;
};

} // namespace ember::core
