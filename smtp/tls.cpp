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
