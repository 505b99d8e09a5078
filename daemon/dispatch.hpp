#pragma once
// Dispatch: what happens to a job between the warm-up gate and DKIM signing.
// DESIGN.md's order is gate -> render -> sign -> deliver, and every content
// change must come before the signature, so the per-recipient work (the
// suppression check at dispatch, VERP return paths, List-Unsubscribe
// headers, template merge, tracking) runs here, in stages, on a copy of the
// job's recipients:
//
//   stage 1 .. stage N   each may decide a recipient's outcome (it is then
//                        not delivered: suppressed, skipped), give it its own
//                        envelope sender (VERP), header fields to prepend,
//                        or a rendered content with a render key
//   grouping             recipients that ended up with the same envelope
//                        sender, prepended fields and render key share one
//                        sub-job (one SMTP transaction, one signature)
//   inner deliverer      signs and delivers each sub-job in turn; they reuse
//                        the agent's pooled connection to the destination
//
// A job no stage touches goes to the inner deliverer unchanged (the common
// case costs one pass over the recipients and no copy of the content).
// Stages run in order on the scheduler's executor; they may await (a
// personalization hook) but must not block. Outcomes come back in the job's
// recipient order, as core::Deliverer promises.

#include "core/delivery.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::daemon {

struct DispatchRecipient {
    core::JobRecipient recipient;
    std::optional<core::Outcome> decided;       // set: not delivered, this is its outcome
    std::string mail_from;                      // starts as the job's; "" is the null sender
    std::string prepend;                        // header fields to prepend, each ending in CRLF
    std::string render_key;                     // "" = the job's content; else names `content`
    std::shared_ptr<const std::string> content; // the rendered message when render_key != ""
    // The A/B variant to render ("" = none): set by the A/B stage before
    // the merge, which turns it into the variable `variant` and the tag
    // `variant:NAME` (daemon/personalize_stages.hpp); it wins over a hook's.
    std::string variant = {};
};

struct DispatchContext {
    core::DeliveryJob job;      // as the scheduler handed it over (content untouched)
    std::string sending_domain; // the From: domain (lowercase), else the envelope sender's
    std::int64_t now_ms = 0;    // unix ms, read once per job
    std::vector<DispatchRecipient> recipients; // parallel to job.recipients
};

class DispatchStage {
public:
    virtual ~DispatchStage() = default;
    // Looks at the recipients without a decided outcome and changes what it
    // owns. Never throws; a stage that cannot do its part leaves the
    // recipient as it was (a missing unsubscribe header is better than a
    // lost message) and logs why.
    [[nodiscard]] virtual boost::asio::awaitable<void>
    apply(std::shared_ptr<DispatchContext> context) = 0;
};

// A sub-job's variant name: what tells the signer's cache that two jobs of
// one message carry different bytes. "" when nothing changed.
[[nodiscard]] std::string variant_of(const DispatchRecipient& r, std::string_view job_mail_from);

class Dispatcher final : public core::Deliverer {
public:
    // `inner` (signing, then the SMTP agent) must outlive the dispatcher.
    // `clock` gives unix ms.
    Dispatcher(core::Deliverer& inner, std::function<std::int64_t()> clock);

    // Stages run in the order added; add them before the first job.
    void add_stage(std::shared_ptr<DispatchStage> stage);

    [[nodiscard]] boost::asio::awaitable<std::vector<core::Outcome>>
    deliver(core::DeliveryJob job) override;

private:
    core::Deliverer& inner_;
    std::function<std::int64_t()> clock_;
    std::vector<std::shared_ptr<DispatchStage>> stages_;
};

// The sending domain of a message for policy (warm-up, suppression scope,
// VERP and unsubscribe tokens): the first From: address's domain, else the
// envelope sender's. Lowercase. The same function warm-up keys use: declared
// in daemon/warmup_service.hpp too, defined once, in warmup_service.cpp.
[[nodiscard]] std::string sending_domain_of(const core::DeliveryJob& job);

// `content` with `fields` inserted after its leading trace fields
// (Received:, Return-Path:), which RFC 5321 4.4 keeps at the top.
[[nodiscard]] std::string insert_after_trace(std::string_view content, std::string_view fields);

} // namespace ember::daemon
