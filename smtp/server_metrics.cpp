#include "smtp/server_metrics.hpp"

namespace ember::smtp {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

prometheus::Histogram::BucketBoundaries commit_buckets() {
    // From a fast SSD's fsync (~0.5 ms) to a congested disk (seconds).
    return {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
}

} // namespace

ServerMetrics::ServerMetrics(prometheus::Registry& r)
    : sessions_total(BuildCounter()
                         .Name("ember_smtp_sessions_total")
                         .Help("SMTP sessions accepted by the server")
                         .Register(r)
                         .Add({})),
      sessions_active(BuildGauge()
                          .Name("ember_smtp_sessions_active")
                          .Help("SMTP sessions open now")
                          .Register(r)
                          .Add({})),
      connections_refused(BuildCounter()
                              .Name("ember_smtp_connections_refused_total")
                              .Help("Connections refused with 421 by reason")
                              .Register(r)),
      messages_accepted(BuildCounter()
                            .Name("ember_smtp_messages_accepted_total")
                            .Help("Messages committed to the queue and acknowledged with 250")
                            .Register(r)
                            .Add({})),
      messages_rejected(BuildCounter()
                            .Name("ember_smtp_messages_rejected_total")
                            .Help("Messages refused at the end of DATA/BDAT, by reason")
                            .Register(r)),
      recipients_rejected(BuildCounter()
                              .Name("ember_smtp_recipients_rejected_total")
                              .Help("RCPT TO commands refused, by reason")
                              .Register(r)),
      recipients_accepted(BuildCounter()
                              .Name("ember_smtp_recipients_accepted_total")
                              .Help("Recipients of accepted messages")
                              .Register(r)
                              .Add({})),
      bytes_accepted(BuildCounter()
                         .Name("ember_smtp_bytes_accepted_total")
                         .Help("Bytes of accepted message content")
                         .Register(r)
                         .Add({})),
      auth_attempts(BuildCounter()
                        .Name("ember_smtp_auth_attempts_total")
                        .Help("AUTH attempts by result")
                        .Register(r)),
      tls_handshakes(BuildCounter()
                         .Name("ember_smtp_tls_handshakes_total")
                         .Help("Server TLS handshakes by result")
                         .Register(r)),
      commit_seconds(BuildHistogram()
                         .Name("ember_queue_commit_seconds")
                         .Help("Time from end of data to a durable queue commit")
                         .Register(r)
                         .Add({}, commit_buckets())) {}

void ServerMetrics::message_rejected(const std::string& reason) {
    messages_rejected.Add({{"reason", reason}}).Increment();
}

void ServerMetrics::recipient_rejected(const std::string& reason) {
    recipients_rejected.Add({{"reason", reason}}).Increment();
}

void ServerMetrics::connection_refused(const std::string& reason) {
    connections_refused.Add({{"reason", reason}}).Increment();
}

} // namespace ember::smtp
