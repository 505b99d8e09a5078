#include "auth/dkim_keygen.hpp"

#include "auth/dkim_crypto.hpp"
#include "auth/dkim_keys.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <fmt/core.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace ember::auth {
namespace {

std::optional<std::string> check_request(const DkimKeygenRequest& r) {
    if (!valid_dkim_domain(r.domain))
        return fmt::format("\"{}\" is not a domain name of two or more labels", r.domain);
    if (!valid_dkim_selector(r.selector))
        return fmt::format("\"{}\" is not a selector (letters, digits, '-', dots)", r.selector);
    if (r.path.empty())
        return std::string("no path for the private key");
    if (r.algorithm == DkimAlgorithm::RsaSha256 &&
        (r.bits < kDkimMinRsaBits || r.bits > kDkimMaxRsaBits))
        return fmt::format("RSA keys must have {} to {} bits (RFC 8301 3.2), not {}",
                           kDkimMinRsaBits, kDkimMaxRsaBits, r.bits);
    return std::nullopt;
}

dkim::EvpPkeyPtr generate(const DkimKeygenRequest& r) {
    if (r.algorithm == DkimAlgorithm::Ed25519Sha256)
        return dkim::EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    return dkim::EvpPkeyPtr(
        EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(r.bits)));
}

std::optional<std::string> private_pem(EVP_PKEY* key) {
    const std::unique_ptr<BIO, int (*)(BIO*)> bio(BIO_new(BIO_s_mem()), BIO_free);
    if (!bio ||
        PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
        return std::nullopt;
    char* data = nullptr;
    const long size = BIO_ctrl(bio.get(), BIO_CTRL_INFO, 0, &data); // BIO_get_mem_data
    return std::string(data, static_cast<std::size_t>(size));
}

bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const auto n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

// O_EXCL: an existing key (perhaps the one DNS publishes) is never replaced.
// fchmod: the umask may only narrow 0600, but be explicit.
std::optional<std::string> write_key_file(const std::string& path, std::string_view pem) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return fmt::format("{} exists; refusing to overwrite a key (pick a new selector)",
                               path);
        return fmt::format("cannot create {}: {}", path, std::strerror(errno));
    }
    const bool ok = ::fchmod(fd, 0600) == 0 && write_all(fd, pem) && ::fsync(fd) == 0;
    const int saved = errno;
    ::close(fd);
    if (!ok) {
        ::unlink(path.c_str());
        return fmt::format("cannot write {}: {}", path, std::strerror(saved));
    }
    return std::nullopt;
}

std::string zone_line(std::string_view name, const std::vector<std::string>& strings) {
    std::string line = fmt::format("{}. IN TXT (", name);
    for (const auto& s : strings)
        line += fmt::format(" \"{}\"", s);
    return line + " )";
}

std::string config_entry(const DkimKeygenRequest& r) {
    return fmt::format("[[dkim]]\ndomain = \"{}\"\nselector = \"{}\"\nkey = \"{}\"\n"
                       "algorithm = \"{}\"\n",
                       r.domain, r.selector, r.path, dkim_algorithm_name(r.algorithm));
}

} // namespace

std::string default_dkim_key_path(std::string_view domain, std::string_view selector,
                                  std::string_view dir) {
    return fmt::format("{}/{}.{}.pem", dir, ascii_lower(domain), ascii_lower(selector));
}

std::optional<DkimGeneratedKey> generate_dkim_key(const DkimKeygenRequest& request,
                                                  std::string& error) {
    if (auto problem = check_request(request)) {
        error = std::move(*problem);
        return std::nullopt;
    }
    const auto key = generate(request);
    const auto pem = key ? private_pem(key.get()) : std::nullopt;
    const auto record = key ? dkim::key_record(key.get(), request.algorithm) : std::string();
    if (!pem || record.empty()) {
        error = fmt::format("key generation failed: {}", dkim::openssl_errors());
        return std::nullopt;
    }
    if (auto problem = write_key_file(request.path, *pem)) {
        error = std::move(*problem);
        return std::nullopt;
    }
    DkimGeneratedKey out;
    out.path = request.path;
    out.dns_name =
        fmt::format("{}._domainkey.{}", ascii_lower(request.selector), ascii_lower(request.domain));
    out.record = record;
    out.record_strings = split_txt_record(record);
    out.zone_line = zone_line(out.dns_name, out.record_strings);
    out.config = config_entry(request);
    return out;
}

std::vector<std::string> split_txt_record(std::string_view record, std::size_t max) {
    std::vector<std::string> out;
    while (!record.empty()) {
        const auto n = std::min(max, record.size());
        out.emplace_back(record.substr(0, n));
        record.remove_prefix(n);
    }
    return out;
}

} // namespace ember::auth
