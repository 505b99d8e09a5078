#pragma once
// emberd's whole configuration: one typed struct per TOML section, each
// owned by the library that uses it (smtp::Limits, queue::StoreConfig, ...),
// gathered here. load_config() parses ember.toml into it, reporting every
// problem as `file:line: message`; it never throws and never half-applies:
// the caller swaps the whole Config or keeps the old one.

#include "auth/alignment.hpp"
#include "auth/dkim_config.hpp"
#include "core/diagnostics.hpp"
#include "core/log.hpp"
#include "core/net.hpp"
#include "core/units.hpp"
#include "daemon/api_config.hpp"
#include "daemon/feedback_config.hpp"
#include "daemon/personalize_config.hpp"
#include "daemon/tracking_config.hpp"
#include "dns/resolver.hpp"
#include "queue/scheduler_config.hpp"
#include "queue/store.hpp"
#include "smtp/client_config.hpp"
#include "smtp/server_config.hpp"
#include "warmup/config.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace ember::daemon {

using namespace std::chrono_literals;

struct ServerConfig {
    std::string hostname;                    // "" = the machine's host name (gethostname)
    std::string data_dir = "/var/lib/ember"; // LMDB environment
    core::log::Level log_level = core::log::Level::Info;
    core::Duration shutdown_grace = 30s; // SIGTERM: how long open sessions may finish
    std::uint32_t io_threads = 1;        // reserved for multi-threaded I/O; 1 today
};

struct TlsConfig {
    std::string cert;                // PEM certificate chain
    std::string key;                 // PEM private key
    std::string min_version = "1.2"; // "1.2" or "1.3"
};

// 127.0.0.0/8 and ::1/128: the default trusted_networks, so local
// applications can submit without AUTH and nothing else can.
[[nodiscard]] std::vector<core::Cidr> loopback_networks();

struct AuthConfig {
    std::string users_file; // user:crypt-hash lines; "" = no AUTH users
    std::vector<core::Cidr> trusted_networks = loopback_networks(); // may relay without AUTH
    // The DMARC alignment gate at submission; [[listener]] alignment overrides it.
    auth::AlignmentPolicy alignment = auth::AlignmentPolicy::Enforce;
};

// [delivery]: the SMTP client, the scheduler's retry policy and what DSNs return.
struct DeliveryConfig {
    // Accept and queue mail but deliver nothing (maintenance, tests); a
    // reload that clears it resumes delivery.
    bool hold = false;
    smtp::ClientConfig client;               // helo_name filled from [server] hostname when empty
    queue::SchedulerConfig scheduler;        // max_jobs* mirror the client's connection limits
    std::string helo_name;                   // "" = [server] hostname
    std::vector<core::IpAddress> source_ips; // egress IPs for the SPF part of the DMARC gate
    core::ByteSize dsn_return_limit{std::uint64_t{1} << 20}; // RET=FULL returns at most this
};

struct HttpConfig {
    std::optional<core::Endpoint> listen; // metrics, health; unset = no HTTP listener
    std::string public_url;
    // POST /v1/messages answers 429 while this many recipients are pending
    // (queued or deferred) in the queue; 0 = no limit.
    std::uint64_t queue_high_water = 1'000'000;
    std::uint32_t max_recipients = 1000; // per POST /v1/messages
    // HTTPS on the listener with the [tls] certificate (the SMTP listeners'
    // one); false = plain HTTP, for loopback or behind a TLS proxy.
    bool tls = false;
};

struct AdminConfig {
    std::string socket = "/run/ember/admin.sock";
};

struct Config {
    std::string file; // the path it was loaded from
    ServerConfig server;
    std::vector<smtp::ListenerConfig> listeners;
    smtp::Limits smtp;
    TlsConfig tls;
    AuthConfig auth;
    queue::StoreConfig queue; // queue.data_dir mirrors server.data_dir
    HttpConfig http;
    AdminConfig admin;
    dns::ResolverConfig dns;
    DeliveryConfig delivery;
    std::vector<auth::DkimKeyConfig> dkim;
    warmup::Settings warmup;
    FeedbackConfig feedback;            // [feedback]
    EventsConfig events;                // [events] and [[webhook]]
    std::vector<ApiKeyConfig> api_keys; // [[api_key]]
    PersonalizeConfig personalize;      // [personalize]
    TrackingConfig tracking;            // [tracking]
};

// Parses and validates FILE (syntax, types, bounds, unknown keys, cross-field
// rules, readable TLS and users files). nullopt when `diag` holds errors.
[[nodiscard]] std::optional<Config> load_config(const std::string& path, core::Diagnostics& diag);

// The effective configuration as TOML (`emberd --dump-config`).
[[nodiscard]] std::string dump_config(const Config& config);

// Every section and key the loader knows, with the documented default of each
// key (dump of a default struct): drives the man page test.
struct KeyDoc {
    std::string section; // "server", "listener", "smtp", ...
    std::string key;
    std::string default_value; // "" when required
    bool required = false;     // no default: the key must be written (listener address)
};
[[nodiscard]] std::vector<KeyDoc> documented_keys();

} // namespace ember::daemon
