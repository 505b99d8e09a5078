#include "daemon/submission_personalize.hpp"

#include "core/ascii.hpp"
#include "core/envelope.hpp"
#include "core/log.hpp"
#include "personalize/time_text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <variant>

namespace ember::daemon {

namespace log = core::log;

namespace {

constexpr std::string_view kSendWithinHeader = "X-Ember-Send-Within";

bool starts_with_ci(std::string_view text, std::size_t at, std::string_view lower_needle) {
    if (text.size() - at < lower_needle.size())
        return false;
    return core::ascii_iequals(text.substr(at, lower_needle.size()), lower_needle);
}

// One line of the header: [begin, end) without its line end, next = the
// following line's start.
struct Line {
    std::size_t begin = 0;
    std::size_t end = 0;
    std::size_t next = 0;
};

Line line_at(std::string_view text, std::size_t at) {
    const auto lf = text.find('\n', at);
    Line line{at, lf == std::string_view::npos ? text.size() : lf,
              lf == std::string_view::npos ? text.size() : lf + 1};
    if (line.end > line.begin && text[line.end - 1] == '\r')
        --line.end;
    return line;
}

bool field_named(std::string_view line, std::string_view name) {
    const auto colon = line.find(':');
    if (colon == std::string_view::npos)
        return false;
    auto field = line.substr(0, colon);
    while (!field.empty() && (field.back() == ' ' || field.back() == '\t'))
        field.remove_suffix(1); // obs-optional WSP before the colon (RFC 5322 4.5)
    return core::ascii_iequals(field, name);
}

std::string trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos)
        return {};
    const auto last = text.find_last_not_of(" \t\r\n");
    return std::string(text.substr(first, last - first + 1));
}

// For a reply text: printable ASCII only, at most `max` characters.
std::string printable(std::string_view text, std::size_t max) {
    std::string out;
    for (const char c : text.substr(0, max))
        out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return out;
}

smtp::PolicyVerdict refuse(int code, std::string enhanced, std::string text) {
    return smtp::PolicyVerdict{false, code, std::move(enhanced), std::move(text)};
}

} // namespace

bool may_personalize(std::string_view raw) {
    for (std::size_t i = 0; i + 1 < raw.size(); ++i) {
        switch (raw[i]) {
        case '{':
            if (raw[i + 1] == '{')
                return true;
            break;
        case '=': // "=7B": a '{' in quoted-printable or an encoded-word; "=?": an encoded-word
            if (raw[i + 1] == '?' || starts_with_ci(raw, i + 1, "7b"))
                return true;
            break;
        case 'b':
        case 'B':
            if (starts_with_ci(raw, i, "base64"))
                return true;
            break;
        case 'x':
        case 'X':
            if (starts_with_ci(raw, i, "x-ember-vars"))
                return true;
            break;
        case 'u':
        case 'U': // charsets where '{' is not the octet 0x7B
            if (starts_with_ci(raw, i, "utf-7") || starts_with_ci(raw, i, "utf-16") ||
                starts_with_ci(raw, i, "utf-32") || starts_with_ci(raw, i, "ucs-"))
                return true;
            break;
        default:
            break;
        }
    }
    return false;
}

SendWithin parse_send_within(const smtp::HeaderBlock& header) {
    SendWithin out;
    for (const auto& field : header.fields) {
        if (!core::ascii_iequals(field.name, kSendWithinHeader))
            continue;
        if (out.status != SendWithin::Status::Absent) {
            out.status = SendWithin::Status::Invalid;
            out.error = fmt::format("more than one {} field", kSendWithinHeader);
            return out;
        }
        const auto text = trim(smtp::unfold(field.value));
        const auto within = core::parse_duration(text);
        if (!within || within->count() < 0) {
            out.status = SendWithin::Status::Invalid;
            out.error = fmt::format("{}: \"{}\" is not a duration (a number and a unit: 30m, "
                                    "24h, 7d)",
                                    kSendWithinHeader, printable(text, 64));
            return out;
        }
        out.status = SendWithin::Status::Ok;
        out.within = *within;
    }
    return out;
}

std::optional<smtp::PolicyVerdict> check_personalization(std::string_view raw,
                                                         const personalize::MergeLimits& limits) {
    const auto header = smtp::parse_header_block(raw);
    if (const auto within = parse_send_within(header); within.status == SendWithin::Status::Invalid)
        return refuse(550, "5.6.0", within.error);
    if (!may_personalize(raw))
        return std::nullopt;
    auto compiled = personalize::CompiledMessage::compile(raw, limits);
    if (auto* error = std::get_if<personalize::MergeError>(&compiled))
        return refuse(error->code, error->enhanced, error->text);
    return std::nullopt;
}

std::size_t strip_header_fields(std::string& content, std::string_view name) {
    std::size_t removed = 0;
    std::size_t at = 0;
    while (at < content.size()) {
        const auto line = line_at(content, at);
        if (line.begin == line.end)
            break; // the empty line: the body starts
        const std::string_view text(content.data() + line.begin, line.end - line.begin);
        if (!field_named(text, name)) {
            at = line.next;
            continue;
        }
        auto stop = line.next; // the field's continuation lines go with it
        while (stop < content.size() && (content[stop] == ' ' || content[stop] == '\t'))
            stop = line_at(content, stop).next;
        content.erase(line.begin, stop - line.begin);
        ++removed;
    }
    return removed;
}

std::string submission_sending_domain(const smtp::HeaderBlock& header, std::string_view mail_from) {
    const auto froms = smtp::from_domains(header);
    if (!froms.empty() && !froms.front().empty())
        return froms.front();
    return core::ascii_lower(core::address_domain(mail_from));
}

boost::asio::awaitable<smtp::PolicyVerdict> PersonalizeGate::check(smtp::ContentCheck check) {
    if (check.listener.mode != smtp::ListenerMode::Submission || check.content.empty())
        co_return smtp::PolicyVerdict{};
    auto verdict = check_personalization(check.content, limits_);
    if (!verdict)
        co_return smtp::PolicyVerdict{};
    log::info("personalize.refused", "id={} client={} code={} status={} reason={}", check.queue_id,
              check.info.client_ip.to_string(), verdict->code, verdict->enhanced,
              log::q(verdict->text));
    co_return std::move(*verdict);
}

boost::asio::awaitable<smtp::PolicyVerdict> PolicyChain::check(smtp::ContentCheck check) {
    for (auto* policy : policies_) {
        auto copy = check;
        auto verdict = co_await policy->check(std::move(copy));
        if (!verdict.accept)
            co_return verdict;
    }
    co_return smtp::PolicyVerdict{};
}

std::vector<PlannedSlot> SendTimePlanner::plan(std::string& content, queue::Message& record,
                                               std::int64_t now_ms,
                                               std::string_view queue_id) const {
    const auto header = smtp::parse_header_block(content);
    const auto within = parse_send_within(header);
    if (within.status == SendWithin::Status::Absent)
        return {};
    const auto domain = submission_sending_domain(header, record.envelope.mail_from);
    strip_header_fields(content, kSendWithinHeader);
    record.size = content.size();
    if (within.status != SendWithin::Status::Ok)
        return {}; // refused at submission; a message that got here anyway goes now
    if (within.within > config_.max_window)
        log::info("sto.window_cut", "id={} within={} max={}", queue_id,
                  core::format_duration(within.within), core::format_duration(config_.max_window));
    const auto domain_hours = contacts_.domain_histogram(domain);
    std::vector<PlannedSlot> slots;
    for (auto& r : record.recipients) {
        if (!queue::is_pending(r.state))
            continue;
        const auto contact = contacts_.get(r.spec.address);
        const personalize::HourHistogram none{};
        const auto& hours = contact ? contact->engagement.hours : none;
        const auto slot =
            personalize::choose_send_time(now_ms, within.within, hours, domain_hours, config_);
        r.next_attempt_ms = slot.at_ms;
        log::info("sto.scheduled", "id={} rcpt={} at={} source={} within={} domain={}", queue_id,
                  log::q(r.spec.address), personalize::format_rfc3339(slot.at_ms),
                  personalize::send_time_source_name(slot.source),
                  core::format_duration(within.within), domain);
        slots.push_back(PlannedSlot{r.spec.address, slot});
    }
    return slots;
}

} // namespace ember::daemon
