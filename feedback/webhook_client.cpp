#include "feedback/webhook_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>
#include <fmt/core.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

namespace ember::feedback {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxResponseHeader = std::size_t{16} * 1024;

bool is_ip_literal(const std::string& host) {
    boost::system::error_code ec;
    (void)asio::ip::make_address(host, ec);
    return !ec;
}

std::string lowercase(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

std::string hex(const unsigned char* data, std::size_t size) {
    std::string out;
    out.reserve(size * 2);
    for (std::size_t i = 0; i < size; ++i)
        out += fmt::format("{:02x}", data[i]);
    return out;
}

std::string hmac_hex(std::string_view secret, std::string_view message) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int size = 0;
    const auto* key = reinterpret_cast<const unsigned char*>(secret.data());
    const auto* data = reinterpret_cast<const unsigned char*>(message.data());
    if (HMAC(EVP_sha256(), key, static_cast<int>(secret.size()), data, message.size(), mac.data(),
             &size) == nullptr)
        return {};
    return hex(mac.data(), size);
}

// The pieces one request owns; shared with the deadline's handler, which
// may run after the request finished.
struct Connection {
    Connection(const asio::any_io_executor& executor, ssl::context* context)
        : resolver(executor), deadline(executor) {
        if (context != nullptr)
            tls.emplace(executor, *context);
        else
            plain.emplace(executor);
    }
    tcp::socket& socket() { return tls ? tls->next_layer() : *plain; }
    void abort() {
        timed_out = true;
        resolver.cancel();
        boost::system::error_code ignored;
        socket().close(ignored);
    }

    tcp::resolver resolver;
    asio::steady_timer deadline;
    std::optional<tcp::socket> plain;
    std::optional<ssl::stream<tcp::socket>> tls;
    bool timed_out = false;
};

std::string failure(const Connection& c, std::string_view step,
                    const boost::system::error_code& ec) {
    return c.timed_out ? std::string("timeout") : fmt::format("{}: {}", step, ec.message());
}

// SNI (RFC 6066 section 3: names only, never IP literals) and the name or
// address the certificate must carry (RFC 6125: no partial wildcards).
// Empty on success, else why.
std::string prepare_tls(SSL* ssl, const std::string& host) {
    const bool ip = is_ip_literal(host);
    // SSL_set_tlsext_host_name is a macro with a C-style cast inside.
    if (!ip && SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                        const_cast<char*>(host.c_str())) != 1)
        return "tls: cannot set SNI";
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int set = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                       : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    if (set != 1)
        return "tls: cannot set the name to verify";
    SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
    return {};
}

// Empty on success, else why.
awaitable<std::string> connect(std::shared_ptr<Connection> c, HttpTarget target) {
    auto [rec, results] = co_await c->resolver.async_resolve(target.host, target.port, kTuple);
    if (rec)
        co_return failure(*c, "resolve", rec);
    auto [cec, endpoint] = co_await asio::async_connect(c->socket(), results, kTuple);
    (void)endpoint;
    if (cec)
        co_return failure(*c, "connect", cec);
    if (!c->tls)
        co_return std::string();
    const std::string verify_error = prepare_tls(c->tls->native_handle(), target.host);
    if (!verify_error.empty())
        co_return verify_error;
    auto [hec] = co_await c->tls->async_handshake(ssl::stream_base::client, kTuple);
    if (hec)
        co_return failure(*c, "tls", hec);
    co_return std::string();
}

template <typename Stream>
awaitable<PostResult> exchange(std::shared_ptr<Connection> c, Stream* stream,
                               http::request<http::string_body> request) {
    PostResult result;
    auto [wec, written] = co_await http::async_write(*stream, request, kTuple);
    (void)written;
    if (wec) {
        result.error = failure(*c, "write", wec);
        co_return result;
    }
    beast::flat_buffer buffer(kMaxResponseHeader);
    http::response_parser<http::empty_body> parser;
    parser.header_limit(kMaxResponseHeader);
    // Only the status line matters and the connection closes afterwards, so
    // the body is never read.
    auto [rec, read] = co_await http::async_read_header(*stream, buffer, parser, kTuple);
    (void)read;
    if (rec) {
        result.error = failure(*c, "read", rec);
        co_return result;
    }
    result.status = parser.get().result_int();
    co_return result;
}

http::request<http::string_body> make_request(const HttpTarget& target, const HttpHeaders& headers,
                                              std::string body) {
    http::request<http::string_body> request{http::verb::post, target.target, 11};
    request.set(http::field::host, target.host_header);
    request.set(http::field::user_agent, "ember");
    request.set(http::field::content_type, "application/json");
    request.set(http::field::connection, "close");
    for (const auto& [name, value] : headers)
        request.set(name, value);
    request.body() = std::move(body);
    request.prepare_payload();
    return request;
}

} // namespace

std::optional<HttpTarget> parse_webhook_url(std::string_view url, std::string& error) {
    const auto parsed = boost::urls::parse_absolute_uri(url);
    if (!parsed) {
        error = fmt::format("not an absolute URL: {}", parsed.error().message());
        return std::nullopt;
    }
    const auto& u = *parsed;
    HttpTarget t;
    const auto scheme = u.scheme_id();
    if (scheme != boost::urls::scheme::http && scheme != boost::urls::scheme::https) {
        error = "the scheme must be http or https";
        return std::nullopt;
    }
    if (u.has_userinfo()) {
        error = "user information in the URL is not allowed (use secret)";
        return std::nullopt;
    }
    t.tls = scheme == boost::urls::scheme::https;
    // DNS names are case-insensitive (RFC 4343); lowercase reads better in logs.
    t.host = lowercase(u.host_address());
    if (t.host.empty()) {
        error = "the URL has no host";
        return std::nullopt;
    }
    const std::string default_port = t.tls ? "443" : "80";
    t.port = u.has_port() && !u.port().empty() ? std::string(u.port()) : default_port;
    // encoded_host() keeps the brackets of an IPv6 literal, as Host: wants them.
    t.host_header = lowercase(u.encoded_host());
    if (t.port != default_port)
        t.host_header += ":" + t.port;
    t.target = std::string(u.encoded_target());
    if (t.target.empty() || t.target.front() != '/')
        t.target.insert(0, "/");
    return t;
}

std::string webhook_signature(std::string_view secret, std::int64_t unix_seconds,
                              std::string_view body) {
    const std::string t = std::to_string(unix_seconds);
    std::string message;
    message.reserve(t.size() + 1 + body.size());
    message.append(t).append(".").append(body);
    return fmt::format("t={},v1={}", t, hmac_hex(secret, message));
}

bool verify_webhook_signature(std::string_view header, std::string_view secret,
                              std::string_view body, std::int64_t now_unix_seconds,
                              std::int64_t tolerance_seconds) {
    std::optional<std::int64_t> t;
    std::vector<std::string_view> signatures;
    while (!header.empty()) {
        const auto comma = header.find(',');
        const auto item = header.substr(0, comma);
        header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
        if (item.starts_with("t=")) {
            std::int64_t value = 0;
            const auto digits = item.substr(2);
            const auto [end, ec] =
                std::from_chars(digits.data(), digits.data() + digits.size(), value);
            if (ec == std::errc() && end == digits.data() + digits.size())
                t = value;
        } else if (item.starts_with("v1=")) {
            signatures.push_back(item.substr(3));
        }
    }
    if (!t || *t < now_unix_seconds - tolerance_seconds ||
        *t > now_unix_seconds + tolerance_seconds)
        return false;
    const std::string expected = webhook_signature(secret, *t, body);
    const std::string_view want = std::string_view(expected).substr(expected.find(",v1=") + 4);
    for (const auto sig : signatures)
        if (sig.size() == want.size() && CRYPTO_memcmp(sig.data(), want.data(), want.size()) == 0)
            return true;
    return false;
}

std::shared_ptr<ssl::context> make_webhook_tls_context(const std::string& ca_file,
                                                       std::string& error) {
    auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
    boost::system::error_code ec;
    context->set_options(ssl::context::default_workarounds | ssl::context::no_compression, ec);
    if (SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION) != 1) {
        error = "cannot require TLS 1.2";
        return nullptr;
    }
    if (ca_file.empty())
        context->set_default_verify_paths(ec);
    else
        context->load_verify_file(ca_file, ec);
    if (ec) {
        error = fmt::format("{}: {}", ca_file.empty() ? "system CA store" : ca_file, ec.message());
        return nullptr;
    }
    context->set_verify_mode(ssl::verify_peer, ec);
    return context;
}

awaitable<PostResult> post_json(asio::any_io_executor executor, HttpTarget target,
                                std::shared_ptr<ssl::context> tls_context, HttpHeaders headers,
                                std::string body, core::Duration timeout) {
    if (target.tls && !tls_context)
        co_return PostResult{0, "tls: no client context"};
    auto c = std::make_shared<Connection>(executor, target.tls ? tls_context.get() : nullptr);
    c->deadline.expires_after(timeout);
    c->deadline.async_wait([weak = std::weak_ptr<Connection>(c)](boost::system::error_code ec) {
        if (auto conn = weak.lock(); conn && !ec)
            conn->abort();
    });
    // Awaitables are named locals: g++ 12 mishandles by-value string
    // parameters built inside a co_await expression (see core/async.hpp).
    auto connecting = connect(c, target);
    const std::string connect_error = co_await std::move(connecting);
    PostResult result;
    if (!connect_error.empty()) {
        result.error = connect_error;
    } else {
        auto request = make_request(target, headers, std::move(body));
        if (c->tls) {
            auto exchanging = exchange(c, &*c->tls, std::move(request));
            result = co_await std::move(exchanging);
        } else {
            auto exchanging = exchange(c, &*c->plain, std::move(request));
            result = co_await std::move(exchanging);
        }
    }
    c->deadline.cancel();
    boost::system::error_code ignored;
    c->socket().close(ignored);
    co_return result;
}

} // namespace ember::feedback
