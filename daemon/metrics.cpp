#include "daemon/metrics.hpp"

#include "queue/store.hpp"

#include <prometheus/gauge.h>
#include <prometheus/text_serializer.h>

#include <array>
#include <utility>

namespace ember::daemon {

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {}

void Metrics::add_refresher(std::function<void()> refresher) {
    refreshers_.push_back(std::move(refresher));
}

std::string Metrics::render() {
    for (const auto& refresh : refreshers_)
        refresh();
    return prometheus::TextSerializer{}.Serialize(registry_->Collect());
}

void add_queue_gauges(Metrics& metrics, const queue::Store& store) {
    using queue::RecipientState;
    constexpr std::array kStates{RecipientState::Queued, RecipientState::Deferred,
                                 RecipientState::Delivered, RecipientState::Failed,
                                 RecipientState::Suppressed};
    auto& family = prometheus::BuildGauge()
                       .Name("ember_queue_recipients")
                       .Help("Recipients in the queue by delivery state")
                       .Register(metrics.registry());
    // Gauge references stay valid as long as the family lives (the registry).
    std::vector<std::pair<RecipientState, prometheus::Gauge*>> gauges;
    for (auto state : kStates)
        gauges.emplace_back(state, &family.Add({{"state", std::string(queue::state_name(state))}}));
    metrics.add_refresher([&store, gauges = std::move(gauges)] {
        const auto counts = store.counts();
        for (const auto& [state, gauge] : gauges) {
            auto it = counts.find(state);
            gauge->Set(it == counts.end() ? 0.0 : static_cast<double>(it->second));
        }
    });
}

} // namespace ember::daemon
