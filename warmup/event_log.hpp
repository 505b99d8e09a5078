#pragma once
// Reads a delivery event log (JSON lines) for `emberctl warmup simulate
// --from-events`. The event log proper arrives with the feedback issue, so
// this reader is deliberately loose and reads only what a replay needs; one
// JSON object per line:
//
//   time              RFC 3339 string, or a number of seconds (or of
//                     milliseconds when above 10^11) since the epoch
//                     (also "ts", "timestamp")
//   type              delivered | deferred | bounced | failed | complained
//                     (also "event"; "delivery", "deferral", "bounce",
//                     "complaint" are accepted)
//   sending_domain    the domain mail was sent as (also "domain",
//                     "from_domain", or the domain of "sender"/"mail_from")
//   recipient_domain  (or the domain of "recipient"/"rcpt"); not needed for
//                     complaints
//   mx                the MX host it went to, optional (also "remote_host")
//   code, enhanced, text   the reply, optional; or "reply": "421 4.7.28 text"
//   hard              bool; "bounced" is hard unless "hard": false, "failed"
//                     is hard only with "hard": true
//
// Lines that are blank or start with '#' are ignored; lines that cannot be
// read are skipped and listed (`line N: why`), never fatal. Pure.

#include "warmup/values.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ember::warmup {

enum class LoggedType : std::uint8_t { Delivered, Deferred, Bounced, Failed, Complained };

struct LoggedEvent {
    TimePoint time{};
    LoggedType type = LoggedType::Delivered;
    std::string sending_domain;
    std::string recipient_domain;
    std::string mx_host;
    int code = 0;
    std::string enhanced;
    std::string text;
    bool hard = false;
};

struct EventLog {
    std::vector<LoggedEvent> events;  // sorted by time (stable)
    std::vector<std::string> skipped; // "line 12: no sending domain"
};

[[nodiscard]] EventLog parse_event_log(std::string_view text);

} // namespace ember::warmup
