#pragma once
// The feedback loop's part of dispatch (daemon/dispatch.hpp) and of the
// results. Dispatch stages, in the order FeedbackService::add_stages adds
// them, all before DKIM signing:
//
//   SuppressionStage  each recipient against the suppression list (global,
//                     then the sending domain's entry): a hit is settled as
//                     Suppressed (final, no DSN) with a `suppressed` event;
//   VerpStage         with [feedback] verp and a non-null sender whose
//                     sending domain has a bounce domain: the envelope
//                     sender becomes bounces+TOKEN@bounce-domain, one per
//                     recipient (so each is its own transaction);
//   UnsubscribeStage  bulk mail (the sending domain is in
//                     unsubscribe_domains, or the message says
//                     "Precedence: bulk" or "list") gets List-Unsubscribe and
//                     List-Unsubscribe-Post (RFC 2369, RFC 8058) for its
//                     recipient, unless the sender wrote its own
//                     List-Unsubscribe; with token_keys every message gets
//                     X-Ember-ID.
//
// X-Ember-ID names the recipient (QUEUEID.INDEX.MAC) when the recipient is
// already in a transaction of its own (VERP, List-Unsubscribe, or the only
// recipient of the job); a job of several recipients that nothing else
// splits carries QUEUEID alone, so plain relaying keeps one transaction per
// destination. Complaints about such mail map to the message, not the
// recipient, and suppress nobody.
//
// OutcomeObserver (a Deliverer at the top of the chain) turns each outcome
// into an event: delivered (ends the recipient's soft-bounce streak),
// deferred, bounced (classified; a hard bounce suppresses globally, a soft
// final failure adds to the streak), throttled (once per recipient and
// reason). BounceObserver (around the scheduler's BounceSink) reports
// expiries (`expired`, a soft final failure) and administrator bounces.
//
// Every event built from a job whose content is at hand (delivered,
// deferred, bounced, throttled, suppressed at dispatch, expired, admin
// bounces) carries the message's campaign, tags, A/B test and cell, read
// once per job from the queued header (campaign_fields()): the stages that
// strip the X-Ember-* fields work on per-recipient copies, never on the
// job's content.
//
// Threads: the daemon's I/O executor, like the scheduler.

#include "core/delivery.hpp"
#include "daemon/dispatch.hpp"
#include "daemon/feedback_service.hpp"
#include "queue/scheduler.hpp"
#include "smtp/message_header.hpp"

#include <boost/asio/awaitable.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ember::daemon {

// What a message says about its campaign (daemon/personalize_service.hpp
// names the fields): X-Ember-Campaign (trimmed), X-Ember-Tags (a comma
// list, each trimmed, empty ones dropped), X-Ember-AB ("TESTID; cell=NAME":
// the test id and the cell; a missing cell leaves variant empty). Values
// are capped (kMaxCampaignOctets, ...) so a report's storage key stays
// under LMDB's 511 octets; a longer value is cut, not refused (the mail was
// accepted long ago).
struct CampaignFields {
    std::string campaign;
    std::vector<std::string> tags;
    std::string ab_test;
    std::string variant;
};
inline constexpr std::size_t kMaxCampaignOctets = 256;
inline constexpr std::size_t kMaxVariantOctets = 64;
inline constexpr std::size_t kMaxTagOctets = 128;
inline constexpr std::size_t kMaxTags = 32;

[[nodiscard]] CampaignFields campaign_fields(const smtp::HeaderBlock& header);
[[nodiscard]] CampaignFields campaign_fields(std::string_view content);
// Copies the fields into the event (empty ones stay absent).
void set_campaign(feedback::Event& event, const CampaignFields& fields);

class SuppressionStage final : public DispatchStage {
public:
    explicit SuppressionStage(FeedbackService& service) : service_(service) {}
    [[nodiscard]] boost::asio::awaitable<void>
    apply(std::shared_ptr<DispatchContext> context) override;

private:
    FeedbackService& service_;
};

class VerpStage final : public DispatchStage {
public:
    explicit VerpStage(FeedbackService& service) : service_(service) {}
    [[nodiscard]] boost::asio::awaitable<void>
    apply(std::shared_ptr<DispatchContext> context) override;

private:
    FeedbackService& service_;
};

class UnsubscribeStage final : public DispatchStage {
public:
    explicit UnsubscribeStage(FeedbackService& service) : service_(service) {}
    [[nodiscard]] boost::asio::awaitable<void>
    apply(std::shared_ptr<DispatchContext> context) override;

private:
    FeedbackService& service_;
};

// A message is bulk for List-Unsubscribe: its sending domain is listed, or
// it carries Precedence: bulk / list. Never when it has a List-Unsubscribe
// of its own (the sender handles its unsubscribes) or no sending domain.
[[nodiscard]] bool wants_list_unsubscribe(const FeedbackPolicy& policy,
                                          std::string_view sending_domain,
                                          const smtp::HeaderBlock& header);

// The header fields (each ending in CRLF, folded) for one recipient of a
// bulk message; "" when the policy cannot make any (no signer, no URL and
// no mailto domain).
[[nodiscard]] std::string list_unsubscribe_fields(const FeedbackPolicy& policy,
                                                  std::string_view address,
                                                  std::string_view sending_domain);

// The X-Ember-ID value: QUEUEID.INDEX.MAC, or QUEUEID alone when
// `per_recipient` is false. The policy must have a signer.
[[nodiscard]] std::string ember_id_value(const FeedbackPolicy& policy, std::uint64_t message_id,
                                         std::uint32_t index, std::string_view address,
                                         bool per_recipient);

// The outcome of a recipient settled by the suppression list.
[[nodiscard]] core::Outcome suppressed_outcome(const feedback::SuppressionEntry& entry);

class OutcomeObserver final : public core::Deliverer {
public:
    OutcomeObserver(FeedbackService& service, core::Deliverer& inner)
        : service_(service), inner_(inner) {}
    [[nodiscard]] boost::asio::awaitable<std::vector<core::Outcome>>
    deliver(core::DeliveryJob job) override;

    // One event per outcome of `job` (exposed for tests; deliver() calls it).
    void record(const core::DeliveryJob& job, const std::vector<core::Outcome>& outcomes);

private:
    FeedbackService& service_;
    core::Deliverer& inner_;
};

class BounceObserver final : public queue::BounceSink {
public:
    BounceObserver(FeedbackService& service, queue::BounceSink& inner)
        : service_(service), inner_(inner) {}
    void failed(const queue::Message& message, std::vector<std::uint32_t> indexes) override;
    void delayed(const queue::Message& message, std::vector<std::uint32_t> indexes) override;

private:
    FeedbackService& service_;
    queue::BounceSink& inner_;
};

} // namespace ember::daemon
