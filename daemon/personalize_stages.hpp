#pragma once
// Personalization's part of dispatch (daemon/dispatch.hpp): one stage that
// asks the hook, then merges, after the suppression check and VERP and
// before List-Unsubscribe, tracking and DKIM signing (issue 7's order:
// warm-up gate -> hook -> merge -> List-Unsubscribe -> sign -> deliver).
// One stage, not two, because the hook's answers are per-job state the
// merge consumes and DispatchRecipient has no slot for them.
//
// For each job whose sender is not null (a DSN is never personalized: it
// quotes mail that may hold "{{"):
//   compile   the message, cached per message (PersonalizeService), after
//             removing X-Ember-Campaign, X-Ember-Tags and
//             X-Ember-Send-Within (X-Ember-Vars is the merge's);
//   hook      with [personalize] hook set: one HookRequest per job (every
//             recipient not yet decided, in batches by the client). Per
//             answer: vars (the top layer), headers (set, replacing a field
//             of the same name), variant, send_at (the recipient becomes
//             Throttled until then, clamped to the message's expiry: not an
//             attempt), skip (Suppressed with the reason and a `suppressed`
//             event with skipped=true: no bounce, no DSN, no suppression
//             entry). A failed batch follows on_error: send-default changes
//             nothing, defer answers 451 4.3.0 (local, an attempt);
//   merge     for a personalized message, the variables (hook > message's
//             X-Ember-Vars > contact attributes; the contact's tags), then
//             recipients grouped by render key (plus the hook's headers),
//             rendered once per group; each recipient gets the group's
//             content and key, so the Dispatcher makes one signed sub-job
//             per group. A render over the limits fails its group with
//             550 5.3.4. A pass-through message without X-Ember-* fields
//             and without hook headers is left alone (signed once, byte
//             for byte); with them, every recipient shares one stripped copy.
//
// Variants: an A/B test's cell (DispatchRecipient::variant, set by the A/B
// stage) or else a hook's "variant": "b" makes, for that recipient, the merge
// variable `variant` "b" and the tag `variant:b`, so a message holds its
// variants as sections: {{#tag:variant:b}}...{{/tag:variant:b}} and
// {{^tag:variant:b}}default...{{/tag:variant:b}}. A message that names no
// variant renders the same for every variant (the key does not change).
//
// A message that fails to compile at dispatch (it was queued before the
// submission check, or by a listener without it) is sent as queued, and
// logged: dispatch never loses mail over markup.
//
// Renders whose output would exceed kOffloadBytes run on the worker pool
// (core/async.hpp offload()); smaller ones on the event loop, where a few
// tens of microseconds cost less than two thread hops.
//
// Threads: the daemon's I/O executor, like every stage.

#include "daemon/dispatch.hpp"
#include "daemon/personalize_service.hpp"
#include "personalize/hook_protocol.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ember::daemon {

inline constexpr std::size_t kOffloadBytes = 1024 * 1024;

class PersonalizeStage final : public DispatchStage {
public:
    explicit PersonalizeStage(PersonalizeService& service) : service_(service) {}
    [[nodiscard]] boost::asio::awaitable<void>
    apply(std::shared_ptr<DispatchContext> context) override;

private:
    PersonalizeService& service_;
};

// `content` without the header fields named in `names` (case ignored, with
// their continuation lines); nullopt when it has none of them.
[[nodiscard]] std::optional<std::string> strip_fields(std::string_view content,
                                                      const std::vector<std::string_view>& names);

// `content` with each (name, value) field set: a field of that name is
// replaced (every occurrence removed, the new one written where the first
// was), else added after the trace fields. Values are UTF-8 text, control
// characters become spaces, non-ASCII words RFC 2047 encoded, folded.
[[nodiscard]] std::string
set_fields(std::string_view content,
           const std::vector<std::pair<std::string, std::string>>& fields);

// The outcomes the stage settles recipients with.
[[nodiscard]] core::Outcome hook_skipped_outcome(std::string_view reason);
[[nodiscard]] core::Outcome hook_held_outcome(std::int64_t until_ms);
[[nodiscard]] core::Outcome hook_deferred_outcome(std::string_view error);
[[nodiscard]] core::Outcome render_failed_outcome(const personalize::MergeError& error);

} // namespace ember::daemon
