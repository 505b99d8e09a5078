#include "auth/dkim_keys.hpp"

#include "auth/dkim_crypto.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <fmt/core.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

namespace ember::auth {
namespace {

// A PEM private key is a few KB; anything past this is not one.
constexpr std::size_t kMaxKeyFile = 64 * 1024;

// Reports problems of one [[dkim]] entry with its file, line and identity.
class Reporter {
public:
    Reporter(const DkimKeyConfig& config, std::string_view file, std::uint32_t line,
             core::Diagnostics& diag)
        : config_(config), file_(file), line_(line), diag_(diag) {}

    void error(std::string_view message) {
        diag_.add(file_, line_,
                  fmt::format("[[dkim]] domain \"{}\" selector \"{}\": {}", config_.domain,
                              config_.selector, message));
        ++errors_;
    }
    void key_error(std::string_view message) {
        error(fmt::format("key \"{}\": {}", config_.key, message));
    }
    [[nodiscard]] bool ok() const { return errors_ == 0; }

private:
    const DkimKeyConfig& config_;
    std::string file_;
    std::uint32_t line_;
    core::Diagnostics& diag_;
    int errors_ = 0;
};

struct Fd {
    explicit Fd(int f) : fd(f) {}
    int fd;
    ~Fd() {
        if (fd >= 0)
            ::close(fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

// Never prompts on a terminal for a passphrase: an encrypted key just fails.
int no_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* asked) {
    *static_cast<bool*>(asked) = true;
    return -1;
}

std::optional<std::string> read_key_file(const std::string& path, Reporter& report) {
    const Fd file{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY)};
    const int fd = file.fd;
    if (fd < 0) {
        report.key_error(fmt::format("cannot open: {}", std::strerror(errno)));
        return std::nullopt;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        report.key_error("not a regular file");
        return std::nullopt;
    }
    // OpenDKIM's RequireSafeKeys: a private key others can read or replace
    // is a key anyone on the machine can sign with.
    if ((st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP)) != 0) {
        report.key_error(fmt::format("mode {:04o} lets other users read or write it; "
                                     "chmod 600 (or 640 for a group)",
                                     st.st_mode & 07777));
        return std::nullopt;
    }
    if (static_cast<std::size_t>(st.st_size) > kMaxKeyFile) {
        report.key_error("too large to be a PEM private key");
        return std::nullopt;
    }
    std::string text(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t got = 0;
    while (got < text.size()) {
        const auto n = ::read(fd, text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            report.key_error(
                fmt::format("cannot read: {}", n < 0 ? std::strerror(errno) : "file shrank"));
            return std::nullopt;
        }
        got += static_cast<std::size_t>(n);
    }
    return text;
}

dkim::EvpPkeyPtr parse_private_key(const std::string& pem, Reporter& report) {
    const std::unique_ptr<BIO, int (*)(BIO*)> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
    bool asked = false;
    dkim::EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, &asked));
    if (!key) {
        ERR_clear_error();
        report.key_error(asked ? "encrypted private keys are not supported; decrypt it with "
                                 "`openssl pkey -in FILE -out FILE.new`"
                               : "not a PEM private key");
    }
    return key;
}

// RSA for rsa-sha256 within the bounds, Ed25519 for ed25519-sha256.
std::optional<unsigned> check_key_type(EVP_PKEY* key, DkimAlgorithm algorithm, Reporter& report) {
    const int type = EVP_PKEY_get_base_id(key);
    const auto bits = static_cast<unsigned>(EVP_PKEY_get_bits(key));
    const auto name = dkim_algorithm_name(algorithm);
    if (algorithm == DkimAlgorithm::Ed25519Sha256) {
        if (type == EVP_PKEY_ED25519)
            return bits;
        report.key_error(fmt::format("algorithm {} needs an Ed25519 key, this is {}", name,
                                     type == EVP_PKEY_RSA ? "an RSA key" : "another key type"));
        return std::nullopt;
    }
    if (type != EVP_PKEY_RSA) {
        report.key_error(
            fmt::format("algorithm {} needs an RSA key, this is {}", name,
                        type == EVP_PKEY_ED25519 ? "an Ed25519 key" : "another key type"));
        return std::nullopt;
    }
    if (bits < kDkimMinRsaBits) {
        report.key_error(fmt::format("RSA key of {} bits is too weak; rsa-sha256 needs at "
                                     "least {} (RFC 8301 3.2)",
                                     bits, kDkimMinRsaBits));
        return std::nullopt;
    }
    if (bits > kDkimMaxRsaBits) {
        report.key_error(fmt::format("RSA key of {} bits; receivers need not verify keys over "
                                     "{} bits (RFC 8301 3.2)",
                                     bits, kDkimMaxRsaBits));
        return std::nullopt;
    }
    return bits;
}

void check_identity(const DkimKeyConfig& config, Reporter& report) {
    if (!valid_dkim_domain(config.domain))
        report.error("domain must be a host name of two or more labels (letters, digits, '-')");
    if (!valid_dkim_selector(config.selector))
        report.error("selector must be one or more labels of letters, digits and '-' "
                     "(RFC 6376 3.1)");
    if (config.key.empty())
        report.error("key (the private key file) is required");
}

void check_policy(const DkimKeyConfig& config, Reporter& report) {
    if (config.not_before && config.not_after && *config.not_before >= *config.not_after)
        report.error("not_before must be earlier than not_after");
    if (config.expire_after && *config.expire_after < std::chrono::seconds(1))
        report.error("expire_after must be at least 1s");
    if (config.headers.empty())
        return;
    bool from = false;
    for (const auto& name : config.headers) {
        if (!valid_header_name(name))
            report.error(fmt::format("headers: \"{}\" is not a header field name", name));
        else if (iequals(name, "DKIM-Signature") || iequals(name, "Return-Path"))
            report.error(
                fmt::format("headers: {} changes in transit and must not be signed", name));
        from = from || iequals(name, "From");
    }
    if (!from)
        report.error("headers must include From (RFC 6376 5.4)");
}

// One signature at load: a key OpenSSL parses but cannot use fails here, at
// start, not on the first message.
bool can_sign(EVP_PKEY* key, DkimAlgorithm algorithm, Reporter& report) {
    if (dkim::sign(key, algorithm, "ember dkim key check"))
        return true;
    report.key_error(fmt::format("cannot sign with it: {}", dkim::openssl_errors()));
    return false;
}

} // namespace

std::string DkimKey::dns_name() const {
    return fmt::format("{}._domainkey.{}", config.selector, config.domain);
}

bool DkimKey::valid_at(std::int64_t now_unix) const {
    return (!config.not_before || *config.not_before <= now_unix) &&
           (!config.not_after || now_unix < *config.not_after);
}

std::optional<DkimKey> load_dkim_key(const DkimKeyConfig& config, std::string_view config_file,
                                     std::uint32_t line, core::Diagnostics& diag) {
    Reporter report(config, config_file, line, diag);
    check_identity(config, report);
    check_policy(config, report);
    if (config.key.empty())
        return std::nullopt;
    const auto pem = read_key_file(config.key, report);
    auto key = pem ? parse_private_key(*pem, report) : nullptr;
    const auto bits = key ? check_key_type(key.get(), config.algorithm, report) : std::nullopt;
    if (!bits || !report.ok() || !can_sign(key.get(), config.algorithm, report))
        return std::nullopt;
    DkimKey loaded{config, std::shared_ptr<EVP_PKEY>(key.release(), EVP_PKEY_free), *bits, {}};
    loaded.config.domain = ascii_lower(config.domain);
    loaded.config.selector = ascii_lower(config.selector);
    loaded.record = dkim::key_record(loaded.key.get(), config.algorithm);
    return loaded;
}

std::optional<std::vector<DkimKey>> load_dkim_keys(const std::vector<DkimKeyConfig>& configs,
                                                   std::string_view config_file,
                                                   core::Diagnostics& diag) {
    std::vector<DkimKey> keys;
    std::set<std::pair<std::string, std::string>> seen;
    bool ok = true;
    for (const auto& config : configs) {
        auto key = load_dkim_key(config, config_file, config.line, diag);
        ok = ok && key.has_value();
        const auto id = std::pair(ascii_lower(config.domain), ascii_lower(config.selector));
        if (!seen.insert(id).second) {
            // One DNS name, one public key: a second entry could only fail.
            Reporter(config, config_file, config.line, diag)
                .error("another [[dkim]] entry already uses this domain and selector");
            ok = false;
        }
        if (key)
            keys.push_back(std::move(*key));
    }
    if (!ok)
        return std::nullopt;
    return keys;
}

} // namespace ember::auth
