#pragma once
// Prometheus series of the SMTP server, registered once on the daemon's
// registry. Counters are thread-safe (prometheus-cpp uses atomics).

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

namespace ember::smtp {

struct ServerMetrics {
    explicit ServerMetrics(prometheus::Registry& registry);

    prometheus::Counter& sessions_total;
    prometheus::Gauge& sessions_active;
    prometheus::Family<prometheus::Counter>& connections_refused; // {reason}
    prometheus::Counter& messages_accepted;
    prometheus::Family<prometheus::Counter>& messages_rejected;   // {reason}
    prometheus::Family<prometheus::Counter>& recipients_rejected; // {reason}
    prometheus::Counter& recipients_accepted;
    prometheus::Counter& bytes_accepted;
    prometheus::Family<prometheus::Counter>& auth_attempts;  // {result}
    prometheus::Family<prometheus::Counter>& tls_handshakes; // {result}
    prometheus::Histogram& commit_seconds;

    void message_rejected(const std::string& reason);
    void recipient_rejected(const std::string& reason);
    void connection_refused(const std::string& reason);
};

} // namespace ember::smtp
