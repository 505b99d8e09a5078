#include "daemon/dispatch.hpp"

#include "core/ascii.hpp"
#include "core/assert.hpp"
#include "smtp/message_header.hpp"

#include <fmt/format.h>

#include <map>
#include <tuple>

namespace ember::daemon {
namespace {

bool changed(const DispatchRecipient& r, std::string_view job_mail_from) {
    return r.mail_from != job_mail_from || !r.prepend.empty() || !r.render_key.empty();
}

// The end of the header field starting at `pos` (after its last
// continuation line), or npos when the header section ends first.
std::size_t field_end(std::string_view content, std::size_t pos) {
    for (;;) {
        const auto eol = content.find("\r\n", pos);
        if (eol == std::string_view::npos)
            return std::string_view::npos;
        pos = eol + 2;
        if (pos >= content.size() || (content[pos] != ' ' && content[pos] != '\t'))
            return pos;
    }
}

bool trace_field_at(std::string_view content, std::size_t pos) {
    const auto rest = content.substr(pos);
    const auto starts = [&](std::string_view name) {
        return rest.size() > name.size() && core::ascii_iequals(rest.substr(0, name.size()), name);
    };
    return starts("Received:") || starts("Return-Path:");
}

// One sub-job: the recipients (indexes into the context) that share an
// envelope sender, prepended fields and render key.
struct Group {
    std::vector<std::size_t> members;
};

core::DeliveryJob sub_job(const DispatchContext& ctx, const Group& g) {
    const auto& first = ctx.recipients[g.members.front()];
    core::DeliveryJob job;
    job.message_id = ctx.job.message_id;
    job.queue_id = ctx.job.queue_id;
    job.domain = ctx.job.domain;
    job.envelope = ctx.job.envelope;
    job.envelope.mail_from = first.mail_from;
    job.attempt = ctx.job.attempt;
    job.variant = variant_of(first, ctx.job.envelope.mail_from);
    const auto& base = first.render_key.empty() ? ctx.job.content : first.content;
    if (first.prepend.empty())
        job.content = base;
    else
        job.content = std::make_shared<const std::string>(insert_after_trace(*base, first.prepend));
    for (const auto i : g.members)
        job.recipients.push_back(ctx.recipients[i].recipient);
    return job;
}

} // namespace

std::string variant_of(const DispatchRecipient& r, std::string_view job_mail_from) {
    if (!changed(r, job_mail_from))
        return {};
    return fmt::format("f={}|h={:x}|r={}", r.mail_from, std::hash<std::string>{}(r.prepend),
                       r.render_key);
}

std::string insert_after_trace(std::string_view content, std::string_view fields) {
    std::size_t pos = 0;
    while (pos < content.size() && trace_field_at(content, pos)) {
        const auto end = field_end(content, pos);
        if (end == std::string_view::npos)
            break;
        pos = end;
    }
    std::string out;
    out.reserve(content.size() + fields.size());
    out.append(content.substr(0, pos));
    out.append(fields);
    out.append(content.substr(pos));
    return out;
}

Dispatcher::Dispatcher(core::Deliverer& inner, std::function<std::int64_t()> clock)
    : inner_(inner), clock_(std::move(clock)) {}

void Dispatcher::add_stage(std::shared_ptr<DispatchStage> stage) {
    stages_.push_back(std::move(stage));
}

boost::asio::awaitable<std::vector<core::Outcome>> Dispatcher::deliver(core::DeliveryJob job) {
    if (stages_.empty()) {
        auto outcomes = co_await inner_.deliver(std::move(job));
        co_return outcomes;
    }
    auto ctx = std::make_shared<DispatchContext>();
    ctx->now_ms = clock_();
    ctx->sending_domain = sending_domain_of(job);
    ctx->recipients.reserve(job.recipients.size());
    for (const auto& r : job.recipients)
        ctx->recipients.push_back(
            DispatchRecipient{r, std::nullopt, job.envelope.mail_from, {}, {}, {}});
    ctx->job = std::move(job);
    for (const auto& stage : stages_)
        co_await stage->apply(ctx);

    // Group by what makes the bytes or the envelope differ, in first-seen
    // order so the common single group keeps the job's recipient order.
    std::map<std::tuple<std::string, std::string, std::string>, std::size_t> index;
    std::vector<Group> groups;
    for (std::size_t i = 0; i < ctx->recipients.size(); ++i) {
        const auto& r = ctx->recipients[i];
        if (r.decided)
            continue;
        const auto key = std::make_tuple(r.mail_from, r.prepend, r.render_key);
        const auto [it, fresh] = index.try_emplace(key, groups.size());
        if (fresh)
            groups.emplace_back();
        groups[it->second].members.push_back(i);
    }
    std::vector<core::Outcome> outcomes(ctx->recipients.size());
    for (std::size_t i = 0; i < ctx->recipients.size(); ++i)
        if (ctx->recipients[i].decided)
            outcomes[i] = *ctx->recipients[i].decided;
    for (const auto& g : groups) {
        auto part = sub_job(*ctx, g);
        auto answered = co_await inner_.deliver(std::move(part));
        EMBER_ASSERT(answered.size() == g.members.size());
        for (std::size_t k = 0; k < g.members.size() && k < answered.size(); ++k)
            outcomes[g.members[k]] = std::move(answered[k]);
    }
    co_return outcomes;
}

} // namespace ember::daemon
