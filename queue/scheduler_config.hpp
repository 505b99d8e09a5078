#pragma once
// The scheduler's typed config: the [delivery] keys that shape retries and
// concurrency. Plain data with its defaults; the daemon's config table
// parses and bounds-checks it (see queue/README.md for the keys).

#include "queue/retry.hpp"

#include <cstddef>
#include <cstdint>

namespace ember::queue {

struct SchedulerConfig {
    RetryPolicy retry;
    // Jobs (SMTP transactions) in flight at once, over all destinations.
    std::uint32_t max_jobs = 200;
    // Jobs in flight at once to one destination domain (Postfix's
    // default_destination_concurrency_limit is 20).
    std::uint32_t max_jobs_per_destination = 20;
    // Recipients in one job. RFC 5321 section 4.5.3.1.8: a server must
    // accept at least 100 RCPT per transaction, so 100 never provokes a
    // "452 too many recipients"; more are split into several jobs.
    std::uint32_t max_recipients_per_job = 100;
    // Due recipients read from the store per pass.
    std::size_t batch = 1000;
};

} // namespace ember::queue
