#pragma once
// The human-readable side of a bounce: the text an MTA writes for people,
// which is all there is when it sends no RFC 3464 report (qmail, Exim,
// older Postfix and Sendmail, Exchange, Gmail, Yahoo, Courier, Domino,
// OpenSMTPD, DragonFly, ...), and which names the SMTP command and keeps a
// fuller diagnostic when it does.
//
// How it reads: cut the text where the returned message begins (each
// MTA's "--- Below this line is a copy of the message" line or the like);
// find the lines where a recipient address stands as the subject of the
// report (alone, "<a@b>:", "a@b on <date>", "could not be delivered to
// <a@b>", ...); take for each the text up to the next such line as its
// block, and in the block the paragraph that holds the remote server's
// reply (a reply code, an enhanced status), else the first paragraph.
// The known layouts are recognised by their fixed sentences only to name
// the format; the reading itself is the same for all, so a layout this
// file has never seen still yields its recipients in most cases.
//
// Pure; RE2 patterns only (linear time); thread-safe.

#include "feedback/rules.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace ember::feedback {

struct TextRecipient {
    std::string address;
    std::string diagnostic; // one line, whitespace collapsed
    std::string block;      // the recipient's whole block, one line
    Command command = Command::Unknown;
};

struct TextReport {
    std::string format; // "qmail", "exim", "postfix", ... or "text"
    std::vector<TextRecipient> recipients;
    std::string region; // the text read, up to where the returned message begins
    std::string rest;   // from there on (the returned message, when inline)
};

// `text` has LF line ends; HTML should already be reduced (html_to_text).
[[nodiscard]] TextReport read_bounce_text(std::string_view text);

// The family a text's fixed sentences name, or "" when none.
[[nodiscard]] std::string detect_format(std::string_view text);

// The SMTP command a diagnostic says it answered ("in reply to RCPT TO
// command", "after MAIL FROM", ">>> DATA", "(RCPT_TO)", ...).
[[nodiscard]] Command find_command(std::string_view text);

// Tags dropped, block tags to line ends, the common entities decoded.
// Angle-bracketed addresses ("<a@b>") are not tags and stay.
[[nodiscard]] std::string html_to_text(std::string_view html);

} // namespace ember::feedback
