#pragma once
// The one place OpenSSL is set up: server contexts for STARTTLS and implicit
// TLS listeners (TLS 1.2 or newer, no compression, no renegotiation, server
// cipher preference) and the "TLSv1.3 TLS_AES_256_GCM_SHA384" description
// that goes into Received: and the logs. Client contexts join in the
// delivery issue. Contexts are immutable once built; reload builds new ones.

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <string>

using SSL = struct ssl_st;

namespace ember::smtp {

struct TlsFiles {
    std::string cert;                // PEM chain, leaf first
    std::string key;                 // PEM private key
    std::string min_version = "1.2"; // "1.2" or "1.3"
};

// nullptr and a human-readable `error` ("cert.pem: no such file", "key does
// not match certificate", ...) when the files cannot be used.
[[nodiscard]] std::shared_ptr<boost::asio::ssl::context>
make_server_tls_context(const TlsFiles& files, std::string& error);

[[nodiscard]] std::string describe_tls(const SSL* ssl);

} // namespace ember::smtp

// --- Client side (the delivery agent) ---
// One client context for all outbound connections: TLS 1.2 or newer, no
// compression, the system CA store (or `ca_file`) loaded for destinations
// whose policy requires verification. Verification is switched on per
// connection (prepare_client_tls), never in the context, so opportunistic
// destinations share it (RFC 7435: unauthenticated encryption beats none).

namespace ember::smtp {

// nullptr and `error` set when OpenSSL cannot build it or `ca_file` fails.
[[nodiscard]] std::shared_ptr<boost::asio::ssl::context>
make_client_tls_context(const std::string& ca_file, std::string& error);

// Per connection, before the handshake: SNI with `server_name` (omitted for
// IP literals, RFC 6066 3), and when `verify` is set, peer verification
// against the CA store with the certificate matched to `server_name`
// (RFC 6125 via X509_VERIFY_PARAM_set1_host: DNS-ID subjectAltNames, a
// wildcard only as the whole left-most label; an IP literal matches an IP
// SAN). False and `error` set when OpenSSL refuses the settings.
[[nodiscard]] bool prepare_client_tls(SSL* ssl, const std::string& server_name, bool verify,
                                      std::string& error);

// After a failed handshake: OpenSSL's certificate verification result as
// an error code whose message() says why ("certificate verification failed:
// hostname mismatch"), or a success code when the certificate was not the
// problem.
[[nodiscard]] boost::system::error_code verification_error(const SSL* ssl);

} // namespace ember::smtp
