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
