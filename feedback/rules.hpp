#pragma once
// Bounce classification rules: an ordered list, first match wins, loaded
// from TOML (etc/bounce-rules.toml, compiled into the library as the
// built-in table, plus admin files read after it whose rules win).
//
//   [[rule]]
//   reason  = "userunknown"          # Sisimai vocabulary (feedback/reason.hpp)
//   pattern = "no such (user|mailbox)"   # RE2, case-insensitive, unanchored
//   status  = "x.1.1"                # optional: enhanced status, per component
//                                    # ("5", "x.7", "5.7.1"; x = any class)
//   code    = "55"                   # optional: reply code prefix ("5", "55", "550")
//   command = ["RCPT"]               # optional: CONN EHLO STARTTLS AUTH MAIL RCPT DATA
//   hard    = false                  # optional: overrides the reason's default
//   use     = "user_unknown"         # instead of pattern: a pattern named in the
//                                    # file's [patterns] table (name = "regex")
//
// A rule needs at least one of pattern, status, code. All given conditions
// must hold. Patterns run on the reply text with whitespace runs collapsed
// to one space; RE2 keeps matching linear in the text, whatever an admin
// writes. Evaluation order: the rules of the last file loaded first (an
// admin file overrides what precedes it), within a file top to bottom.
//
// Immutable after loading; matching is thread-safe.

#include "core/diagnostics.hpp"
#include "feedback/reason.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::feedback {

// The SMTP step a reply answered; some texts mean different things at MAIL
// (the sender is refused) and at RCPT (the recipient is).
enum class Command : std::uint8_t { Unknown, Connect, Ehlo, StartTls, Auth, Mail, Rcpt, Data };

// "CONN", "EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA" ("" for Unknown).
[[nodiscard]] std::string_view command_name(Command command);
// Accepts those names and the longer spellings seen in bounces and in
// core::Outcome::command: "RCPT TO", "MAIL FROM", "end of data", "BDAT",
// "HELO", "LHLO", "connect", "greeting", "initial connection". Case-insensitive.
[[nodiscard]] Command parse_command(std::string_view text);

// What a rule is matched against.
struct ReplyFacts {
    int code = 0;            // 0 when unknown
    std::string_view status; // "5.1.1", or empty
    std::string_view text;   // whitespace already collapsed (see normalize_text)
    Command command = Command::Unknown;
};

struct Rule {
    Reason reason = Reason::Undefined;
    std::string pattern;           // empty: any text
    std::string status;            // empty: any status
    std::string code;              // empty: any code
    std::vector<Command> commands; // empty: any command
    std::optional<bool> hard;      // unset: default_hard(reason)
    std::string origin;            // "file:line" for diagnostics and `classify --json`
};

class Rules {
public:
    Rules();
    ~Rules();
    Rules(Rules&&) noexcept;
    Rules& operator=(Rules&&) noexcept;
    Rules(const Rules&) = delete;
    Rules& operator=(const Rules&) = delete;

    // The shipped etc/bounce-rules.toml, compiled in; parsed once.
    [[nodiscard]] static const Rules& builtin();
    // The text of that file, for tests and `emberctl classify --dump-rules`.
    [[nodiscard]] static std::string_view builtin_text();

    // Parses one TOML rules document. `name` is used in origins and
    // diagnostics. Every bad rule is reported (file:line) and skipped.
    [[nodiscard]] static Rules parse(std::string_view toml_text, const std::string& name,
                                     core::Diagnostics& diag);

    // The built-in table (unless with_builtin is false), then each file in
    // order; a later file's rules are tried before an earlier one's.
    [[nodiscard]] static Rules load(const std::vector<std::string>& paths, core::Diagnostics& diag,
                                    bool with_builtin = true);

    // Puts `other`'s rules in front of this object's (they win).
    void prepend(Rules&& other);

    // The first rule whose conditions all hold, or null.
    [[nodiscard]] const Rule* match(const ReplyFacts& facts) const;

    [[nodiscard]] std::size_t size() const { return rules_.size(); }
    [[nodiscard]] const std::vector<Rule>& rules() const { return rules_; }

private:
    struct Compiled; // RE2 objects and one RE2::Set over every pattern
    void compile();

    std::vector<Rule> rules_;
    std::unique_ptr<Compiled> compiled_;
};

// Collapses every run of whitespace (CR, LF, tabs included) to one space,
// trims, and replaces bytes that are not valid UTF-8 with '?', so a
// pattern sees one clean line however the bounce wrapped it.
[[nodiscard]] std::string normalize_text(std::string_view text);

// True when the status pattern ("x.7", "5.1.1", "4") matches `status`.
[[nodiscard]] bool status_matches(std::string_view pattern, std::string_view status);

} // namespace ember::feedback
