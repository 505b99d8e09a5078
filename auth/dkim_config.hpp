#pragma once
// [[dkim]] entries: which private key signs mail for which domain, with
// which algorithm, when, and how (RFC 6376). One entry is one selector; a
// domain with several entries gets several signatures per message (RSA and
// Ed25519 side by side, RFC 8463 4) or rotates keys with not_before /
// not_after windows.
//
// This header is the typed config only (defaults written once, here) and
// the pure helpers a config table needs to parse and print it. It does no
// I/O: dkim_keys.hpp loads and validates the key files.

#include "core/units.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::auth {

enum class DkimAlgorithm { RsaSha256, Ed25519Sha256 };
enum class DkimCanon { Relaxed, Simple };

// c= header/body (RFC 6376 3.4). relaxed/relaxed survives the whitespace and
// folding changes relays make; simple/simple is offered for receivers that
// insist on it.
struct DkimCanonicalization {
    DkimCanon header = DkimCanon::Relaxed;
    DkimCanon body = DkimCanon::Relaxed;
    friend bool operator==(const DkimCanonicalization&, const DkimCanonicalization&) = default;
};

struct DkimKeyConfig {
    std::string domain;   // d=: the signing domain (ASCII, A-labels), required
    std::string selector; // s=: DNS name selector._domainkey.domain, required
    std::string key;      // path to the PEM private key, required
    DkimAlgorithm algorithm = DkimAlgorithm::RsaSha256;
    // Rotation window in unix seconds: the key signs when
    // not_before <= now < not_after. Unset = open-ended.
    std::optional<std::int64_t> not_before;
    std::optional<std::int64_t> not_after;
    // x= = t= + expire_after (RFC 6376 3.5). Unset = no x= tag: most
    // receivers verify at delivery, and an x= only hurts later re-checks
    // (forwarding, ARC) unless the sender wants exactly that.
    std::optional<core::Duration> expire_after;
    // Header fields to sign instead of kDkimSignedHeaders; must include From
    // (RFC 6376 5.4). Names of kDkimOversignedHeaders in it stay over-signed.
    std::vector<std::string> headers;
    DkimCanonicalization canonicalization;
    // Where the [[dkim]] entry starts in the config file (0: unknown), so
    // key errors at start and at reload point at the right line.
    std::uint32_t line = 0;
};

// The header fields ember signs by default: RFC 6376 5.4.1's list and the
// 8.15 advice (everything that shapes what the reader sees or where replies
// and unsubscribes go), plus List-Unsubscribe-Post (RFC 8058 4 requires it
// signed) and Feedback-ID. Every instance present is signed. Never signed:
// trace and transport fields (Received, Return-Path), other signatures
// (DKIM-Signature, ARC-*), Authentication-Results, Bcc, X-*.
inline constexpr std::array<std::string_view, 30> kDkimSignedHeaders{
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Resent-Date",
    "Resent-From",
    "Resent-Sender",
    "Resent-To",
    "Resent-Cc",
    "Resent-Message-ID",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-ID",
    "Content-Description",
    "Message-ID",
    "Sender",
    "Feedback-ID",
};

// Over-signed (RFC 6376 8.15): listed in h= once more than they occur, so a
// copy added later (a second From or Subject, a forged List-Unsubscribe)
// breaks the signature instead of being shown to the reader.
inline constexpr std::array<std::string_view, 9> kDkimOversignedHeaders{
    "From",     "Subject", "To",         "Date", "List-Unsubscribe", "List-Unsubscribe-Post",
    "Reply-To", "Cc",      "Message-ID",
};

// "rsa-sha256" | "ed25519-sha256".
[[nodiscard]] std::optional<DkimAlgorithm> parse_dkim_algorithm(std::string_view text);
[[nodiscard]] std::string_view dkim_algorithm_name(DkimAlgorithm algorithm);

// "header/body", each "relaxed" or "simple" ("relaxed/relaxed"). The bare
// RFC forms ("relaxed" = relaxed/simple) are refused: they surprise people.
[[nodiscard]] std::optional<DkimCanonicalization>
parse_dkim_canonicalization(std::string_view text);
[[nodiscard]] std::string format_dkim_canonicalization(DkimCanonicalization canon);

// A point in time for not_before / not_after: "2026-03-01" (midnight UTC),
// "2026-03-01T12:00:00Z", "2026-03-01T12:00:00+02:00", or unix seconds.
[[nodiscard]] std::optional<std::int64_t> parse_dkim_time(std::string_view text);
// "2026-03-01T12:00:00Z".
[[nodiscard]] std::string format_dkim_time(std::int64_t unix_seconds);
// Unix seconds of a UTC civil time (proleptic Gregorian), for TOML dates.
[[nodiscard]] std::int64_t unix_time_utc(int year, int month, int day, int hour = 0, int minute = 0,
                                         int second = 0);

// A hostname of at least two labels: letters, digits, '-' (not at a label's
// ends), labels of 1..63 octets, 253 octets in all. Case-insensitive.
[[nodiscard]] bool valid_dkim_domain(std::string_view domain);
// RFC 6376 3.1: sub-domain *("." sub-domain), same label rules, 1+ labels.
[[nodiscard]] bool valid_dkim_selector(std::string_view selector);
// RFC 5322 2.2 field-name: 1*ftext (printable ASCII except ':').
[[nodiscard]] bool valid_header_name(std::string_view name);

// ASCII case-insensitive equality (header names, domains).
[[nodiscard]] bool iequals(std::string_view a, std::string_view b);
[[nodiscard]] std::string ascii_lower(std::string_view text);

} // namespace ember::auth
