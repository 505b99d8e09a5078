#pragma once
// Telling machine opens and clicks from people's (issue 8): a tracking hit
// is flagged `machine` with a reason, so engagement, A/B decisions and
// reports count people only. The event is still recorded (senders want to
// see how much of their "opens" are Apple's prefetch), with extra.machine.
//
// Rules, first match wins (what the large ESPs document, 2021 onwards):
//   head-request     a HEAD request: link checkers probe, browsers GET.
//   apple-mpp        User-Agent exactly "Mozilla/5.0": Apple Mail Privacy
//                    Protection fetches every image through its proxies at
//                    delivery with that bare string (no platform, no engine),
//                    whether or not the message is ever read.
//   proxy-network    the client IP is in `networks`: the admin lists the
//                    egress ranges of such proxies (Apple publishes
//                    iCloud Private Relay's; scanners' ranges vary), since
//                    a UA alone can be changed by the next OS release.
//   no-user-agent    no User-Agent at all: every mail client and browser
//                    sends one; scripts and scanners often do not.
//   user-agent       the User-Agent matches one of `user_agents` (RE2,
//                    case-insensitive, unanchored): security gateways that
//                    pre-click every link (Barracuda, Mimecast, Proofpoint,
//                    Trend Micro, ...), crawlers and HTTP libraries (curl,
//                    python-requests, Go-http-client). A pattern written
//                    "click:PATTERN" judges clicks only: "Microsoft Office"
//                    is Office's link preflight and Outlook's link preview
//                    when it clicks, but Outlook desktop reading the message
//                    when it fetches the pixel.
//   fast-click       a click less than `click_window` after dispatch: a
//                    scanner at the receiving gateway follows links as the
//                    message arrives; a person takes longer to open, read and
//                    click. Opens are not judged by time (a push notification
//                    makes a fast human open common; the pixel of a prefetch
//                    is already caught by apple-mpp).
//
// Not machine, on purpose: Google's image proxy ("... GoogleImageProxy",
// Gmail fetches the pixel when the person opens the message, once per
// open, from Google's ranges) and Yahoo's ("YahooMailProxy"): those opens
// are real; they only hide the reader's IP and device. The default list
// leaves them out; an admin pattern that matches them is obeyed.
//
// Pure: no clock (the caller passes the seconds since dispatch), no I/O.
// A MachineDetector is immutable after create() and thread-safe.

#include "core/net.hpp"
#include "core/units.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace re2 {
class RE2;
}

namespace ember::feedback {

// "click:" before a pattern: it judges clicks only.
inline constexpr std::string_view kClickOnly = "click:";

// The default User-Agent patterns (RE2 syntax).
[[nodiscard]] std::vector<std::string> default_machine_user_agents();

struct MachineConfig {
    core::Duration click_window = std::chrono::seconds(10);
    std::vector<std::string> user_agents = default_machine_user_agents();
    std::vector<core::Cidr> networks;
};

struct TrackingHit {
    bool click = false;
    std::string_view method = "GET";
    std::string_view user_agent;             // "" when the header was absent
    std::optional<core::IpAddress> ip;       // the client
    std::int64_t seconds_since_dispatch = 0; // may be negative (clock skew): not fast
};

struct MachineVerdict {
    bool machine = false;
    std::string reason; // "" for a person; else the rule's name, see above
};

class MachineDetector {
public:
    // nullopt and `error` naming the pattern when one does not compile.
    [[nodiscard]] static std::optional<MachineDetector> create(const MachineConfig& config,
                                                               std::string& error);
    [[nodiscard]] MachineVerdict classify(const TrackingHit& hit) const;

private:
    MachineDetector() = default;
    MachineConfig config_;
    struct Pattern {
        bool click_only = false;
        std::shared_ptr<const re2::RE2> re;
    };
    std::vector<Pattern> patterns_; // parallel to config_.user_agents
};

// One pattern's compile error ("" when it compiles): the config check.
[[nodiscard]] std::string check_user_agent_pattern(std::string_view pattern);

} // namespace ember::feedback
