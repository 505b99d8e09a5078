#include "smtp/client_metrics.hpp"

namespace ember::smtp {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

prometheus::Histogram::BucketBoundaries job_buckets() {
    // From a pooled connection on a LAN (milliseconds) to a slow MX that
    // takes its full DATA timeouts (minutes).
    return {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
}

std::string_view result_name(core::OutcomeKind kind) {
    return core::kind_name(kind);
}

} // namespace

ClientMetrics::ClientMetrics(prometheus::Registry& r)
    : attempts_(BuildCounter()
                    .Name("ember_delivery_attempts_total")
                    .Help("Recipient delivery attempts by result and destination")
                    .Register(r)),
      connections_active_(BuildGauge()
                              .Name("ember_delivery_connections_active")
                              .Help("Outbound SMTP connections open now, idle ones included")
                              .Register(r)
                              .Add({})),
      connections_total_(BuildCounter()
                             .Name("ember_delivery_connections_total")
                             .Help("Outbound SMTP sessions established, by TLS use")
                             .Register(r)),
      delivery_seconds_(BuildHistogram()
                            .Name("ember_delivery_seconds")
                            .Help("Time to deliver one job: DNS, connection and transaction")
                            .Register(r)
                            .Add({}, job_buckets())) {}

std::string ClientMetrics::destination_label(std::string_view destination) {
    const std::lock_guard lock(mutex_);
    if (destinations_.find(destination) != destinations_.end())
        return std::string(destination);
    if (destinations_.size() >= kMaxDestinationLabels || destination.empty())
        return "other";
    destinations_.emplace(destination);
    return std::string(destination);
}

void ClientMetrics::record_outcome(const core::Outcome& outcome, std::string_view destination) {
    attempts_
        .Add({{"result", std::string(result_name(outcome.kind))},
              {"destination", destination_label(destination)}})
        .Increment();
}

void ClientMetrics::record_job_seconds(double seconds) {
    delivery_seconds_.Observe(seconds);
}

void ClientMetrics::connection_opened() {
    connections_active_.Increment();
}

void ClientMetrics::connection_closed() {
    connections_active_.Decrement();
}

void ClientMetrics::session_established(bool tls) {
    connections_total_.Add({{"tls", tls ? "yes" : "no"}}).Increment();
}

} // namespace ember::smtp
