#pragma once
// The typed configuration of ember's feedback loop as emberd reads it from
// ember.toml: [feedback] (VERP return paths, unsubscribe headers, the
// suppression list's policy, the inbound listener's addresses and the
// classification rules), [events] (the event log and the webhook outbox's
// retry policy) and [[webhook]] (one endpoint each). The feedback library's
// own structs (SuppressionConfig, InboundConfig, ClassifyConfig,
// WebhookEndpointConfig) are embedded so their defaults are written once,
// in feedback/. Parsed by daemon/config_tables_feedback.cpp; used by
// daemon/feedback_service.hpp. Plain values, no behaviour.

#include "feedback/classify_config.hpp"
#include "feedback/events.hpp"
#include "feedback/inbound.hpp"
#include "feedback/suppression.hpp"
#include "feedback/webhooks.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ember::daemon {

// What RCPT TO does with a suppressed recipient on a submission listener:
// Drop accepts it and settles it as suppressed at dispatch, with a
// `suppressed` event (what the hosted services do: the application learns
// from the event, not from a refusal it may not handle); Reject answers
// 550 5.7.1 naming the reason.
enum class SuppressionAtRcpt : std::uint8_t { Drop, Reject };

struct FeedbackConfig {
    // "id:secret" (feedback/tokens.hpp): the first key signs VERP,
    // unsubscribe and X-Ember-ID tokens, every key verifies them.
    std::vector<std::string> token_keys;
    // Envelope sender bounces+TOKEN@bounce-domain for every message with a
    // non-null sender whose sending domain has a bounce domain.
    bool verp = false;
    std::string bounce_domain;                         // for every sending domain...
    std::map<std::string, std::string> bounce_domains; // ...unless named here (sending -> bounce)
    SuppressionAtRcpt suppression_at_rcpt = SuppressionAtRcpt::Drop;
    // Sending domains whose mail is bulk: it gets List-Unsubscribe and
    // List-Unsubscribe-Post (RFC 2369, RFC 8058). "*" means every domain.
    std::vector<std::string> unsubscribe_domains;
    std::string unsubscribe_mailto_domain; // "" = no mailto: in List-Unsubscribe
    feedback::SuppressionConfig suppression;
    // verp_local_part, unsubscribe_local_part, report_addresses (its
    // sending_domains are filled in at start from the config).
    feedback::InboundConfig inbound;
    feedback::ClassifyConfig classify;
};

// [events] and [[webhook]]: the event log, and the webhook outbox (its
// endpoints from [[webhook]], max_age and the retry policy from [events]).
struct EventsConfig {
    feedback::EventLogConfig log;     // log.path "" = no event log file
    feedback::WebhookConfig webhooks; // no endpoints = nothing is stored or posted
};

} // namespace ember::daemon
