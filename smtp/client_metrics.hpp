#pragma once
// Prometheus series of the SMTP client (delivery), registered once on the
// daemon's registry:
//   ember_delivery_attempts_total{result=delivered|deferred|failed, destination}
//       one per recipient outcome
//   ember_delivery_connections_active     open outbound connections (idle ones included)
//   ember_delivery_connections_total{tls=yes|no}  sessions that completed their handshake
//   ember_delivery_seconds                one delivery job, DNS to last reply
// The destination label is bounded: the first kMaxDestinationLabels distinct
// destination domains keep their name (the large providers show up first
// in any real traffic), later ones are counted as "other", so a spammer's
// list of random domains cannot blow up the series count.
// Thread-safe (prometheus-cpp counters are atomic; the label set is locked).

#include "core/outcome.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstddef>
#include <mutex>
#include <set>
#include <string>
#include <string_view>

namespace ember::smtp {

class ClientMetrics {
public:
    static constexpr std::size_t kMaxDestinationLabels = 100;

    explicit ClientMetrics(prometheus::Registry& registry);

    void record_outcome(const core::Outcome& outcome, std::string_view destination);
    void record_job_seconds(double seconds);
    void connection_opened(); // a TCP connection exists (active +1)
    void connection_closed(); // it is gone (active -1)
    void session_established(bool tls);

    // The label value for a destination domain (the domain, or "other").
    [[nodiscard]] std::string destination_label(std::string_view destination);

private:
    prometheus::Family<prometheus::Counter>& attempts_;
    prometheus::Gauge& connections_active_;
    prometheus::Family<prometheus::Counter>& connections_total_;
    prometheus::Histogram& delivery_seconds_;
    std::mutex mutex_;
    std::set<std::string, std::less<>> destinations_;
};

} // namespace ember::smtp
