#pragma once
// The daemon's Prometheus registry. Libraries receive `prometheus::Registry&`
// and build their own metric families on it (prometheus-cpp metric objects
// are thread-safe, so a committer or pool thread may update them).
// render() produces the text exposition format (version 0.0.4) that GET
// /metrics serves; it first runs the refreshers, callbacks that copy
// point-in-time values (queue sizes from Store::counts()) into gauges, so a
// scrape never reads a value older than the scrape.
//
// Threads: add_refresher() and render() are called from the I/O thread only
// (refreshers run there and must be quick); the registry itself may be used
// from any thread. Not copyable: the registry is shared by reference.

#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ember::queue {
class Store;
}

namespace ember::daemon {

class Metrics {
public:
    Metrics();
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;

    [[nodiscard]] prometheus::Registry& registry() { return *registry_; }
    [[nodiscard]] std::shared_ptr<prometheus::Registry> shared_registry() { return registry_; }

    // Runs before every scrape, in the order added.
    void add_refresher(std::function<void()> refresher);

    // Runs the refreshers, then serializes every family (text format 0.0.4).
    [[nodiscard]] std::string render();

private:
    std::shared_ptr<prometheus::Registry> registry_;
    std::vector<std::function<void()>> refreshers_;
};

// The exposition format's content type (Prometheus text format 0.0.4).
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// Registers the gauge family ember_queue_recipients{state="..."} (one series
// per recipient state, 0 included so dashboards see every state) and a
// refresher that sets it from store.counts() at each scrape. `store` must
// outlive `metrics`' last render().
void add_queue_gauges(Metrics& metrics, const queue::Store& store);

} // namespace ember::daemon
