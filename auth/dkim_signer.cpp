#include "auth/dkim_signer.hpp"

#include "auth/dkim_canon.hpp"
#include "auth/dkim_crypto.hpp"
#include "core/assert.hpp"

#include <fmt/core.h>

#include <array>
#include <chrono>
#include <optional>

namespace ember::auth {
namespace {

using dkim::HeaderField;
using dkim::SplitMessage;

// RFC 5322 2.1.1 asks for lines of at most 78 characters.
constexpr std::size_t kWidth = 78;
constexpr std::size_t kTabWidth = 8;

// The h= list in order and, for each name, the field it covers (nullptr: an
// over-signed instance that does not exist and contributes nothing).
struct HeaderSelection {
    std::vector<std::string_view> names;
    std::vector<const HeaderField*> fields;
};

bool oversigned(std::string_view name) {
    for (const auto o : kDkimOversignedHeaders) {
        if (iequals(o, name))
            return true;
    }
    return false;
}

void select_name(std::string_view name, const SplitMessage& message, HeaderSelection& out) {
    // 5.4.2: the n-th listing of a name covers its n-th instance from the bottom.
    for (auto it = message.headers.rbegin(); it != message.headers.rend(); ++it) {
        if (iequals(it->name, name)) {
            out.names.push_back(name);
            out.fields.push_back(&*it);
        }
    }
    if (oversigned(name)) {
        out.names.push_back(name);
        out.fields.push_back(nullptr);
    }
}

HeaderSelection select_headers(const DkimKeyConfig& config, const SplitMessage& message) {
    HeaderSelection out;
    std::vector<std::string_view> done;
    const auto once = [&](std::string_view name) {
        for (const auto d : done) {
            if (iequals(d, name))
                return;
        }
        done.push_back(name);
        select_name(name, message, out);
    };
    if (config.headers.empty()) {
        for (const auto name : kDkimSignedHeaders)
            once(name);
    } else {
        for (const auto& name : config.headers)
            once(name);
    }
    return out;
}

// Builds a header field folded at tag boundaries (RFC 6376 3.2 allows FWS
// around tags and inside h=, bh= and b= values).
class FoldedField {
public:
    explicit FoldedField(std::string_view name) : text_(name) {
        text_ += ':';
        column_ = text_.size();
    }
    // " tag=value;" or a fold and "tag=value;".
    void tag(std::string_view tag, std::string_view value) {
        separate(tag.size() + 2 + value.size());
        text_ += fmt::format("{}={};", tag, value);
        column_ += tag.size() + 2 + value.size();
    }
    // h=: folds after a ':' when a name would pass the width.
    void list(std::string_view tag, const std::vector<std::string_view>& names) {
        separate(tag.size() + 1 + (names.empty() ? 0 : names.front().size() + 1));
        append(tag);
        append("=");
        for (std::size_t i = 0; i < names.size(); ++i) {
            const std::size_t size = names[i].size() + 1;
            if (i > 0 && column_ + size > kWidth)
                fold();
            append(names[i]);
            append(i + 1 == names.size() ? ";" : ":");
        }
    }
    // The last tag starts a line of its own; its value comes after signing.
    void open_last(std::string_view tag) {
        fold();
        append(tag);
        append("=");
    }
    // Appends base64 folded to the width.
    void value(std::string_view b64) {
        while (!b64.empty()) {
            if (column_ >= kWidth)
                fold();
            const auto n = std::min(b64.size(), kWidth - column_);
            append(b64.substr(0, n));
            b64.remove_prefix(n);
        }
    }
    [[nodiscard]] const std::string& text() const { return text_; }

private:
    void separate(std::size_t next) {
        if (column_ + 1 + next > kWidth) {
            fold();
        } else {
            text_ += ' ';
            ++column_;
        }
    }
    void fold() {
        text_ += "\r\n\t";
        column_ = kTabWidth;
    }
    void append(std::string_view s) {
        text_ += s;
        column_ += s.size();
    }

    std::string text_;
    std::size_t column_ = 0;
};

std::int64_t whole_seconds_up(core::Duration d) {
    return std::chrono::ceil<std::chrono::seconds>(d).count();
}

// RFC 6376 3.7: the selected fields canonicalized, each with CRLF, then the
// signature field itself (b= empty) canonicalized, without CRLF.
std::string header_hash_input(const DkimKeyConfig& config, const HeaderSelection& selection,
                              std::string_view signature_field) {
    std::string data;
    const auto canon = config.canonicalization.header;
    for (const auto* field : selection.fields) {
        if (field == nullptr)
            continue;
        dkim::canonicalize_header(canon, field->raw, data);
        data += "\r\n";
    }
    dkim::canonicalize_header(canon, signature_field, data);
    return data;
}

std::string signature_field(const DkimKey& key, const SplitMessage& message,
                            const dkim::Sha256& body_hash, std::int64_t now_unix) {
    const auto& config = key.config;
    const auto selection = select_headers(config, message);
    FoldedField field("DKIM-Signature");
    field.tag("v", "1");
    field.tag("a", dkim_algorithm_name(config.algorithm));
    field.tag("c", format_dkim_canonicalization(config.canonicalization));
    field.tag("d", config.domain);
    field.tag("s", config.selector);
    field.tag("t", std::to_string(now_unix));
    if (config.expire_after)
        field.tag("x", std::to_string(now_unix + whole_seconds_up(*config.expire_after)));
    field.list("h", selection.names);
    field.tag("bh", dkim::base64(body_hash.data(), body_hash.size()));
    field.open_last("b");
    const auto data = header_hash_input(config, selection, field.text());
    const auto signature = dkim::sign(key.key.get(), config.algorithm, data);
    // A loaded key was test-signed at load; only memory exhaustion fails here.
    EMBER_ASSERT(signature.has_value());
    field.value(dkim::base64(*signature));
    return field.text() + "\r\n";
}

} // namespace

DkimSigner::DkimSigner(std::vector<DkimKey> keys) : keys_(std::move(keys)) {
    for (std::size_t i = 0; i < keys_.size(); ++i)
        by_domain_[keys_[i].config.domain].push_back(i);
}

std::vector<const DkimKey*> DkimSigner::keys_for(std::string_view from_domain,
                                                 std::int64_t now_unix) const {
    std::string lowered = ascii_lower(from_domain);
    while (!lowered.empty() && lowered.back() == '.')
        lowered.pop_back();
    std::string_view domain = lowered;
    std::vector<const DkimKey*> keys;
    while (!domain.empty()) {
        if (const auto it = by_domain_.find(domain); it != by_domain_.end()) {
            for (const auto i : it->second) {
                if (keys_[i].valid_at(now_unix))
                    keys.push_back(&keys_[i]);
            }
            if (!keys.empty())
                return keys;
        }
        const auto dot = domain.find('.');
        if (dot == std::string_view::npos)
            break;
        domain.remove_prefix(dot + 1);
    }
    return keys;
}

std::string DkimSigner::sign(std::string_view message, std::string_view from_domain,
                             std::int64_t now_unix) const {
    const auto keys = keys_for(from_domain, now_unix);
    if (keys.empty())
        return {};
    const auto split = dkim::split_message(message);
    // One body hash per body canonicalization, however many keys sign.
    std::array<std::optional<dkim::Sha256>, 2> body_hashes;
    std::string out;
    for (const auto* key : keys) {
        const auto canon = key->config.canonicalization.body;
        auto& hash = body_hashes[canon == DkimCanon::Relaxed ? 0 : 1];
        if (!hash)
            hash = dkim::body_hash(canon, split.body);
        out += signature_field(*key, split, *hash, now_unix);
    }
    return out;
}

std::string dkim_signature(const DkimKey& key, std::string_view message, std::int64_t now_unix) {
    const auto split = dkim::split_message(message);
    const auto hash = dkim::body_hash(key.config.canonicalization.body, split.body);
    return signature_field(key, split, hash, now_unix);
}

} // namespace ember::auth
