#pragma once
// Signed tokens that let mail coming back to ember be trusted without a
// database lookup: VERP return paths, one-click unsubscribe URLs and
// mailto addresses, the X-Ember-ID trace header, and open/click tracking
// URLs. Every token carries
// an HMAC-SHA256 (OpenSSL) under one of a rotatable list of keys: the first
// key signs, every key verifies, so an admin rotates by putting a new key
// first and dropping the old one once mail signed with it has stopped
// coming back (bounces: days; unsubscribe links: months).
//
// Does not: store anything, look up messages, decide what a token means
// for the suppression list (feedback/inbound.hpp and the daemon do that),
// or build whole messages. Keys and tokens are never logged here.
//
// Pure apart from OpenSSL's HMAC; a TokenSigner is immutable after
// create() and safe to share between threads.
//
// Formats (all MACs are HMAC-SHA256 under a per-kind label, so a token of
// one kind never verifies as another):
//   VERP       bounces+TOKEN@bounce.domain; TOKEN is lower-case base32
//              (RFC 4648 alphabet, no padding) of
//              version(1) queue-id(8) rcpt-index(LEB128) domain-hash(4)
//              address-hash(4) mac(10): 45 characters for a small index, so
//              the local part stays under RFC 5321's 64 octets (4.5.3.1.1)
//              and survives a receiver that lower-cases it.
//   URL unsub  base64url (RFC 4648 section 5, no padding) of
//              version(1) address-length(1) address domain mac(16); it
//              carries the address and sending domain so the HTTP handler
//              suppresses without a lookup.
//   mailto     unsubscribe+TOKEN@domain; base32 of version(1)
//              domain-hash(4) mac(10) over address and domain. A full
//              address does not fit in 64 octets of local part, so this token
//              only proves "issued for this address": it is checked against
//              the address the unsubscribe mail comes from (a mail client
//              sends it from the recipient's own account; a forwarded copy
//              unsubscribes nobody, which is what we want).
//   X-Ember-ID QUEUEID.INDEX.MAC: the 13-character queue id, the recipient
//              index in decimal, and an 80-bit MAC over both and the
//              recipient address, base32. It maps complaints back when the
//              return path is lost, and the MAC lets a complaint's named
//              recipient be believed.
//   tracking   base64url of version(1) kind(1) queue-id(8)
//              dispatch-time(LEB128 unix seconds) then recipient, sending
//              domain, campaign, ab_test, variant and (clicks) the target
//              URL, each LEB128 length + octets, then mac(12). It carries
//              everything an open or click event needs, so the HTTP
//              handler neither looks up the message nor can be made to
//              redirect anywhere but the signed URL. 96 bits of MAC: a
//              forgery would only fake an event, and every octet here
//              lengthens every link of every message (typically 110 to 200
//              characters with a URL).
// Address hashes and MAC inputs use the address lower-cased in full (see
// feedback/suppression.hpp for why), domains lower-cased without a
// trailing dot.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ember::feedback {

struct TokenKey {
    std::string id;     // names the key in logs and config: [A-Za-z0-9._-]{1,32}
    std::string secret; // at least kMinSecretSize octets, used as given
};

inline constexpr std::size_t kMinSecretSize = 16;

// "id:secret" (the config form; the secret may contain ':'). nullopt and
// `error` set when the id or the secret is invalid.
[[nodiscard]] std::optional<TokenKey> parse_token_key(std::string_view spec, std::string& error);

enum class TokenStatus : std::uint8_t {
    Ok,
    Malformed,      // not the token's alphabet or shape
    UnknownVersion, // well formed, but a version this build does not read
    BadSignature,   // no key verifies it: forged, tampered, or its key was retired
};
[[nodiscard]] std::string_view token_status_name(TokenStatus status);

// First 32 bits of SHA-256 over the lower-cased domain / address. They are
// identifiers, not secrets: the MAC around them is what makes them true.
[[nodiscard]] std::uint32_t domain_hash(std::string_view domain);
[[nodiscard]] std::uint32_t address_hash(std::string_view address);

// What a VERP token says: which message and recipient (queue::QueueId and
// the index in Message::recipients), and hashes of the sending domain and
// the recipient address, so a bounce naming another recipient than the one
// the token was made for is recognised (an alias, or a forgery by someone
// who received our mail).
struct VerpId {
    std::uint64_t queue_id = 0;
    std::uint32_t recipient_index = 0;
    std::uint32_t domain_hash = 0;
    std::uint32_t address_hash = 0;
    friend bool operator==(const VerpId&, const VerpId&) = default;
};

[[nodiscard]] VerpId make_verp_id(std::uint64_t queue_id, std::uint32_t recipient_index,
                                  std::string_view sending_domain, std::string_view recipient);

struct VerpCheck {
    TokenStatus status = TokenStatus::Malformed;
    VerpId id;
    std::string key_id; // the key that verified it
    [[nodiscard]] bool ok() const { return status == TokenStatus::Ok; }
};

struct Unsubscriber {
    std::string address;        // lower-cased
    std::string sending_domain; // lower-cased
    friend bool operator==(const Unsubscriber&, const Unsubscriber&) = default;
};

struct UnsubscribeCheck {
    TokenStatus status = TokenStatus::Malformed;
    Unsubscriber who;
    std::string key_id;
    [[nodiscard]] bool ok() const { return status == TokenStatus::Ok; }
};

struct EmberIdCheck {
    bool parsed = false; // QUEUEID[.INDEX[.MAC]] read
    std::uint64_t queue_id = 0;
    std::optional<std::uint32_t> recipient_index;
    // The MAC verified for `recipient` (one of the candidates): the header
    // is ours and this is the recipient it was written for.
    bool verified = false;
    std::string recipient;
};

inline constexpr std::string_view kEmberIdHeader = "X-Ember-ID";

// What an open pixel or a click link says. Strings are kept as given (the
// recipient as the envelope spelled it, the domain lower-cased).
enum class TrackingKind : std::uint8_t { Open = 0, Click = 1 };

struct TrackingId {
    TrackingKind kind = TrackingKind::Open;
    std::uint64_t queue_id = 0;
    std::int64_t dispatched_at = 0; // unix seconds: scanners click within seconds of it
    std::string recipient;
    std::string sending_domain;
    std::string campaign;
    std::string ab_test;
    std::string variant;
    std::string url; // clicks: the only place the redirect may go; "" for opens
    friend bool operator==(const TrackingId&, const TrackingId&) = default;
};

struct TrackingCheck {
    TokenStatus status = TokenStatus::Malformed;
    TrackingId id;
    std::string key_id;
    [[nodiscard]] bool ok() const { return status == TokenStatus::Ok; }
};

// Tokens longer than this are Malformed without decoding (a URL of ~6000
// octets still fits; the rewriter leaves longer links alone).
inline constexpr std::size_t kMaxTrackingToken = 8192;

class TokenSigner {
public:
    // At least one key; unique, valid ids; secrets of kMinSecretSize octets
    // or more. The first key signs.
    [[nodiscard]] static std::optional<TokenSigner> create(std::vector<TokenKey> keys,
                                                           std::string& error);

    // ---- VERP ----
    [[nodiscard]] std::string verp_token(const VerpId& id) const;
    // "LOCAL+TOKEN@DOMAIN", e.g. verp_address("bounces", id, "bounce.example.com").
    [[nodiscard]] std::string verp_address(std::string_view local_part, const VerpId& id,
                                           std::string_view bounce_domain) const;
    // Case-insensitive: a receiver may have lower- or upper-cased the local part.
    [[nodiscard]] VerpCheck verify_verp(std::string_view token) const;

    // ---- Unsubscribe ----
    [[nodiscard]] std::string unsubscribe_url_token(std::string_view address,
                                                    std::string_view sending_domain) const;
    [[nodiscard]] UnsubscribeCheck verify_unsubscribe_url_token(std::string_view token) const;

    [[nodiscard]] std::string unsubscribe_mailto_token(std::string_view address,
                                                       std::string_view sending_domain) const;
    // The shape alone (alphabet, length, version): what RCPT TO can check
    // before the sender of the unsubscribe mail is known.
    [[nodiscard]] static TokenStatus mailto_token_shape(std::string_view token);
    // Tries every candidate address against every candidate domain whose
    // hash matches the token's; Ok with the pair that verified.
    [[nodiscard]] UnsubscribeCheck
    verify_unsubscribe_mailto_token(std::string_view token,
                                    std::span<const std::string> candidate_addresses,
                                    std::span<const std::string> candidate_domains) const;

    // ---- Open and click tracking ----
    [[nodiscard]] std::string tracking_token(const TrackingId& id) const;
    [[nodiscard]] TrackingCheck verify_tracking_token(std::string_view token) const;

    // ---- X-Ember-ID ----
    [[nodiscard]] std::string ember_id(std::uint64_t queue_id, std::uint32_t recipient_index,
                                       std::string_view recipient) const;
    // Reads "QUEUEID", "QUEUEID.INDEX" (unsigned; never verified) and
    // "QUEUEID.INDEX.MAC", verifying the MAC against each candidate.
    [[nodiscard]] EmberIdCheck verify_ember_id(std::string_view value,
                                               std::span<const std::string> candidates) const;

    [[nodiscard]] std::string_view signing_key_id() const { return keys_.front().id; }

private:
    explicit TokenSigner(std::vector<TokenKey> keys) : keys_(std::move(keys)) {}
    std::vector<TokenKey> keys_;
};

// RFC 2369 List-Unsubscribe and RFC 8058 List-Unsubscribe-Post values
// (unfolded; the header writer folds them). The HTTPS URL comes first, as
// mailbox providers prefer it for one-click. List-Unsubscribe-Post is set
// only when the URL is https: RFC 8058 section 3.1 requires an HTTPS URI
// for one-click, and a provider seeing the Post field next to a plain http
// URL may distrust the message. Both empty when neither part is given.
struct ListUnsubscribe {
    std::string list_unsubscribe;      // "<https://host/u/TOKEN>, <mailto:unsubscribe+T@d>"
    std::string list_unsubscribe_post; // "List-Unsubscribe=One-Click" or ""
};

// public_url "https://mta.example.com" (a trailing '/' and a path prefix
// are kept: "https://h/mail/" -> "https://h/mail/u/TOKEN"); an empty
// public_url or url_token leaves the URL out, an empty mailto_domain or
// mailto_token leaves the mailto out.
[[nodiscard]] ListUnsubscribe list_unsubscribe_headers(std::string_view public_url,
                                                       std::string_view url_token,
                                                       std::string_view mailto_local_part,
                                                       std::string_view mailto_token,
                                                       std::string_view mailto_domain);

// The headers for one recipient of a bulk message: a URL token and a mailto
// token for (address, sending_domain), signed with the first key, passed to
// list_unsubscribe_headers(). mailto_domain "" leaves the mailto out.
[[nodiscard]] ListUnsubscribe
list_unsubscribe_for(const TokenSigner& signer, std::string_view address,
                     std::string_view sending_domain, std::string_view public_url,
                     std::string_view mailto_domain,
                     std::string_view mailto_local_part = "unsubscribe");

} // namespace ember::feedback
