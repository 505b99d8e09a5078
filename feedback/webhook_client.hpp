#pragma once
// The webhook's HTTP side: URL parsing, the Stripe-style signature, and one
// HTTP/1.1 POST over Beast (http:// or https://) with a deadline. Used by
// the WebhookOutbox (feedback/webhooks.hpp); the signature functions are
// also what a receiver (or a test) checks a delivery with.
//
// Signature header (documented for webhook receivers, after Stripe's):
//
//   X-Ember-Signature:
//   t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//
// t is the Unix time in seconds when the request was signed; v1 is the
// lowercase hex HMAC-SHA256 (RFC 2104) keyed with the endpoint's secret over
// the octets `t + "." + body`, where body is the exact request body. A
// receiver recomputes v1 over the raw body, compares in constant time, and
// refuses a t too far from its clock (replays). More v1= items may follow
// in a later version (secret rotation): accept the request if any matches.
//
// post_json() is one request on a fresh connection (Connection: close):
// resolve, connect, TLS handshake, write, read the response header, all
// under one deadline; errors are values, nothing throws. For https the peer
// certificate is verified against the context's trust store and the URL's
// host name (RFC 6125 via OpenSSL's host check), SNI is sent for names.
// Runs on the executor it is given.

#include "core/units.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ember::feedback {

struct HttpTarget {
    bool tls = false;
    std::string host;        // name or IP literal, without brackets
    std::string port;        // "443"
    std::string target;      // path and query: "/hooks/ember?x=1"
    std::string host_header; // "example.com:8443" (the port only when not the default)
};

// http:// and https:// URLs with a host; nullopt and `error` otherwise
// (user info is refused: secrets belong in `secret`, not in a URL).
[[nodiscard]] std::optional<HttpTarget> parse_webhook_url(std::string_view url, std::string& error);

// "t=UNIX,v1=HEX": the X-Ember-Signature value for `body` signed at `unix_seconds`.
[[nodiscard]] std::string webhook_signature(std::string_view secret, std::int64_t unix_seconds,
                                            std::string_view body);

// True when `header` carries a v1 matching `body` under `secret` and its t
// is within `tolerance_seconds` of `now_unix_seconds`.
[[nodiscard]] bool verify_webhook_signature(std::string_view header, std::string_view secret,
                                            std::string_view body, std::int64_t now_unix_seconds,
                                            std::int64_t tolerance_seconds = 300);

// A TLS client context for webhook endpoints: TLS 1.2 or newer, peer
// verification on, trust anchors from `ca_file` (PEM) or, when empty, the
// system store. nullptr and `error` when the file cannot be loaded.
[[nodiscard]] std::shared_ptr<boost::asio::ssl::context>
make_webhook_tls_context(const std::string& ca_file, std::string& error);

struct PostResult {
    unsigned status = 0; // HTTP status; 0 when no response was read
    std::string error;   // why, when status == 0 ("connect: Connection refused", "timeout")
    [[nodiscard]] bool ok() const { return status >= 200 && status < 300; }
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// One POST of `body` (Content-Type: application/json) with `headers`.
// `tls_context` is required when target.tls is set.
[[nodiscard]] boost::asio::awaitable<PostResult>
post_json(boost::asio::any_io_executor executor, HttpTarget target,
          std::shared_ptr<boost::asio::ssl::context> tls_context, HttpHeaders headers,
          std::string body, core::Duration timeout);

} // namespace ember::feedback
