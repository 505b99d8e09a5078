#include "daemon/app.hpp"

#include "auth/users.hpp"
#include "core/async.hpp"
#include "daemon/ab_service.hpp"
#include "daemon/ab_verbs.hpp"
#include "daemon/admin_server.hpp"
#include "daemon/admin_verbs.hpp"
#include "daemon/alignment_policy.hpp"
#include "daemon/api_service.hpp"
#include "daemon/authenticator.hpp"
#include "daemon/campaign_report.hpp"
#include "daemon/contact_events.hpp"
#include "daemon/contacts_verbs.hpp"
#include "daemon/delivery_service.hpp"
#include "daemon/delivery_verbs.hpp"
#include "daemon/feedback_http.hpp"
#include "daemon/feedback_service.hpp"
#include "daemon/feedback_sink.hpp"
#include "daemon/feedback_verbs.hpp"
#include "daemon/http_server.hpp"
#include "daemon/metrics.hpp"
#include "daemon/personalize_service.hpp"
#include "daemon/queue_sink.hpp"
#include "daemon/submission_personalize.hpp"
#include "daemon/tracking_service.hpp"
#include "daemon/warmup_service.hpp"
#include "daemon/warmup_verbs.hpp"
#include "smtp/listener.hpp"
#include "smtp/server_metrics.hpp"
#include "smtp/tls.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

namespace ember::daemon {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
namespace log = core::log;
using namespace std::chrono_literals;

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);

bool needs_tls(const Config& c) {
    if (c.http.tls && c.http.listen)
        return true;
    for (const auto& l : c.listeners) {
        if (l.tls != smtp::TlsMode::None)
            return true;
    }
    return false;
}

std::shared_ptr<asio::ssl::context> build_tls(const Config& c, std::string& error) {
    if (c.tls.cert.empty() || c.tls.key.empty())
        return nullptr;
    return smtp::make_server_tls_context({c.tls.cert, c.tls.key, c.tls.min_version}, error);
}

std::string effective_hostname(const Config& c) {
    if (!c.server.hostname.empty())
        return c.server.hostname;
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0')
        return "localhost";
    return buf;
}

std::shared_ptr<const smtp::ServerSettings> make_settings(const Config& c,
                                                          std::shared_ptr<asio::ssl::context> tls) {
    auto s = std::make_shared<smtp::ServerSettings>();
    s->hostname = effective_hostname(c);
    s->limits = c.smtp;
    s->trusted_networks = c.auth.trusted_networks;
    s->tls = std::move(tls);
    return s;
}

std::shared_ptr<const auth::UsersFile> load_users(const Config& c, core::Diagnostics& diag) {
    if (c.auth.users_file.empty())
        return nullptr;
    auto users = auth::UsersFile::load(c.auth.users_file, diag);
    if (!users)
        return nullptr;
    return std::make_shared<const auth::UsersFile>(std::move(*users));
}

std::string_view mode_name(smtp::ListenerMode m) {
    return m == smtp::ListenerMode::Submission ? "submission" : "inbound";
}
std::string_view tls_name(smtp::TlsMode m) {
    switch (m) {
    case smtp::TlsMode::None:
        return "none";
    case smtp::TlsMode::StartTls:
        return "starttls";
    case smtp::TlsMode::Implicit:
        return "implicit";
    }
    return "none";
}
std::string_view auth_name(smtp::AuthPolicy p) {
    switch (p) {
    case smtp::AuthPolicy::None:
        return "none";
    case smtp::AuthPolicy::Optional:
        return "optional";
    case smtp::AuthPolicy::Required:
        return "required";
    }
    return "none";
}

// The source of warm-up keys: the address delivery binds to, if fixed.
std::string warmup_source(const Config& c) {
    const auto& source = c.delivery.client.source_address;
    return source ? source->to_string() : std::string();
}

void notify(const std::string& state) {
    sd_notify(0, state.c_str());
}

class App {
public:
    App(Config config, RunOptions options)
        : options_(options), config_(std::move(config)), signals_(io_, SIGHUP, SIGTERM, SIGINT) {}

    int run();

private:
    bool start();
    bool start_warmup();
    bool start_feedback();
    bool start_ab();
    void start_personalize_submission();
    void apply_log_level(const Config& c) const;
    asio::awaitable<void> signal_loop();
    json::object reload();
    json::object status() const;
    asio::awaitable<void> shutdown();
    void warn_restart_only_changes(const Config& next) const;
    AlignmentSettings alignment_settings(const Config& c,
                                         std::shared_ptr<const auth::DkimSigner> signer) const;

    RunOptions options_;
    Config config_;
    asio::io_context io_{1};
    asio::thread_pool pool_{2};
    Metrics metrics_;
    std::unique_ptr<queue::Store> store_;
    std::unique_ptr<QueueSink> sink_;
    std::unique_ptr<smtp::ServerMetrics> smtp_metrics_;
    std::unique_ptr<UsersAuthenticator> auth_;
    std::unique_ptr<WarmupService> warmup_;           // before delivery_: its gate refers to it
    std::unique_ptr<FeedbackService> feedback_;       // before delivery_: its stages refer to it
    std::unique_ptr<PersonalizeService> personalize_; // before delivery_: likewise
    std::unique_ptr<AbService> ab_;                   // before delivery_: its stage refers to it
    std::unique_ptr<TrackingService> tracking_;       // before delivery_: likewise
    std::unique_ptr<FeedbackSink> feedback_sink_;
    std::unique_ptr<DeliveryService> delivery_;
    std::unique_ptr<AlignmentGate> gate_;
    std::unique_ptr<PersonalizeGate> personalize_gate_; // templates, X-Ember-* at submission
    std::unique_ptr<PolicyChain> policies_;             // gate_, then personalize_gate_
    std::unique_ptr<SendTimePlanner> planner_;          // X-Ember-Send-Within, in sink_
    std::unique_ptr<ContactJobs> contact_jobs_;         // before personalize_ is destroyed
    std::unique_ptr<CampaignReports> reports_;          // `emberctl report`, fed by feedback_
    std::unique_ptr<smtp::ServerContext> server_;
    std::vector<std::unique_ptr<smtp::Listener>> listeners_;
    std::unique_ptr<ApiService> api_; // before http_: its routes refer to it
    std::unique_ptr<HttpServer> http_;
    std::unique_ptr<AdminServer> admin_;
    asio::signal_set signals_;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    bool stopping_ = false;
};

void App::apply_log_level(const Config& c) const {
    log::set_level(options_.log_level_override.value_or(c.server.log_level));
}

bool App::start() {
    apply_log_level(config_);
    std::string error;
    auto store_config = config_.queue;
    store_config.data_dir = config_.server.data_dir;
    store_ = queue::Store::open(store_config, error);
    if (!store_) {
        log::error("queue.open_failed", "data_dir={} error={}", log::q(store_config.data_dir),
                   log::q(error));
        return false;
    }
    core::Diagnostics diag;
    auto users = load_users(config_, diag);
    auto tls = build_tls(config_, error);
    if (!diag.empty() || (needs_tls(config_) && !tls)) {
        for (const auto& d : diag.sorted())
            log::error("config.error", "{}", log::q(core::format(d)));
        if (!error.empty())
            log::error("tls.error", "error={}", log::q(error));
        return false;
    }
    if (!start_warmup() || !start_feedback())
        return false;
    personalize_ = PersonalizeService::create(io_.get_executor(), config_, *store_, error,
                                              feedback_.get(), &pool_);
    if (!personalize_) {
        log::error("personalize.start_failed", "error={}", log::q(error));
        return false;
    }
    if (!start_ab())
        return false;
    tracking_ = TrackingService::create(io_.get_executor(), config_, *store_, *feedback_, error);
    if (!tracking_) {
        log::error("tracking.start_failed", "error={}", log::q(error));
        return false;
    }
    personalize_->add_stage_after_merge(tracking_->stage()); // links and pixel, before signing
    delivery_ =
        DeliveryService::create(io_.get_executor(), config_, *store_, metrics_.registry(), pool_,
                                error, warmup_.get(), feedback_.get(), personalize_.get());
    if (!delivery_) {
        log::error("delivery.start_failed", "error={}", log::q(error));
        return false;
    }
    gate_ = std::make_unique<AlignmentGate>(delivery_->resolver(),
                                            alignment_settings(config_, delivery_->signer()));
    sink_ = std::make_unique<QueueSink>(*store_);
    sink_->on_committed([this] { delivery_->notify(); });
    start_personalize_submission();
    feedback_sink_ = std::make_unique<FeedbackSink>(*feedback_, *sink_);
    smtp_metrics_ = std::make_unique<smtp::ServerMetrics>(metrics_.registry());
    auth_ = std::make_unique<UsersAuthenticator>(pool_, std::move(users), config_.smtp);
    server_ = std::make_unique<smtp::ServerContext>(smtp::ServerContext{
        make_settings(config_, std::move(tls)), *feedback_sink_, *auth_, *smtp_metrics_, {}, {}});
    server_->policy = policies_.get();
    server_->recipients = feedback_.get();
    delivery_->start();
    ab_->set_release(scheduler_release(io_.get_executor(), delivery_->scheduler()));
    ab_->start();

    add_queue_gauges(metrics_, *store_);

    for (const auto& l : config_.listeners) {
        auto listener = std::make_unique<smtp::Listener>(io_.get_executor(), l, *server_);
        if (const auto err = listener->start(); !err.empty()) {
            log::error("listener.bind_failed", "error={}", log::q(err));
            return false;
        }
        log::info("listener.started", "address={} mode={} tls={} auth={}", l.address.to_string(),
                  mode_name(l.mode), tls_name(l.tls), auth_name(l.auth));
        listeners_.push_back(std::move(listener));
    }
    if (config_.http.listen) {
        Router router;
        add_metrics_route(router, metrics_);
        add_unsubscribe_routes(router, *feedback_);
        tracking_->add_routes(router); // GET /c/*, /o/*
        api_ = std::make_unique<ApiService>(ApiParts{server_.get(), store_.get(), feedback_.get(),
                                                     &personalize_->contacts(), ab_.get()},
                                            api_settings(config_));
        add_api_routes(router, *api_);
        http_ = std::make_unique<HttpServer>(io_.get_executor(), *config_.http.listen,
                                             std::move(router), api_http_limits(config_));
        if (config_.http.tls)
            http_->set_tls(server_->settings->tls);
        if (const auto err = http_->start(); !err.empty()) {
            log::error("http.bind_failed", "error={}", log::q(err));
            return false;
        }
    }
    std::error_code dir_error; // a missing directory shows up as the bind error below
    std::filesystem::create_directories(std::filesystem::path(config_.admin.socket).parent_path(),
                                        dir_error);
    admin_ = std::make_unique<AdminServer>(io_.get_executor(), config_.admin.socket);
    add_queue_verbs(*admin_, *store_);
    add_delivery_verbs(*admin_, delivery_->scheduler());
    add_warmup_verbs(*admin_, *warmup_, delivery_->scheduler());
    contact_jobs_ = std::make_unique<ContactJobs>(personalize_->contacts());
    add_contacts_verbs(*admin_, personalize_->contacts(), *contact_jobs_);
    add_feedback_verbs(*admin_, *feedback_, delivery_->resolver(),
                       alignment_settings(config_, nullptr).egress_ips);
    add_ab_verbs(*admin_, *ab_);
    add_report_verbs(*admin_, *reports_);
    admin_->add_verb("status", [this](json::object) -> asio::awaitable<AdminResult> {
        co_return AdminResult::success(status());
    });
    admin_->add_verb("reload", [this](json::object) -> asio::awaitable<AdminResult> {
        co_return AdminResult::success(reload());
    });
    if (const auto err = admin_->start(); !err.empty()) {
        log::error("admin.bind_failed", "error={}", log::q(err));
        return false;
    }
    core::spawn(io_.get_executor(), signal_loop(), "signals", core::TaskKind::TopLevel);
    return true;
}

// The warm-up gate: warmup.toml (checked with the rest of the config),
// the state saved in the store, and the periodic save.
bool App::start_warmup() {
    core::Diagnostics diag;
    auto config = load_warmup_config(config_.warmup, diag);
    std::string error;
    if (config)
        warmup_ = WarmupService::create(io_.get_executor(), config_.warmup, std::move(*config),
                                        *store_, metrics_, error);
    if (!warmup_) {
        for (const auto& d : diag.sorted())
            log::error("config.error", "{}", log::q(core::format(d)));
        if (!error.empty())
            log::error("warmup.start_failed", "error={}", log::q(error));
        return false;
    }
    warmup_->set_source(warmup_source(config_));
    warmup_->start();
    return true;
}

// The feedback loop (daemon/feedback_service.hpp); complaints and
// asynchronous bounces reach the warm-up guardrails.
bool App::start_feedback() {
    std::string error;
    feedback_ = FeedbackService::create(io_.get_executor(), config_, *store_, metrics_, error);
    if (!feedback_) {
        log::error("feedback.start_failed", "error={}", log::q(error));
        return false;
    }
    feedback_->set_guardrail([this](const feedback::GuardrailSignal& s) {
        if (s.kind == feedback::GuardrailSignal::Kind::Complaint)
            warmup_->engine().record_complaint(s.sending_domain, warmup_->now());
        else
            warmup_->engine().record_bounce(s.sending_domain, s.hard, warmup_->now());
        warmup_->drain();
    });
    feedback_->start();
    // Campaign reports (daemon/campaign_report.hpp): counters from every
    // counted event, saved every few seconds and at stop.
    reports_ = CampaignReports::create(io_.get_executor(), *store_, error);
    if (!reports_) {
        log::error("report.start_failed", "error={}", log::q(error));
        return false;
    }
    feedback_->add_event_listener([this](const feedback::Event& e) { reports_->record(e); });
    reports_->start();
    return true;
}

// A/B tests (daemon/ab_service.hpp): the records, the stage before the
// merge (added before DeliveryService::create adds the stages), the counts
// from feedback events. The timer starts with delivery (it releases held mail).
bool App::start_ab() {
    std::string error;
    ab_ = AbService::create(io_.get_executor(), *store_, error);
    if (!ab_) {
        log::error("ab.start_failed", "error={}", log::q(error));
        return false;
    }
    personalize_->add_stage_before_merge(std::make_shared<AbStage>(*ab_));
    feedback_->add_event_listener([this](const feedback::Event& event) { ab_->on_event(event); });
    return true;
}

// Personalization at submission (daemon/submission_personalize.hpp): the
// template check after the DMARC gate, send-time planning before the commit,
// and delivered/opened/clicked events as contact engagement.
void App::start_personalize_submission() {
    personalize_gate_ = std::make_unique<PersonalizeGate>();
    policies_ = std::make_unique<PolicyChain>();
    policies_->add(gate_.get());
    policies_->add(personalize_gate_.get());
    planner_ =
        std::make_unique<SendTimePlanner>(personalize_->contacts(), config_.personalize.send_time);
    sink_->on_prepare([this](smtp::AcceptedMessage& m, queue::Message& record) {
        if (m.info.mode == smtp::ListenerMode::Submission)
            (void)planner_->plan(m.content, record, record.submission.received_at_ms, m.queue_id);
    });
    feedback_->add_event_listener([this](const feedback::Event& event) {
        (void)record_contact_event(personalize_->contacts(), event);
    });
}

AlignmentSettings App::alignment_settings(const Config& c,
                                          std::shared_ptr<const auth::DkimSigner> signer) const {
    AlignmentSettings a;
    a.policy = c.auth.alignment;
    a.helo_name = c.delivery.client.helo_name;
    a.egress_ips =
        c.delivery.source_ips.empty() ? auth::host_egress_addresses() : c.delivery.source_ips;
    a.signer = std::move(signer);
    return a;
}

json::object App::status() const {
    json::object o;
    o["version"] = EMBER_VERSION;
    o["pid"] = static_cast<std::int64_t>(getpid());
    o["uptime_s"] = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::steady_clock::now() - started_)
                        .count();
    o["hostname"] = server_->settings->hostname;
    json::array listeners;
    for (const auto& l : listeners_) {
        const auto& c = l->config();
        listeners.push_back(json::object{{"address", c.address.to_string()},
                                         {"mode", mode_name(c.mode)},
                                         {"tls", tls_name(c.tls)},
                                         {"auth", auth_name(c.auth)}});
    }
    o["listeners"] = std::move(listeners);
    o["sessions_active"] = server_->sessions.size();
    json::object queue;
    for (const auto& [state, count] : store_->counts())
        queue[queue::state_name(state)] = count;
    o["queue"] = std::move(queue);
    o["stopping"] = stopping_;
    return o;
}

void App::warn_restart_only_changes(const Config& next) const {
    auto warn = [](std::string_view what) {
        log::warning("config.restart_needed", "setting={} note=\"kept until restart\"", what);
    };
    if (next.server.data_dir != config_.server.data_dir)
        warn("server.data_dir");
    if (next.admin.socket != config_.admin.socket)
        warn("admin.socket");
    if (next.http.listen != config_.http.listen)
        warn("http.listen");
    if (next.dns.servers != config_.dns.servers || next.dns.timeout != config_.dns.timeout ||
        next.dns.tries != config_.dns.tries)
        warn("dns");
    bool same = next.listeners.size() == config_.listeners.size();
    for (std::size_t i = 0; same && i < next.listeners.size(); ++i) {
        const auto& a = next.listeners[i];
        const auto& b = config_.listeners[i];
        same = a.address == b.address && a.mode == b.mode && a.tls == b.tls && a.auth == b.auth &&
               a.auth_without_tls == b.auth_without_tls;
    }
    if (!same)
        warn("listener");
}

json::object App::reload() {
    notify("RELOADING=1");
    log::info("config.reload", "file={}", log::q(config_.file));
    core::Diagnostics diag;
    auto next = load_config(config_.file, diag);
    std::shared_ptr<const auth::UsersFile> users;
    std::shared_ptr<asio::ssl::context> tls;
    std::shared_ptr<const auth::DkimSigner> signer;
    std::optional<warmup::Config> warmup_config;
    std::shared_ptr<const FeedbackPolicy> feedback_policy;
    feedback_->reopen_log(); // SIGHUP is also logrotate's signal
    if (next) {
        users = load_users(*next, diag);
        feedback_policy = make_feedback_policy(*next, diag);
        warmup_config = load_warmup_config(next->warmup, diag);
        std::string error;
        tls = build_tls(*next, error);
        if (!error.empty())
            diag.add(next->tls.cert, 0, error);
        signer = load_signer(*next, diag);
    }
    json::array errors;
    if (!next || !diag.empty()) {
        for (const auto& d : diag.sorted()) {
            log::error("config.error", "{}", log::q(core::format(d)));
            errors.push_back(json::string(core::format(d)));
        }
        log::error("config.reload_failed", "errors={} note=\"old configuration kept\"",
                   errors.size());
        notify("READY=1\nSTATUS=reload failed; old configuration kept");
        return json::object{{"reloaded", false}, {"errors", std::move(errors)}};
    }
    warn_restart_only_changes(*next);
    // Parts that need a restart keep their running values.
    next->listeners = config_.listeners;
    next->server.data_dir = config_.server.data_dir;
    next->admin = config_.admin;
    next->http.listen = config_.http.listen;
    if (!tls && server_->settings->tls && !needs_tls(*next))
        tls = nullptr;
    apply_log_level(*next);
    server_->settings = make_settings(*next, std::move(tls));
    if (http_ && next->http.tls != config_.http.tls)
        log::warning("config.restart_needed", "setting=http.tls note=\"kept until restart\"");
    next->http.tls = config_.http.tls;
    if (http_ && config_.http.tls && server_->settings->tls)
        http_->set_tls(server_->settings->tls); // a renewed certificate
    auth_->update(std::move(users), next->smtp);
    next->dns = config_.dns; // the resolver keeps its servers until a restart
    delivery_->reload(*next, signer);
    warmup_->apply(next->warmup, std::move(*warmup_config));
    warmup_->set_source(warmup_source(*next));
    feedback_->apply(*next, std::move(feedback_policy));
    if (api_)
        api_->apply(api_settings(*next));
    personalize_->apply(*next);
    tracking_->apply(*next);
    planner_->update(next->personalize.send_time);
    gate_->update(alignment_settings(*next, signer));
    config_ = std::move(*next);
    log::info("config.reloaded", "file={}", log::q(config_.file));
    notify("READY=1\nSTATUS=running");
    return json::object{{"reloaded", true}, {"errors", json::array{}}};
}

asio::awaitable<void> App::signal_loop() {
    for (;;) {
        auto [ec, signo] = co_await signals_.async_wait(kAsTuple);
        if (ec)
            co_return;
        if (signo == SIGHUP) {
            (void)reload();
            continue;
        }
        log::info("daemon.stopping", "signal={}", signo == SIGTERM ? "TERM" : "INT");
        co_await shutdown();
        co_return;
    }
}

asio::awaitable<void> App::shutdown() {
    if (stopping_)
        co_return;
    stopping_ = true;
    notify("STOPPING=1");
    for (auto& l : listeners_)
        l->stop();
    if (http_)
        http_->drain(); // /healthz turns 503 while the sessions finish
    admin_->stop();
    contact_jobs_->cancel(); // a running import stops at the next line; its rows stay
    server_->sessions.request_stop_all();
    asio::steady_timer timer(io_);
    const auto deadline = std::chrono::steady_clock::now() + config_.server.shutdown_grace;
    while (server_->sessions.size() > 0 && std::chrono::steady_clock::now() < deadline) {
        timer.expires_after(50ms);
        co_await timer.async_wait(kAsTuple);
    }
    if (server_->sessions.size() > 0) {
        log::warning("daemon.grace_expired", "sessions={}", server_->sessions.size());
        server_->sessions.force_close_all();
    }
    // Mail already accepted stays queued; jobs in flight get the same grace.
    ab_->set_release({}); // a decision now must not wake a stopping scheduler
    co_await delivery_->stop(config_.server.shutdown_grace);
    warmup_->stop();   // after the last job recorded its outcomes
    ab_->stop();       // saves the counts
    reports_->stop();  // saves the campaign counters
    feedback_->stop(); // saves the rates; webhook posts in flight end within their timeout
    if (http_)
        http_->stop();
    signals_.cancel();
    // io_context::run() returns once the last session and commit are done.
}

int App::run() {
    if (!start())
        return 1;
    log::info("daemon.ready", "version={} hostname={} listeners={}", EMBER_VERSION,
              server_->settings->hostname, listeners_.size());
    notify("READY=1\nSTATUS=running");
    io_.run();
    pool_.join();
    log::info("daemon.stopped", "note=\"all sessions closed\"");
    return 0;
}

} // namespace

bool validate_runtime(const Config& config, core::Diagnostics& diag) {
    std::string error;
    const auto tls = build_tls(config, error);
    if (!error.empty())
        diag.add(config.tls.cert, 0, error);
    (void)make_feedback_policy(config, diag); // token keys, bounce rules files
    return diag.empty();
}

int run_daemon(Config config, const RunOptions& options) {
    App app(std::move(config), options);
    return app.run();
}

} // namespace ember::daemon
