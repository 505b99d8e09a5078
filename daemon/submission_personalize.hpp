#pragma once
// Personalization at submission (issue 7): what runs before the 250 so a
// bad message is refused by the client's own SMTP transaction, not bounced
// hours later at dispatch.
//
//   PersonalizeGate   an smtp::ContentPolicy: the message's templates
//                     compile (personalize::CompiledMessage::compile, 550
//                     5.6.0 with the part or field, line and column; 550
//                     5.6.3 for markup in a charset iconv cannot read),
//                     X-Ember-Vars is one JSON object, and
//                     X-Ember-Send-Within is one duration. Submission
//                     listeners only: inbound mail (DSNs, reports) is not
//                     ours to refuse for its braces.
//   PolicyChain       runs several ContentPolicies in order, the first
//                     refusal wins (the daemon chains the DMARC gate first:
//                     a message failing both gets the more fundamental
//                     answer).
//   SendTimePlanner   in the queue sink, right before the commit: strips
//                     X-Ember-Send-Within and sets each recipient's first
//                     attempt from personalize::choose_send_time() (the
//                     contact's hour-of-week histogram, else the sending
//                     domain's, else now). The warm-up gate still applies
//                     when the recipient becomes due.
//
// Decisions:
//   - A bad X-Ember-Send-Within is 550 5.6.0, like a bad X-Ember-Vars: it
//     is message content, not a command parameter (501 is for those).
//     Durations are written as in ember.toml ("30m", "24h", "7d"); "0"
//     means now; a window over sto_max_window is cut to it (logged).
//   - The sending domain is the first From: domain (what DKIM signs and
//     warm-up counts), else the envelope sender's domain.
//   - A compile costs a MIME parse and a decode of the text parts; most
//     messages skip it: may_personalize() is false when no byte could be
//     or could hide markup (no "{{", no quoted-printable "=7B", no
//     encoded-word, no base64, no X-Ember-Vars, no UTF-7/16/32 charset).
//
// Threads: everything runs on the daemon's I/O thread. The planner reads
// contacts (LMDB read transactions, no fsync): one read per recipient, and
// only for messages that carry X-Ember-Send-Within.

#include "core/units.hpp"
#include "personalize/contacts.hpp"
#include "personalize/merge.hpp"
#include "personalize/send_time.hpp"
#include "queue/record.hpp"
#include "smtp/message_header.hpp"
#include "smtp/server_env.hpp"

#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::daemon {

// False when compile() could find neither markup nor X-Ember-Vars in `raw`
// (see the header comment); true means "compile to know".
[[nodiscard]] bool may_personalize(std::string_view raw);

struct SendWithin {
    enum class Status : std::uint8_t { Absent, Ok, Invalid };
    Status status = Status::Absent;
    core::Duration within{0};
    std::string error; // when Invalid: the reply text
};
// X-Ember-Send-Within of a parsed header block: one field, one duration.
[[nodiscard]] SendWithin parse_send_within(const smtp::HeaderBlock& header);

// The submission check of one message: nullopt to accept, else the reply.
[[nodiscard]] std::optional<smtp::PolicyVerdict>
check_personalization(std::string_view raw, const personalize::MergeLimits& limits = {});

// Removes every field named `name` (ASCII case ignored), continuation
// lines included, from the header of `content`; returns how many.
std::size_t strip_header_fields(std::string& content, std::string_view name);

class PersonalizeGate final : public smtp::ContentPolicy {
public:
    explicit PersonalizeGate(personalize::MergeLimits limits = {}) : limits_(limits) {}
    void update(personalize::MergeLimits limits) { limits_ = limits; }
    [[nodiscard]] boost::asio::awaitable<smtp::PolicyVerdict>
    check(smtp::ContentCheck check) override;

private:
    personalize::MergeLimits limits_;
};

class PolicyChain final : public smtp::ContentPolicy {
public:
    void add(smtp::ContentPolicy* policy) { policies_.push_back(policy); }
    [[nodiscard]] boost::asio::awaitable<smtp::PolicyVerdict>
    check(smtp::ContentCheck check) override;

private:
    std::vector<smtp::ContentPolicy*> policies_;
};

// One recipient's slot, as plan() chose it (for logs and tests).
struct PlannedSlot {
    std::string recipient;
    personalize::SendTime time;
};

class SendTimePlanner {
public:
    SendTimePlanner(personalize::ContactStore& contacts, personalize::SendTimeConfig config)
        : contacts_(contacts), config_(config) {}
    void update(personalize::SendTimeConfig config) { config_ = config; }
    [[nodiscard]] const personalize::SendTimeConfig& config() const { return config_; }

    // For a submitted message: strips X-Ember-Send-Within from `content`
    // and, when it held a valid window, sets next_attempt_ms of each pending
    // recipient of `record`. `queue_id` is for the log. Returns the slots
    // chosen (empty without the field).
    std::vector<PlannedSlot> plan(std::string& content, queue::Message& record, std::int64_t now_ms,
                                  std::string_view queue_id) const;

private:
    personalize::ContactStore& contacts_;
    personalize::SendTimeConfig config_;
};

// The sending domain of a message: the first From: domain, else the
// envelope sender's domain (lower-cased).
[[nodiscard]] std::string submission_sending_domain(const smtp::HeaderBlock& header,
                                                    std::string_view mail_from);

} // namespace ember::daemon
