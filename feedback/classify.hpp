#pragma once
// Classification of one delivery result: a synchronous SMTP reply, a local
// failure, or one recipient of an asynchronous bounce, into a Sisimai
// reason (feedback/reason.hpp), hard or soft, and an enhanced status.
//
// Order: a 2xx reply or 2.x.x status is `delivered`; otherwise the rules
// (feedback/rules.hpp) decide, first match wins. The shipped table puts
// enhanced status codes with a precise RFC 3463 meaning (x.1.1, x.2.2,
// x.7.26, ...) ahead of the reply-text patterns, and generic codes (x.0.0,
// x.7.1, ...) after them, so text refines a vague code but does not
// contradict a precise one; a few texts known to be more precise than any
// code (a full mailbox, a moved mailbox) come first. Admin rules come before
// all of it. When no rule matches: `onhold` if there was text to judge,
// else `undefined` (Sisimai's convention).
//
// Pure: no I/O, no clock, no globals but the immutable built-in rules.
// Thread-safe.

#include "core/outcome.hpp"
#include "feedback/reason.hpp"
#include "feedback/rules.hpp"

#include <string>
#include <string_view>

namespace ember::feedback {

struct Classification {
    Reason reason = Reason::Undefined;
    bool hard = false;
    // The enhanced status code: the one given (or found in the text), else
    // the standard code for the reason (status_synthesized), e.g. 5.1.1 for
    // userunknown, with the class of the reply code. Empty for reasons
    // that are not failures and have no code (feedback, vacation).
    std::string status;
    bool status_synthesized = false;
    std::string rule; // origin of the deciding rule ("bounce-rules.toml:42"), or ""
    // The deciding rule read the text (had a pattern); false when a status
    // or reply code alone decided, or no rule did.
    bool by_text = false;
    friend bool operator==(const Classification&, const Classification&) = default;
};

// `text` is the reply text, with or without the code and status in front;
// when `code` is 0 or `enhanced` empty they are taken from the text's start
// ("550 5.1.1 ..."), then from anywhere in it ("... said: 550 5.1.1 ...").
[[nodiscard]] Classification classify(int code, std::string_view enhanced, std::string_view text,
                                      const Rules& rules);

// The same with the SMTP command the reply answered.
[[nodiscard]] Classification classify(int code, std::string_view enhanced, std::string_view text,
                                      Command command, const Rules& rules);

// A delivery outcome from smtp/ (remote reply or synthesized local failure).
[[nodiscard]] Classification classify(const core::Outcome& outcome, const Rules& rules);

// The first reply code in text: 3 digits 2xx-5xx standing alone, at the
// start or after "said:"/"said" or "host ...:" style prefixes. 0 when none.
[[nodiscard]] int find_reply_code(std::string_view text);

// The first enhanced status code (class 2, 4 or 5, RFC 3463 syntax) in text,
// or "".
[[nodiscard]] std::string find_status(std::string_view text);

// The RFC 3463 code that names `reason` best ("1.1" for userunknown ...),
// with class `cls` ('4' or '5'); "" for reasons without one.
[[nodiscard]] std::string standard_status(Reason reason, char cls);

} // namespace ember::feedback
