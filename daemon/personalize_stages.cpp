#include "daemon/personalize_stages.hpp"

#include "core/ascii.hpp"
#include "core/async.hpp"
#include "core/log.hpp"
#include "daemon/feedback_service.hpp"
#include "personalize/rfc2047.hpp"
#include "personalize/time_text.hpp"

#include <fmt/format.h>

#include <map>
#include <variant>

namespace ember::daemon {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
namespace log = core::log;
namespace pz = personalize;

// The line starting at `pos` ends (after its CRLF or LF) where this says;
// npos when the text ends first without a line end.
std::size_t line_end(std::string_view s, std::size_t pos) {
    const auto nl = s.find('\n', pos);
    return nl == std::string_view::npos ? s.size() : nl + 1;
}

bool blank_line(std::string_view s, std::size_t pos) {
    return s.substr(pos, 2) == "\r\n" || s.substr(pos, 1) == "\n";
}

// The name of the field starting at `pos` ("" for a line without a colon).
std::string_view field_name(std::string_view s, std::size_t pos) {
    const auto end = line_end(s, pos);
    const auto colon = s.find(':', pos);
    if (colon == std::string_view::npos || colon >= end)
        return {};
    auto name = s.substr(pos, colon - pos);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
        name.remove_suffix(1);
    return name;
}

// One header field: [begin, end) with its continuation lines.
struct FieldSpan {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::string_view name;
};

// The header's fields, in order; `body` is where the header ends.
std::vector<FieldSpan> header_fields(std::string_view s, std::size_t& body) {
    std::vector<FieldSpan> out;
    std::size_t pos = 0;
    while (pos < s.size() && !blank_line(s, pos)) {
        FieldSpan f{pos, line_end(s, pos), field_name(s, pos)};
        while (f.end < s.size() && (s[f.end] == ' ' || s[f.end] == '\t'))
            f.end = line_end(s, f.end);
        out.push_back(f);
        pos = f.end;
    }
    body = pos;
    return out;
}

bool named(std::string_view name, const std::vector<std::string_view>& names) {
    for (const auto n : names)
        if (core::ascii_iequals(name, n))
            return true;
    return false;
}

std::string field_text(std::string_view name, std::string value) {
    for (auto& c : value)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            c = ' ';
    std::string out;
    pz::append_folded_field(name, pz::encode_words(value), out);
    return out;
}

core::Outcome local(core::OutcomeKind kind, int code, std::string enhanced, std::string text) {
    core::Outcome o;
    o.kind = kind;
    o.scope = core::OutcomeScope::Recipient;
    o.code = code;
    o.enhanced = std::move(enhanced);
    o.text = std::move(text);
    o.command = "personalize";
    o.local = true;
    return o;
}

// What one recipient is rendered with: owned, so a render may run on the
// worker pool after the stage's locals are gone.
struct RenderInput {
    json::object hook_vars;
    json::object attributes;
    std::vector<std::string> tags;
    std::vector<std::pair<std::string, std::string>> headers;
};

pz::Variables variables_of(const RenderInput& in, const pz::CompiledMessage& message) {
    pz::Variables vars;
    vars.add(in.hook_vars).add(message.message_variables()).add(in.attributes).tags(in.tags);
    return vars;
}

using Rendered = std::variant<std::string, pz::MergeError>;

Rendered render_one(const pz::CompiledMessage& message, const RenderInput& in) {
    Rendered out = message.personalized() ? message.render(variables_of(in, message))
                                          : Rendered(std::string(message.content()));
    if (auto* text = std::get_if<std::string>(&out); text != nullptr && !in.headers.empty())
        *text = set_fields(*text, in.headers);
    return out;
}

// The per-job working state of the stage.
struct Work {
    std::shared_ptr<DispatchContext> ctx;
    std::shared_ptr<const CompiledEntry> entry;
    std::vector<std::optional<pz::Contact>> contacts;   // parallel to ctx->recipients
    std::vector<std::optional<pz::HookAnswer>> answers; // likewise
};

// The recipients that share one rendering.
struct Group {
    std::string key;
    std::vector<std::size_t> members;
    std::shared_ptr<const std::string> content;
};

RenderInput render_input(Work& w, std::size_t i) {
    RenderInput in;
    if (auto& c = w.contacts[i]) {
        in.attributes = std::move(c->attributes);
        in.tags = std::move(c->tags);
    }
    std::string variant = w.ctx->recipients[i].variant; // an A/B test's cell wins
    if (auto& a = w.answers[i]) {
        in.hook_vars = std::move(a->vars);
        in.headers = std::move(a->headers);
        if (variant.empty())
            variant = a->variant;
    }
    if (!variant.empty()) {
        // ember-hook(7) variants: the variable and the tag (see the header);
        // a hook's own `variant` variable stays unless a test assigned one.
        if (!w.ctx->recipients[i].variant.empty() || !in.hook_vars.contains("variant"))
            in.hook_vars["variant"] = variant;
        in.tags.push_back("variant:" + variant);
    }
    return in;
}

std::string group_key(const pz::CompiledMessage& message, const RenderInput& in) {
    std::string key = "p:";
    if (message.personalized())
        key += message.render_key(variables_of(in, message));
    for (const auto& [name, value] : in.headers)
        key += fmt::format("\x1fh:{}:{}", core::ascii_lower(name), value);
    return key;
}

void log_answer_warnings(const Work& w, const pz::HookAnswer& a, std::string_view address) {
    for (const auto& warning : a.warnings)
        log::warning("personalize.hook_answer_ignored", "id={} rcpt={} warning={}",
                     w.ctx->job.queue_id, log::q(address), log::q(warning));
}

void emit_skip(PersonalizeService& service, const DispatchContext& ctx, const core::JobRecipient& r,
               const std::string& reason) {
    auto* feedback = service.feedback();
    if (feedback == nullptr)
        return;
    feedback::Event e;
    e.type = feedback::EventType::Suppressed;
    e.queue_id = ctx.job.queue_id;
    e.recipient = r.spec.address;
    e.sending_domain = ctx.sending_domain;
    e.destination = ctx.job.domain;
    e.text = reason;
    e.source = "hook";
    e.extra["skipped"] = true;
    e.extra["skip_reason"] = reason;
    // A skip is the sender's choice, not the receiver's verdict: it moves
    // no rate and no guardrail.
    feedback->emit(std::move(e), EmitOptions{.count = false});
}

// The expiry of the job's message: the queue id's high 48 bits are its
// arrival time in ms (queue/scheduler.cpp uses the same fallback).
std::int64_t expiry_ms(const DispatchContext& ctx, std::int64_t max_retry_ms) {
    return static_cast<std::int64_t>(ctx.job.message_id >> 16) + max_retry_ms;
}

void apply_answer(PersonalizeService& service, Work& w, std::size_t i, pz::HookAnswer answer) {
    auto& ctx = *w.ctx;
    auto& r = ctx.recipients[i];
    const auto& address = r.recipient.spec.address;
    log_answer_warnings(w, answer, address);
    if (answer.skip_reason) {
        r.decided = hook_skipped_outcome(*answer.skip_reason);
        log::info("personalize.skipped", "id={} rcpt={} reason={}", ctx.job.queue_id,
                  log::q(address), log::q(*answer.skip_reason));
        emit_skip(service, ctx, r.recipient, *answer.skip_reason);
        return;
    }
    if (answer.send_at_ms && *answer.send_at_ms > ctx.now_ms + 1000 &&
        !service.held_before(ctx.job.message_id, r.recipient.index, ctx.now_ms)) {
        const auto until = std::min(*answer.send_at_ms, expiry_ms(ctx, service.max_retry_ms()));
        if (until > ctx.now_ms) {
            r.decided = hook_held_outcome(until);
            service.note_held(ctx.job.message_id, r.recipient.index, until);
            return;
        }
    }
    w.answers[i] = std::move(answer);
}

// One decision per recipient in `order`. Failures are logged by the hook
// client (hook.failed, once per batch, with on_error).
void apply_decisions(PersonalizeService& service, Work& w, const std::vector<std::size_t>& order,
                     std::vector<pz::HookDecision> decisions) {
    for (std::size_t k = 0; k < order.size() && k < decisions.size(); ++k) {
        auto& d = decisions[k];
        if (d.action == pz::HookAction::Apply)
            apply_answer(service, w, order[k], std::move(d.answer));
        else if (d.action == pz::HookAction::Defer)
            w.ctx->recipients[order[k]].decided = hook_deferred_outcome(d.error);
    }
}

std::shared_ptr<const pz::HookRequest> hook_request(const Work& w, std::vector<std::size_t>& order,
                                                    std::int64_t now_ms) {
    auto request = std::make_shared<pz::HookRequest>();
    const auto& e = *w.entry;
    request->message_id = w.ctx->job.queue_id;
    request->campaign = e.campaign;
    request->tags = e.tags;
    request->from = e.from;
    request->subject = e.subject;
    request->variables = e.message->names();
    for (std::size_t i = 0; i < w.ctx->recipients.size(); ++i) {
        const auto& r = w.ctx->recipients[i];
        if (r.decided)
            continue;
        const auto& c = w.contacts[i];
        request->recipients.push_back(
            pz::make_hook_recipient(r.recipient.spec.address, c ? &*c : nullptr, now_ms));
        order.push_back(i);
    }
    return request;
}

// Recipients grouped by what their rendering depends on, in first-seen order.
std::vector<Group> group_recipients(Work& w, std::vector<RenderInput>& inputs) {
    std::vector<Group> groups;
    std::map<std::string, std::size_t> index;
    const auto& message = *w.entry->message;
    for (std::size_t i = 0; i < w.ctx->recipients.size(); ++i) {
        if (w.ctx->recipients[i].decided)
            continue;
        auto in = render_input(w, i);
        auto key = group_key(message, in);
        const auto [it, fresh] = index.try_emplace(key, groups.size());
        if (fresh) {
            groups.push_back(Group{std::move(key), {}, {}});
            inputs.push_back(std::move(in));
        }
        groups[it->second].members.push_back(i);
    }
    return groups;
}

void settle_group(DispatchContext& ctx, Group& g, Rendered rendered) {
    if (auto* error = std::get_if<pz::MergeError>(&rendered)) {
        log::warning("personalize.render_failed", "id={} recipients={} error={}", ctx.job.queue_id,
                     g.members.size(), log::q(error->text));
        for (const auto i : g.members)
            ctx.recipients[i].decided = render_failed_outcome(*error);
        return;
    }
    auto content = std::make_shared<const std::string>(std::move(std::get<std::string>(rendered)));
    for (const auto i : g.members) {
        ctx.recipients[i].render_key = g.key;
        ctx.recipients[i].content = content;
    }
}

// Whether the stage has to give recipients their own copy at all.
bool needs_merge(const Work& w) {
    if (w.entry->message->personalized() || w.entry->stripped)
        return true;
    for (const auto& a : w.answers)
        if (a && (!a->headers.empty()))
            return true;
    return false;
}

} // namespace

// ---- pure helpers -----------------------------------------------------------

std::optional<std::string> strip_fields(std::string_view content,
                                        const std::vector<std::string_view>& names) {
    std::size_t body = 0;
    const auto fields = header_fields(content, body);
    bool any = false;
    for (const auto& f : fields)
        any = any || named(f.name, names);
    if (!any)
        return std::nullopt;
    std::string out;
    out.reserve(content.size());
    for (const auto& f : fields)
        if (!named(f.name, names))
            out.append(content.substr(f.begin, f.end - f.begin));
    out.append(content.substr(body));
    return out;
}

std::string set_fields(std::string_view content,
                       const std::vector<std::pair<std::string, std::string>>& fields) {
    std::size_t body = 0;
    const auto spans = header_fields(content, body);
    std::vector<bool> placed(fields.size(), false);
    std::string out;
    out.reserve(content.size() + 256);
    for (const auto& f : spans) {
        bool replaced = false;
        for (std::size_t k = 0; k < fields.size(); ++k) {
            if (!core::ascii_iequals(f.name, fields[k].first))
                continue;
            replaced = true;
            if (!placed[k])
                out += field_text(fields[k].first, fields[k].second);
            placed[k] = true;
        }
        if (!replaced)
            out.append(content.substr(f.begin, f.end - f.begin));
    }
    out.append(content.substr(body));
    std::string added;
    for (std::size_t k = 0; k < fields.size(); ++k)
        if (!placed[k])
            added += field_text(fields[k].first, fields[k].second);
    return added.empty() ? out : insert_after_trace(out, added);
}

core::Outcome hook_skipped_outcome(std::string_view reason) {
    // Suppressed: final, no DSN, not an attempt (core/outcome.hpp). RFC
    // 3463 X.7.1 as for the suppression list: not sent by policy.
    return local(core::OutcomeKind::Suppressed, 550, "5.7.1",
                 fmt::format("skipped by the personalization hook: {}", reason));
}

core::Outcome hook_held_outcome(std::int64_t until_ms) {
    auto o = local(
        core::OutcomeKind::Throttled, 451, "4.7.0",
        fmt::format("held by the personalization hook until {}", pz::format_rfc3339(until_ms)));
    o.not_before_ms = until_ms;
    return o;
}

core::Outcome hook_deferred_outcome(std::string_view error) {
    // RFC 3463 X.3.0: a failure of our own mail system; on_error = "defer".
    return local(core::OutcomeKind::Deferred, 451, "4.3.0",
                 fmt::format("personalization hook failed: {}", error));
}

core::Outcome render_failed_outcome(const pz::MergeError& error) {
    return local(core::OutcomeKind::Failed, error.code, error.enhanced, error.text);
}

// ---- the stage --------------------------------------------------------------

namespace {

// The job's working state, or nullptr when the stage has nothing to do: a
// DSN (null sender: it quotes mail that may hold "{{", never merged), a
// message that does not compile (logged by compiled(): sent as queued), or
// plain relay without a hook.
std::shared_ptr<Work> prepare(PersonalizeService& service, std::shared_ptr<DispatchContext> ctx) {
    if (!ctx->job.content || ctx->job.envelope.mail_from.empty())
        return nullptr;
    auto w = std::make_shared<Work>();
    w->entry = service.compiled(ctx->job);
    if (!w->entry->message)
        return nullptr;
    const bool personalized = w->entry->message->personalized();
    const bool hook = service.hook() != nullptr;
    if (!personalized && !hook && !w->entry->stripped)
        return nullptr;
    const auto n = ctx->recipients.size();
    w->contacts.resize(n);
    w->answers.resize(n);
    if (personalized || hook) {
        auto& contacts = service.contacts();
        for (std::size_t i = 0; i < n; ++i)
            if (!ctx->recipients[i].decided)
                w->contacts[i] = contacts.get(ctx->recipients[i].recipient.spec.address);
    }
    w->ctx = std::move(ctx);
    return w;
}

asio::awaitable<void> ask_hook(PersonalizeService* service, std::shared_ptr<Work> w) {
    auto* hook = service->hook();
    if (hook == nullptr)
        co_return;
    std::vector<std::size_t> order;
    auto request = hook_request(*w, order, w->ctx->now_ms);
    if (order.empty())
        co_return;
    auto decisions = co_await hook->call(std::move(request));
    apply_decisions(*service, *w, order, std::move(decisions));
}

std::vector<Rendered> render_all(const pz::CompiledMessage& message,
                                 const std::vector<RenderInput>& inputs) {
    std::vector<Rendered> out;
    out.reserve(inputs.size());
    for (const auto& in : inputs)
        out.push_back(render_one(message, in));
    return out;
}

asio::awaitable<void> merge(PersonalizeService* service, std::shared_ptr<Work> w) {
    if (!needs_merge(*w))
        co_return;
    auto inputs = std::make_shared<std::vector<RenderInput>>();
    auto groups = group_recipients(*w, *inputs);
    if (groups.empty())
        co_return;
    auto message = w->entry->message;
    std::vector<Rendered> rendered;
    auto* pool = service->pool();
    if (pool != nullptr && groups.size() > 1 &&
        groups.size() * message->content().size() > kOffloadBytes) {
        auto task = [message, inputs] {
            return render_all(*message, *inputs);
        };
        rendered = co_await core::offload(pool->get_executor(), std::move(task));
    } else {
        rendered = render_all(*message, *inputs);
    }
    for (std::size_t g = 0; g < groups.size() && g < rendered.size(); ++g)
        settle_group(*w->ctx, groups[g], std::move(rendered[g]));
}

} // namespace

asio::awaitable<void> PersonalizeStage::apply(std::shared_ptr<DispatchContext> ctx) {
    auto w = prepare(service_, std::move(ctx));
    if (!w)
        co_return;
    co_await ask_hook(&service_, w);
    co_await merge(&service_, w);
}

} // namespace ember::daemon
