#include "feedback/dsn.hpp"

#include "feedback/mime.hpp"

#include <algorithm>
#include <cctype>

namespace ember::feedback {
namespace {

constexpr std::size_t kMaxDsnRecipients = 1000;

std::string lower(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) {
        return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    });
    return out;
}

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos)
        return {};
    return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

// "type; value" -> value (RFC 3464 2.1.2 address-type / diagnostic-type).
std::string_view after_type(std::string_view value) {
    const auto semi = value.find(';');
    return semi == std::string_view::npos ? trim(value) : trim(value.substr(semi + 1));
}

// The per-recipient field a name refers to, or null.
std::string* recipient_field(DsnRecipient& r, const std::string& name) {
    if (name == "final-recipient")
        return &r.final_recipient;
    if (name == "original-recipient")
        return &r.original_recipient;
    if (name == "action")
        return &r.action;
    if (name == "status")
        return &r.status;
    if (name == "remote-mta")
        return &r.remote_mta;
    if (name == "diagnostic-code")
        return &r.diagnostic;
    return nullptr;
}

bool has_anything(const DsnRecipient& r) {
    return !r.final_recipient.empty() || !r.original_recipient.empty() || !r.status.empty() ||
           !r.diagnostic.empty() || !r.action.empty();
}

class Builder {
public:
    void field(const mime::Field& f) {
        const auto name = lower(f.name);
        if (message_field(name, f.value))
            return;
        auto* slot = recipient_field(current_, name);
        if (slot == nullptr)
            return;
        // A field this recipient already has starts the next recipient
        // (Postfix writes Final- before Original-Recipient, others after).
        if (!slot->empty())
            flush();
        store(name, f.value);
    }

    void group_end() {
        if (!current_.final_recipient.empty() || !current_.original_recipient.empty())
            flush();
    }

    DeliveryStatus finish() {
        flush();
        return std::move(out_);
    }

private:
    bool message_field(const std::string& name, const std::string& value) {
        if (name == "reporting-mta")
            out_.reporting_mta = std::string(after_type(value));
        else if (name == "received-from-mta")
            out_.received_from_mta = std::string(after_type(value));
        else if (name == "arrival-date")
            out_.arrival_date = value;
        else
            return false;
        return true;
    }

    void store(const std::string& name, const std::string& value) {
        if (name == "final-recipient" || name == "original-recipient") {
            *recipient_field(current_, name) = strip_address_type(value);
        } else if (name == "action") {
            current_.action = lower(trim(value));
        } else if (name == "remote-mta") {
            current_.remote_mta = std::string(after_type(value));
        } else if (name == "diagnostic-code") {
            const auto semi = value.find(';');
            current_.diagnostic_type = semi == std::string::npos
                                           ? ""
                                           : lower(trim(std::string_view(value).substr(0, semi)));
            current_.diagnostic = std::string(after_type(value));
        } else if (name == "status") {
            current_.status = std::string(trim(value).substr(0, trim(value).find_first_of(" \t(")));
        }
    }

    void flush() {
        // RFC 5321 4.5.3.1.8 lets a transaction carry 100 recipients; a
        // report with thousands is hostile and is cut.
        if (has_anything(current_) && out_.recipients.size() < kMaxDsnRecipients)
            out_.recipients.push_back(std::move(current_));
        current_ = {};
    }

    DeliveryStatus out_;
    DsnRecipient current_;
};

} // namespace

std::string strip_address_type(std::string_view value) {
    auto text = after_type(value);
    // An address in angle brackets, perhaps followed by a comment.
    if (text.starts_with('<')) {
        const auto close = text.find('>');
        return std::string(
            trim(text.substr(1, close == std::string_view::npos ? close : close - 1)));
    }
    // RFC 3464 2.1.2: generic-address is any text (a pipe, a file path).
    return std::string(text);
}

DeliveryStatus parse_delivery_status(std::string_view body) {
    Builder builder;
    std::size_t pos = 0;
    while (pos < body.size()) {
        // One group of fields ends at an empty line (RFC 3464 2.1.1).
        const auto blank = body.find("\n\n", pos);
        const auto end = blank == std::string_view::npos ? body.size() : blank + 1;
        for (const auto& f : mime::parse_headers(body.substr(pos, end - pos)).fields)
            builder.field(f);
        builder.group_end();
        pos = end;
        while (pos < body.size() && body[pos] == '\n')
            ++pos;
    }
    return builder.finish();
}

} // namespace ember::feedback
