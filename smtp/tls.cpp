#include "smtp/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace ember::smtp {
namespace {

std::string openssl_error(const std::string& what) {
    const unsigned long code = ERR_get_error();
    ERR_clear_error();
    if (code == 0)
        return what;
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    return what + ": " + buf;
}

} // namespace

std::shared_ptr<boost::asio::ssl::context> make_server_tls_context(const TlsFiles& files,
                                                                   std::string& error) {
    namespace ssl = boost::asio::ssl;
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    SSL_CTX* native = ctx->native_handle();
    ERR_clear_error();
    const int min = files.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (SSL_CTX_set_min_proto_version(native, min) != 1) {
        error = openssl_error("cannot set minimum TLS version");
        return nullptr;
    }
    SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                    SSL_OP_NO_RENEGOTIATION);
    // Never block the I/O thread on a TLS record boundary mid-write.
    SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(native, files.cert.c_str()) != 1) {
        error = openssl_error(files.cert + ": cannot load certificate chain");
        return nullptr;
    }
    if (SSL_CTX_use_PrivateKey_file(native, files.key.c_str(), SSL_FILETYPE_PEM) != 1) {
        error = openssl_error(files.key + ": cannot load private key");
        return nullptr;
    }
    if (SSL_CTX_check_private_key(native) != 1) {
        error = openssl_error(files.key + ": private key does not match " + files.cert);
        return nullptr;
    }
    return ctx;
}

std::string describe_tls(const SSL* ssl) {
    if (ssl == nullptr)
        return {};
    const char* version = SSL_get_version(ssl);
    const char* cipher = SSL_get_cipher_name(ssl);
    return std::string(version ? version : "TLS") + " " + (cipher ? cipher : "unknown");
}

} // namespace ember::smtp

// --- Client side ---

#include <openssl/x509_vfy.h>

#include <boost/asio/ip/address.hpp>

namespace ember::smtp {

std::shared_ptr<boost::asio::ssl::context> make_client_tls_context(const std::string& ca_file,
                                                                   std::string& error) {
    namespace ssl = boost::asio::ssl;
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    SSL_CTX* native = ctx->native_handle();
    ERR_clear_error();
    if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
        error = openssl_error("cannot set minimum TLS version");
        return nullptr;
    }
    SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
    const int loaded = ca_file.empty()
                           ? SSL_CTX_set_default_verify_paths(native)
                           : SSL_CTX_load_verify_locations(native, ca_file.c_str(), nullptr);
    if (loaded != 1) {
        error = openssl_error(ca_file.empty() ? std::string("cannot load the system CA store")
                                              : ca_file + ": cannot load CA certificates");
        return nullptr;
    }
    SSL_CTX_set_verify(native, SSL_VERIFY_NONE, nullptr);
    return ctx;
}

bool prepare_client_tls(SSL* ssl, const std::string& server_name, bool verify, std::string& error) {
    ERR_clear_error();
    boost::system::error_code ec;
    (void)boost::asio::ip::make_address(server_name, ec);
    const bool is_ip = !ec;
    // SSL_set_tlsext_host_name is a macro with a C-style cast inside.
    if (!is_ip && !server_name.empty() &&
        SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(server_name.c_str())) != 1) {
        error = openssl_error("cannot set SNI " + server_name);
        return false;
    }
    if (!verify) {
        SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
        return true;
    }
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int named = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, server_name.c_str())
                            : X509_VERIFY_PARAM_set1_host(param, server_name.c_str(), 0);
    if (named != 1 || server_name.empty()) {
        error = openssl_error("cannot verify against name " + server_name);
        return false;
    }
    SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
    return true;
}

namespace {

// Boost's error_category has a public non-virtual destructor by design
// (categories are static singletons, never deleted through the base).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class VerificationCategory final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "ember.x509"; }
    std::string message(int ev) const override {
        return std::string("certificate verification failed: ") + X509_verify_cert_error_string(ev);
    }
};
#pragma GCC diagnostic pop

} // namespace

boost::system::error_code verification_error(const SSL* ssl) {
    static const VerificationCategory category;
    if (ssl == nullptr)
        return {};
    const long result = SSL_get_verify_result(ssl);
    if (result == X509_V_OK)
        return {};
    return {static_cast<int>(result), category};
}

} // namespace ember::smtp
