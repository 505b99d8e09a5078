#include "feedback/tokens.hpp"

#include "queue/record.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <climits>
#include <cstdint>
#include <set>

namespace ember::feedback {
namespace {

using Bytes = std::string; // octets; std::string keeps the code free of casts at call sites

constexpr std::uint8_t kVersion = 1;
constexpr std::size_t kShortMac = 10;    // 80 bits: VERP, mailto, X-Ember-ID
constexpr std::size_t kLongMac = 16;     // 128 bits: URL tokens have room
constexpr std::size_t kMaxAddress = 254; // RFC 5321 4.5.3.1.3 path minus the brackets

// Domain separation: one label per kind of token.
constexpr std::string_view kVerpLabel = "ember-verp-v1";
constexpr std::string_view kUrlLabel = "ember-unsubscribe-url-v1";
constexpr std::string_view kMailtoLabel = "ember-unsubscribe-mailto-v1";
constexpr std::string_view kEmberIdLabel = "ember-id-v1";
constexpr std::string_view kTrackingLabel = "ember-tracking-v1";
constexpr std::size_t kTrackingMac = 12; // 96 bits, see tokens.hpp

constexpr std::string_view kBase32 = "abcdefghijklmnopqrstuvwxyz234567";
constexpr std::string_view kBase64Url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string lower_domain(std::string_view domain) {
    while (!domain.empty() && domain.back() == '.')
        domain.remove_suffix(1);
    return lower(domain);
}

std::array<unsigned char, 32> sha256(std::string_view data) {
    std::array<unsigned char, 32> out{};
    unsigned int size = 0;
    EVP_Digest(data.data(), data.size(), out.data(), &size, EVP_sha256(), nullptr);
    return out;
}

std::uint32_t hash32(std::string_view data) {
    const auto digest = sha256(data);
    return (std::uint32_t{digest[0]} << 24) | (std::uint32_t{digest[1]} << 16) |
           (std::uint32_t{digest[2]} << 8) | std::uint32_t{digest[3]};
}

Bytes hmac(const TokenKey& key, std::string_view label, std::string_view payload) {
    std::string input;
    input.reserve(label.size() + 1 + payload.size());
    input.append(label).push_back('\0');
    input.append(payload);
    std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
    unsigned int size = 0;
    HMAC(EVP_sha256(), key.secret.data(), static_cast<int>(key.secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), out.data(), &size);
    return Bytes(reinterpret_cast<const char*>(out.data()), size);
}

// The key whose MAC (truncated to mac.size()) matches, compared in constant
// time; nullptr when none does.
const TokenKey* verify_mac(std::span<const TokenKey> keys, std::string_view label,
                           std::string_view payload, std::string_view mac) {
    for (const auto& key : keys) {
        const auto want = hmac(key, label, payload);
        if (mac.size() <= want.size() && CRYPTO_memcmp(want.data(), mac.data(), mac.size()) == 0)
            return &key;
    }
    return nullptr;
}

void put_u32(Bytes& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((v >> shift) & 0xff));
}

void put_u64(Bytes& out, std::uint64_t v) {
    for (int shift = 56; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((v >> shift) & 0xff));
}

void put_leb128_64(Bytes& out, std::uint64_t v) {
    do {
        auto byte = static_cast<std::uint8_t>(v & 0x7f);
        v >>= 7;
        if (v != 0)
            byte |= 0x80;
        out.push_back(static_cast<char>(byte));
    } while (v != 0);
}

void put_leb128(Bytes& out, std::uint32_t v) {
    put_leb128_64(out, v);
}

// Fixed-width big-endian read; false when the input is too short.
template <typename T> bool get_be(std::string_view& in, T& value) {
    if (in.size() < sizeof(T))
        return false;
    value = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i)
        value = static_cast<T>((value << 8) | static_cast<unsigned char>(in[i]));
    in.remove_prefix(sizeof(T));
    return true;
}

// Canonical LEB128 only (no redundant trailing zero groups), so one value
// has one spelling; at most 9 groups (63 bits).
bool get_leb128_64(std::string_view& in, std::uint64_t& value) {
    value = 0;
    for (std::size_t i = 0; i < 9 && i < in.size(); ++i) {
        const auto byte = static_cast<unsigned char>(in[i]);
        value |= static_cast<std::uint64_t>(byte & 0x7f) << (7 * i);
        if ((byte & 0x80) == 0) {
            if (i > 0 && byte == 0)
                return false;
            in.remove_prefix(i + 1);
            return true;
        }
    }
    return false;
}

// The same for a 32-bit value: a canonical encoding of a larger value is
// refused (5 groups at most, the last below 0x10).
bool get_leb128(std::string_view& in, std::uint32_t& value) {
    auto rest = in;
    std::uint64_t wide = 0;
    if (!get_leb128_64(rest, wide) || wide > 0xffffffffu)
        return false;
    in = rest;
    value = static_cast<std::uint32_t>(wide);
    return true;
}

std::string base32_encode(std::string_view bytes) {
    std::string out;
    std::uint32_t buffer = 0;
    int bits = 0;
    for (const char c : bytes) {
        buffer = (buffer << 8) | static_cast<unsigned char>(c);
        bits += 8;
        while (bits >= 5) {
            out.push_back(kBase32[(buffer >> (bits - 5)) & 31]);
            bits -= 5;
        }
    }
    if (bits > 0)
        out.push_back(kBase32[(buffer << (5 - bits)) & 31]);
    return out;
}

// Strict: only the alphabet (either case), and the unused low bits of the
// last character must be zero, so a token has exactly one spelling per case.
std::optional<Bytes> base32_decode(std::string_view text) {
    Bytes out;
    std::uint32_t buffer = 0;
    int bits = 0;
    for (const char c : text) {
        const auto pos =
            kBase32.find(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
        if (pos == std::string_view::npos)
            return std::nullopt;
        buffer = ((buffer << 5) | static_cast<std::uint32_t>(pos)) & 0xffff;
        bits += 5;
        if (bits >= 8) {
            out.push_back(static_cast<char>((buffer >> (bits - 8)) & 0xff));
            bits -= 8;
        }
    }
    if (bits >= 5 || (buffer & ((1u << bits) - 1)) != 0)
        return std::nullopt;
    return out;
}

std::string base64url_encode(std::string_view bytes) {
    std::string out;
    std::uint32_t buffer = 0;
    int bits = 0;
    for (const char c : bytes) {
        buffer = (buffer << 8) | static_cast<unsigned char>(c);
        bits += 8;
        while (bits >= 6) {
            out.push_back(kBase64Url[(buffer >> (bits - 6)) & 63]);
            bits -= 6;
        }
    }
    if (bits > 0)
        out.push_back(kBase64Url[(buffer << (6 - bits)) & 63]);
    return out;
}

std::optional<Bytes> base64url_decode(std::string_view text) {
    Bytes out;
    std::uint32_t buffer = 0;
    int bits = 0;
    for (const char c : text) {
        const auto pos = kBase64Url.find(c);
        if (pos == std::string_view::npos)
            return std::nullopt;
        buffer = ((buffer << 6) | static_cast<std::uint32_t>(pos)) & 0xffff;
        bits += 6;
        if (bits >= 8) {
            out.push_back(static_cast<char>((buffer >> (bits - 8)) & 0xff));
            bits -= 8;
        }
    }
    if (bits >= 6 || (buffer & ((1u << bits) - 1)) != 0)
        return std::nullopt;
    return out;
}

bool valid_key_id(std::string_view id) {
    return !id.empty() && id.size() <= 32 && std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    });
}

Bytes verp_payload(const VerpId& id) {
    Bytes out;
    out.push_back(static_cast<char>(kVersion));
    put_u64(out, id.queue_id);
    put_leb128(out, id.recipient_index);
    put_u32(out, id.domain_hash);
    put_u32(out, id.address_hash);
    return out;
}

Bytes mailto_payload(std::uint32_t dhash, std::string_view address, std::string_view domain) {
    Bytes out;
    out.push_back(static_cast<char>(kVersion));
    put_u32(out, dhash);
    out.append(address).push_back('\0');
    out.append(domain);
    return out;
}

Bytes ember_id_payload(std::uint64_t queue_id, std::uint32_t index, std::string_view address) {
    Bytes out;
    put_u64(out, queue_id);
    put_u32(out, index);
    out.append(address);
    return out;
}

void put_string(Bytes& out, std::string_view text) {
    put_leb128_64(out, text.size());
    out.append(text);
}

bool get_string(std::string_view& in, std::string& text) {
    std::uint64_t size = 0;
    if (!get_leb128_64(in, size) || size > in.size())
        return false;
    text.assign(in.substr(0, size));
    in.remove_prefix(size);
    return true;
}

Bytes tracking_payload(const TrackingId& id) {
    Bytes out;
    out.push_back(static_cast<char>(kVersion));
    out.push_back(static_cast<char>(id.kind));
    put_u64(out, id.queue_id);
    put_leb128_64(out, static_cast<std::uint64_t>(std::max<std::int64_t>(id.dispatched_at, 0)));
    put_string(out, id.recipient);
    put_string(out, lower_domain(id.sending_domain));
    put_string(out, id.campaign);
    put_string(out, id.ab_test);
    put_string(out, id.variant);
    if (id.kind == TrackingKind::Click)
        put_string(out, id.url);
    return out;
}

// The fields after version and kind; false when they do not fill `in` exactly.
bool read_tracking_fields(std::string_view in, TrackingId& id) {
    std::uint64_t at = 0;
    if (!get_be(in, id.queue_id) || !get_leb128_64(in, at) || at > INT64_MAX)
        return false;
    id.dispatched_at = static_cast<std::int64_t>(at);
    const bool read = get_string(in, id.recipient) && get_string(in, id.sending_domain) &&
                      get_string(in, id.campaign) && get_string(in, id.ab_test) &&
                      get_string(in, id.variant) &&
                      (id.kind != TrackingKind::Click || get_string(in, id.url));
    return read && in.empty();
}

bool all_digits(std::string_view text) {
    return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c));
    });
}

} // namespace

std::optional<TokenKey> parse_token_key(std::string_view spec, std::string& error) {
    const auto colon = spec.find(':');
    if (colon == std::string_view::npos) {
        error = "token key must be \"id:secret\"";
        return std::nullopt;
    }
    TokenKey key{std::string(spec.substr(0, colon)), std::string(spec.substr(colon + 1))};
    if (!valid_key_id(key.id)) {
        error = "token key id must be 1 to 32 of A-Z a-z 0-9 . _ -";
        return std::nullopt;
    }
    if (key.secret.size() < kMinSecretSize) {
        error = "token key secret must be at least 16 octets (try: openssl rand -hex 32)";
        return std::nullopt;
    }
    return key;
}

std::string_view token_status_name(TokenStatus status) {
    switch (status) {
    case TokenStatus::Ok:
        return "ok";
    case TokenStatus::Malformed:
        return "malformed";
    case TokenStatus::UnknownVersion:
        return "unknown-version";
    case TokenStatus::BadSignature:
        return "bad-signature";
    }
    return "malformed";
}

std::uint32_t domain_hash(std::string_view domain) {
    return hash32(lower_domain(domain));
}
std::uint32_t address_hash(std::string_view address) {
    return hash32(lower(address));
}

VerpId make_verp_id(std::uint64_t queue_id, std::uint32_t recipient_index,
                    std::string_view sending_domain, std::string_view recipient) {
    return {queue_id, recipient_index, domain_hash(sending_domain), address_hash(recipient)};
}

std::optional<TokenSigner> TokenSigner::create(std::vector<TokenKey> keys, std::string& error) {
    if (keys.empty()) {
        error = "at least one token key is needed";
        return std::nullopt;
    }
    std::set<std::string> ids;
    for (const auto& key : keys) {
        if (!valid_key_id(key.id)) {
            error = "token key id must be 1 to 32 of A-Z a-z 0-9 . _ -";
            return std::nullopt;
        }
        if (key.secret.size() < kMinSecretSize) {
            error = "token key \"" + key.id + "\": secret must be at least 16 octets";
            return std::nullopt;
        }
        if (!ids.insert(key.id).second) {
            error = "token key id \"" + key.id + "\" is used twice";
            return std::nullopt;
        }
    }
    return TokenSigner(std::move(keys));
}

// ---- VERP ----

std::string TokenSigner::verp_token(const VerpId& id) const {
    auto payload = verp_payload(id);
    const auto mac = hmac(keys_.front(), kVerpLabel, payload);
    payload.append(mac, 0, kShortMac);
    return base32_encode(payload);
}

std::string TokenSigner::verp_address(std::string_view local_part, const VerpId& id,
                                      std::string_view bounce_domain) const {
    std::string out(local_part);
    out.push_back('+');
    out += verp_token(id);
    out.push_back('@');
    out += lower_domain(bounce_domain);
    return out;
}

VerpCheck TokenSigner::verify_verp(std::string_view token) const {
    VerpCheck check;
    const auto bytes = base32_decode(token);
    if (!bytes || bytes->size() < 1 + 8 + 1 + 4 + 4 + kShortMac)
        return check;
    std::string_view in(*bytes);
    if (static_cast<std::uint8_t>(in[0]) != kVersion) {
        check.status = TokenStatus::UnknownVersion;
        return check;
    }
    in.remove_prefix(1);
    VerpId id;
    const bool read = get_be(in, id.queue_id) && get_leb128(in, id.recipient_index) &&
                      get_be(in, id.domain_hash) && get_be(in, id.address_hash);
    if (!read || in.size() != kShortMac)
        return check;
    const auto signed_part = std::string_view(*bytes).substr(0, bytes->size() - kShortMac);
    const auto* key = verify_mac(keys_, kVerpLabel, signed_part, in);
    if (key == nullptr) {
        check.status = TokenStatus::BadSignature;
        return check;
    }
    check.status = TokenStatus::Ok;
    check.id = id;
    check.key_id = key->id;
    return check;
}

// ---- Unsubscribe: URL ----

std::string TokenSigner::unsubscribe_url_token(std::string_view address,
                                               std::string_view sending_domain) const {
    const auto addr = lower(address.substr(0, std::min(address.size(), kMaxAddress)));
    Bytes payload;
    payload.push_back(static_cast<char>(kVersion));
    payload.push_back(static_cast<char>(addr.size()));
    payload += addr;
    payload += lower_domain(sending_domain);
    const auto mac = hmac(keys_.front(), kUrlLabel, payload);
    payload.append(mac, 0, kLongMac);
    return base64url_encode(payload);
}

UnsubscribeCheck TokenSigner::verify_unsubscribe_url_token(std::string_view token) const {
    UnsubscribeCheck check;
    const auto bytes = base64url_decode(token);
    if (!bytes || bytes->size() < 2 + kLongMac)
        return check;
    const std::string_view in(*bytes);
    if (static_cast<std::uint8_t>(in[0]) != kVersion) {
        check.status = TokenStatus::UnknownVersion;
        return check;
    }
    const auto addr_size = static_cast<unsigned char>(in[1]);
    const auto body = in.substr(2, in.size() - 2 - kLongMac);
    if (addr_size == 0 || addr_size > body.size())
        return check;
    const auto* key = verify_mac(keys_, kUrlLabel, in.substr(0, in.size() - kLongMac),
                                 in.substr(in.size() - kLongMac));
    if (key == nullptr) {
        check.status = TokenStatus::BadSignature;
        return check;
    }
    check.status = TokenStatus::Ok;
    check.who = {std::string(body.substr(0, addr_size)), std::string(body.substr(addr_size))};
    check.key_id = key->id;
    return check;
}

// ---- Unsubscribe: mailto ----

std::string TokenSigner::unsubscribe_mailto_token(std::string_view address,
                                                  std::string_view sending_domain) const {
    const auto domain = lower_domain(sending_domain);
    const auto dhash = hash32(domain);
    const auto mac =
        hmac(keys_.front(), kMailtoLabel, mailto_payload(dhash, lower(address), domain));
    Bytes token;
    token.push_back(static_cast<char>(kVersion));
    put_u32(token, dhash);
    token.append(mac, 0, kShortMac);
    return base32_encode(token);
}

TokenStatus TokenSigner::mailto_token_shape(std::string_view token) {
    const auto bytes = base32_decode(token);
    if (!bytes || bytes->size() != 1 + 4 + kShortMac)
        return TokenStatus::Malformed;
    return static_cast<std::uint8_t>((*bytes)[0]) == kVersion ? TokenStatus::Ok
                                                              : TokenStatus::UnknownVersion;
}

UnsubscribeCheck
TokenSigner::verify_unsubscribe_mailto_token(std::string_view token,
                                             std::span<const std::string> candidate_addresses,
                                             std::span<const std::string> candidate_domains) const {
    UnsubscribeCheck check;
    check.status = mailto_token_shape(token);
    if (check.status != TokenStatus::Ok)
        return check;
    const auto bytes = *base32_decode(token);
    std::string_view in(bytes);
    in.remove_prefix(1);
    std::uint32_t dhash = 0;
    (void)get_be(in, dhash); // the shape check guaranteed the length
    check.status = TokenStatus::BadSignature;
    for (const auto& candidate_domain : candidate_domains) {
        const auto domain = lower_domain(candidate_domain);
        if (hash32(domain) != dhash)
            continue;
        for (const auto& candidate : candidate_addresses) {
            const auto address = lower(candidate);
            const auto* key =
                verify_mac(keys_, kMailtoLabel, mailto_payload(dhash, address, domain), in);
            if (key != nullptr) {
                check.status = TokenStatus::Ok;
                check.who = {address, domain};
                check.key_id = key->id;
                return check;
            }
        }
    }
    return check;
}

// ---- Open and click tracking ----

std::string TokenSigner::tracking_token(const TrackingId& id) const {
    auto payload = tracking_payload(id);
    const auto mac = hmac(keys_.front(), kTrackingLabel, payload);
    payload.append(mac, 0, kTrackingMac);
    return base64url_encode(payload);
}

TrackingCheck TokenSigner::verify_tracking_token(std::string_view token) const {
    TrackingCheck check;
    if (token.size() > kMaxTrackingToken)
        return check;
    const auto bytes = base64url_decode(token);
    if (!bytes || bytes->size() < 2 + 8 + 1 + 5 + kTrackingMac)
        return check;
    const std::string_view in(*bytes);
    if (static_cast<std::uint8_t>(in[0]) != kVersion) {
        check.status = TokenStatus::UnknownVersion;
        return check;
    }
    const auto kind = static_cast<std::uint8_t>(in[1]);
    if (kind > static_cast<std::uint8_t>(TrackingKind::Click))
        return check;
    TrackingId id;
    id.kind = static_cast<TrackingKind>(kind);
    const auto signed_part = in.substr(0, in.size() - kTrackingMac);
    if (!read_tracking_fields(signed_part.substr(2), id))
        return check;
    const auto* key = verify_mac(keys_, kTrackingLabel, signed_part, in.substr(signed_part.size()));
    if (key == nullptr) {
        check.status = TokenStatus::BadSignature;
        return check;
    }
    check.status = TokenStatus::Ok;
    check.id = std::move(id);
    check.key_id = key->id;
    return check;
}

// ---- X-Ember-ID ----

std::string TokenSigner::ember_id(std::uint64_t queue_id, std::uint32_t recipient_index,
                                  std::string_view recipient) const {
    const auto mac = hmac(keys_.front(), kEmberIdLabel,
                          ember_id_payload(queue_id, recipient_index, lower(recipient)));
    return queue::format_queue_id(queue_id) + "." + std::to_string(recipient_index) + "." +
           base32_encode(std::string_view(mac).substr(0, kShortMac));
}

EmberIdCheck TokenSigner::verify_ember_id(std::string_view value,
                                          std::span<const std::string> candidates) const {
    EmberIdCheck check;
    const auto first_dot = value.find('.');
    const auto id = queue::parse_queue_id(value.substr(0, first_dot));
    if (!id)
        return check;
    if (first_dot == std::string_view::npos) {
        check.parsed = true;
        check.queue_id = *id;
        return check;
    }
    const auto rest = value.substr(first_dot + 1);
    const auto second_dot = rest.find('.');
    const auto index_text = rest.substr(0, second_dot);
    std::uint32_t index = 0;
    const auto [end, ec] =
        std::from_chars(index_text.data(), index_text.data() + index_text.size(), index);
    if (!all_digits(index_text) || ec != std::errc() ||
        end != index_text.data() + index_text.size())
        return check;
    check.parsed = true;
    check.queue_id = *id;
    check.recipient_index = index;
    if (second_dot == std::string_view::npos)
        return check;
    const auto mac = base32_decode(rest.substr(second_dot + 1));
    if (!mac || mac->size() != kShortMac)
        return check;
    for (const auto& candidate : candidates) {
        const auto address = lower(candidate);
        if (verify_mac(keys_, kEmberIdLabel, ember_id_payload(*id, index, address), *mac) !=
            nullptr) {
            check.verified = true;
            check.recipient = address;
            return check;
        }
    }
    return check;
}

// ---- Headers ----

ListUnsubscribe list_unsubscribe_headers(std::string_view public_url, std::string_view url_token,
                                         std::string_view mailto_local_part,
                                         std::string_view mailto_token,
                                         std::string_view mailto_domain) {
    ListUnsubscribe out;
    if (!public_url.empty() && !url_token.empty()) {
        std::string url(public_url);
        if (url.back() != '/')
            url.push_back('/');
        url += "u/";
        url += url_token;
        out.list_unsubscribe = "<" + url + ">";
        if (lower(public_url.substr(0, 8)) == "https://")
            out.list_unsubscribe_post = "List-Unsubscribe=One-Click";
    }
    if (!mailto_domain.empty() && !mailto_token.empty()) {
        if (!out.list_unsubscribe.empty())
            out.list_unsubscribe += ", ";
        out.list_unsubscribe += "<mailto:";
        out.list_unsubscribe += mailto_local_part;
        out.list_unsubscribe += "+";
        out.list_unsubscribe += mailto_token;
        out.list_unsubscribe += "@";
        out.list_unsubscribe += lower_domain(mailto_domain);
        out.list_unsubscribe += ">";
    }
    return out;
}

ListUnsubscribe list_unsubscribe_for(const TokenSigner& signer, std::string_view address,
                                     std::string_view sending_domain, std::string_view public_url,
                                     std::string_view mailto_domain,
                                     std::string_view mailto_local_part) {
    const auto url_token =
        public_url.empty() ? std::string() : signer.unsubscribe_url_token(address, sending_domain);
    const auto mailto_token = mailto_domain.empty()
                                  ? std::string()
                                  : signer.unsubscribe_mailto_token(address, sending_domain);
    return list_unsubscribe_headers(public_url, url_token, mailto_local_part, mailto_token,
                                    mailto_domain);
}

} // namespace ember::feedback
