#include "personalize/contacts.hpp"

#include "core/ascii.hpp"
#include "core/log.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <mutex>
#include <unordered_map>

namespace ember::personalize {

namespace json = boost::json;
using queue::CommitResult;
using queue::CommitStatus;
using queue::Store;

namespace {

constexpr std::int64_t kRecordVersion = 1;
constexpr std::size_t kMaxDomainSize = 253;

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos)
        return {};
    return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
}

bool has_tag(const std::vector<std::string>& tags, std::string_view tag) {
    return std::any_of(tags.begin(), tags.end(),
                       [tag](const std::string& t) { return core::ascii_iequals(t, tag); });
}

std::optional<std::string> normalize_domain(std::string_view domain) {
    auto d = core::ascii_lower(trim(domain));
    if (!d.empty() && d.back() == '.')
        d.pop_back();
    if (d.empty() || d.size() > kMaxDomainSize)
        return std::nullopt;
    for (const char c : d)
        if (static_cast<unsigned char>(c) <= ' ' || c == '\x7f')
            return std::nullopt;
    return d;
}

// ---- Record encoding ----

json::array encode_histogram(const HourHistogram& h) {
    json::array out;
    for (std::size_t i = 0; i < h.size(); ++i)
        if (h[i] != 0)
            out.push_back(json::array{i, h[i]});
    return out;
}

bool decode_histogram(const json::value* v, HourHistogram& h) {
    if (v == nullptr)
        return true;
    if (!v->is_array())
        return false;
    for (const auto& item : v->get_array()) {
        const auto* pair = item.if_array();
        if (pair == nullptr || pair->size() != 2 || !(*pair)[0].is_int64() ||
            !(*pair)[1].is_int64())
            return false;
        const auto hour = (*pair)[0].get_int64();
        const auto count = (*pair)[1].get_int64();
        if (hour < 0 || hour >= static_cast<std::int64_t>(kHoursPerWeek) || count < 0 ||
            count > UINT32_MAX)
            return false;
        h[static_cast<std::size_t>(hour)] = static_cast<std::uint32_t>(count);
    }
    return true;
}

json::object encode_engagement(const Engagement& e) {
    json::object out;
    if (e.last_delivery_ms > 0)
        out["d"] = e.last_delivery_ms;
    if (e.last_open_ms > 0)
        out["o"] = e.last_open_ms;
    if (e.last_click_ms > 0)
        out["c"] = e.last_click_ms;
    if (!e.days.empty()) {
        json::array days;
        for (const auto& b : e.days)
            days.push_back(json::array{b.day, b.delivered, b.opens, b.clicks});
        out["b"] = std::move(days);
    }
    if (histogram_total(e.hours) != 0)
        out["h"] = encode_histogram(e.hours);
    return out;
}

std::int64_t int_or(const json::object& o, std::string_view key, bool& ok) {
    const auto* v = o.if_contains(key);
    if (v == nullptr)
        return 0;
    if (!v->is_int64()) {
        ok = false;
        return 0;
    }
    return v->get_int64();
}

bool decode_days(const json::value* v, std::vector<DayBucket>& days) {
    if (v == nullptr)
        return true;
    if (!v->is_array())
        return false;
    for (const auto& item : v->get_array()) {
        const auto* a = item.if_array();
        if (a == nullptr || a->size() != 4)
            return false;
        std::array<std::int64_t, 4> n{};
        for (std::size_t i = 0; i < 4; ++i) {
            if (!(*a)[i].is_int64() || (*a)[i].get_int64() < 0 || (*a)[i].get_int64() > UINT32_MAX)
                return false;
            n[i] = (*a)[i].get_int64();
        }
        days.push_back({static_cast<std::int32_t>(n[0]), static_cast<std::uint32_t>(n[1]),
                        static_cast<std::uint32_t>(n[2]), static_cast<std::uint32_t>(n[3])});
    }
    return std::is_sorted(days.begin(), days.end(),
                          [](const DayBucket& a, const DayBucket& b) { return a.day < b.day; });
}

bool decode_engagement(const json::value* v, Engagement& e) {
    if (v == nullptr)
        return true;
    const auto* o = v->if_object();
    if (o == nullptr)
        return false;
    bool ok = true;
    e.last_delivery_ms = int_or(*o, "d", ok);
    e.last_open_ms = int_or(*o, "o", ok);
    e.last_click_ms = int_or(*o, "c", ok);
    return ok && decode_days(o->if_contains("b"), e.days) &&
           decode_histogram(o->if_contains("h"), e.hours);
}

bool decode_tags(const json::value* v, std::vector<std::string>& tags) {
    if (v == nullptr)
        return true;
    if (!v->is_array())
        return false;
    for (const auto& t : v->get_array()) {
        if (!t.is_string())
            return false;
        tags.emplace_back(t.get_string());
    }
    return true;
}

std::optional<json::object> parse_object(std::string_view text) {
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    if (ec || !v.is_object())
        return std::nullopt;
    return std::move(v.get_object());
}

} // namespace

// ---- Validation ----

std::optional<std::string> normalize_contact_address(std::string_view address) {
    auto a = trim(address);
    if (a.size() >= 2 && a.front() == '<' && a.back() == '>')
        a = trim(a.substr(1, a.size() - 2));
    const auto at = a.rfind('@');
    if (a.empty() || a.size() > kMaxAddressSize || at == std::string_view::npos || at == 0 ||
        at + 1 == a.size())
        return std::nullopt;
    for (const char c : a)
        if (static_cast<unsigned char>(c) <= ' ' || c == '\x7f')
            return std::nullopt;
    return core::ascii_lower(a);
}

std::string check_attribute_name(std::string_view name) {
    if (name.empty())
        return "an attribute name is empty";
    if (name.size() > kMaxAttributeName)
        return "attribute name longer than 128 octets";
    if (!std::all_of(name.begin(), name.end(), name_char))
        return "attribute name \"" + std::string(name) +
               "\" may hold only ASCII letters, digits and _ . : -";
    return {};
}

std::string check_attribute_value(const json::value& value) {
    if (value.is_string() || value.is_number() || value.is_bool())
        return {};
    if (value.is_array()) {
        for (const auto& item : value.get_array())
            if (!item.is_string() && !item.is_number() && !item.is_bool())
                return "list elements must be strings, numbers or booleans";
        return {};
    }
    if (value.is_object())
        return "attribute values cannot be objects";
    return "null removes an attribute; it is not a value";
}

std::string check_tag(std::string_view tag) {
    if (tag.empty())
        return "a tag is empty";
    if (tag.size() > kMaxTagSize)
        return "tag longer than 128 octets";
    if (!std::all_of(tag.begin(), tag.end(), name_char))
        return "tag \"" + std::string(tag) + "\" may hold only ASCII letters, digits and _ . : -";
    return {};
}

std::string apply_patch(Contact& contact, const ContactPatch& patch) {
    Contact next = contact;
    if (patch.tags) {
        next.tags.clear();
        for (const auto& t : *patch.tags) {
            if (auto why = check_tag(t); !why.empty())
                return why;
            if (!has_tag(next.tags, t))
                next.tags.push_back(t);
        }
    }
    for (const auto& t : patch.add_tags) {
        if (auto why = check_tag(t); !why.empty())
            return why;
        if (!has_tag(next.tags, t))
            next.tags.push_back(t);
    }
    if (next.tags.size() > kMaxTags)
        return "more than 100 tags";
    for (const auto& [name, value] : patch.attributes) {
        if (auto why = check_attribute_name(name); !why.empty())
            return why;
        if (value.is_null()) {
            next.attributes.erase(name);
            continue;
        }
        if (auto why = check_attribute_value(value); !why.empty())
            return std::string(name) + ": " + why;
        next.attributes[name] = value;
    }
    contact = std::move(next);
    return {};
}

std::string encode_contact(const Contact& contact) {
    json::object out;
    out["v"] = kRecordVersion;
    if (!contact.attributes.empty())
        out["a"] = contact.attributes;
    if (!contact.tags.empty()) {
        json::array tags;
        for (const auto& t : contact.tags)
            tags.emplace_back(t);
        out["t"] = std::move(tags);
    }
    auto e = encode_engagement(contact.engagement);
    if (!e.empty())
        out["e"] = std::move(e);
    return json::serialize(out);
}

std::optional<Contact> decode_contact(std::string_view address, std::string_view value) {
    const auto o = parse_object(value);
    if (!o)
        return std::nullopt;
    Contact c;
    c.address = std::string(address);
    const auto* attributes = o->if_contains("a");
    if (attributes != nullptr) {
        if (!attributes->is_object())
            return std::nullopt;
        c.attributes = attributes->get_object();
    }
    if (!decode_tags(o->if_contains("t"), c.tags) ||
        !decode_engagement(o->if_contains("e"), c.engagement))
        return std::nullopt;
    return c;
}

json::object contact_json(const Contact& contact, std::int64_t now_ms) {
    json::object out;
    out["address"] = contact.address;
    out["attributes"] = contact.attributes;
    json::array tags;
    for (const auto& t : contact.tags)
        tags.emplace_back(t);
    out["tags"] = std::move(tags);
    out["engagement"] = engagement_summary(contact.engagement, now_ms);
    return out;
}

// ---- The store ----

// Records queued on the committer and not yet committed, per table, each
// with the sequence number of its latest write: a commit removes an entry
// only if no later write replaced it. Recursive: the Store answers a write
// it cannot queue (shutting down) on the caller's thread, inside the lock.
class ContactStore::Pending {
public:
    struct Entry {
        std::uint64_t seq = 0;
        std::optional<std::string> value; // nullopt: removed
    };
    using Map = std::unordered_map<std::string, Entry>;

    std::recursive_mutex mu;
    Map contacts;
    Map domains;
    std::uint64_t next_seq = 1;
};

namespace {

struct Mark {
    bool domain = false;
    std::string key;
    std::uint64_t seq = 0;
};

// Caller holds pending->mu: the reads that computed `writes` and this
// queueing are one step, so writes of one key reach the committer in order.
void queue_writes(Store& store, const std::shared_ptr<ContactStore::Pending>& pending,
                  Store::TableId domains, std::vector<Store::KvWrite> writes, ContactDone done) {
    std::vector<Mark> marks;
    marks.reserve(writes.size());
    for (const auto& w : writes) {
        const bool domain = w.table == domains;
        auto& map = domain ? pending->domains : pending->contacts;
        const auto seq = pending->next_seq++;
        map[w.key] = {seq, w.value};
        marks.push_back({domain, w.key, seq});
    }
    auto finish = [pending, marks = std::move(marks), done = std::move(done)](CommitResult r) {
        {
            const std::lock_guard lock(pending->mu);
            for (const auto& m : marks) {
                auto& map = m.domain ? pending->domains : pending->contacts;
                const auto it = map.find(m.key);
                if (it != map.end() && it->second.seq == m.seq)
                    map.erase(it);
            }
        }
        if (!done)
            return;
        if (r.status == CommitStatus::Ok)
            return done({ContactStatus::Ok, {}});
        done({ContactStatus::StoreFailed, r.detail.empty() ? "commit failed" : r.detail});
    };
    store.kv_write(std::move(writes), std::move(finish));
}

void answer(const ContactDone& done, ContactStatus status, std::string detail) {
    if (done)
        done({status, std::move(detail)});
}

} // namespace

ContactStore::ContactStore(Store& store, ContactsConfig config, Store::TableId contacts,
                           Store::TableId domains)
    : store_(store), config_(config), contacts_(contacts), domains_(domains),
      pending_(std::make_shared<Pending>()) {}

std::unique_ptr<ContactStore> ContactStore::open(Store& store, ContactsConfig config,
                                                 std::string& error) {
    const auto contacts = store.open_table("contacts", error);
    if (!contacts)
        return nullptr;
    const auto domains = store.open_table("contact_domains", error);
    if (!domains)
        return nullptr;
    return std::unique_ptr<ContactStore>(new ContactStore(store, config, *contacts, *domains));
}

std::optional<Contact> ContactStore::current(const std::string& address) const {
    std::optional<std::string> value;
    if (const auto it = pending_->contacts.find(address); it != pending_->contacts.end())
        value = it->second.value;
    else
        value = store_.kv_get(contacts_, address);
    if (!value)
        return std::nullopt;
    auto contact = decode_contact(address, *value);
    if (!contact)
        core::log::warning("contacts.unreadable_record", "address={}", core::log::q(address));
    return contact;
}

std::optional<Contact> ContactStore::get(std::string_view address) const {
    const auto key = normalize_contact_address(address);
    if (!key)
        return std::nullopt;
    const std::lock_guard lock(pending_->mu);
    return current(*key);
}

std::string ContactStore::prepare(const ContactPatch& patch, std::vector<Store::KvWrite>& writes) {
    const auto key = normalize_contact_address(patch.address);
    if (!key)
        return "not an address: \"" + patch.address + "\"";
    auto contact = current(*key).value_or(Contact{*key, {}, {}, {}});
    if (auto why = apply_patch(contact, patch); !why.empty())
        return why;
    auto value = encode_contact(contact);
    if (value.size() > kMaxRecordSize)
        return "the contact would be larger than 64 KiB";
    // Visible to the next patch of the same address at once; queue_writes
    // gives it its sequence number.
    pending_->contacts[*key] = {0, value};
    writes.push_back({contacts_, *key, std::move(value)});
    return {};
}

PatchErrors ContactStore::apply(std::vector<ContactPatch> patches, ContactDone done) {
    PatchErrors errors;
    std::vector<Store::KvWrite> writes;
    const std::lock_guard lock(pending_->mu);
    for (std::size_t i = 0; i < patches.size(); ++i)
        if (auto why = prepare(patches[i], writes); !why.empty())
            errors.emplace_back(i, std::move(why));
    if (writes.empty())
        answer(done, ContactStatus::Ok, {});
    else
        queue_writes(store_, pending_, domains_, std::move(writes), std::move(done));
    return errors;
}

void ContactStore::write_one(const ContactPatch& patch, ContactDone done) {
    std::vector<Store::KvWrite> writes;
    const std::lock_guard lock(pending_->mu);
    if (auto why = prepare(patch, writes); !why.empty())
        return answer(done, ContactStatus::Invalid, std::move(why));
    queue_writes(store_, pending_, domains_, std::move(writes), std::move(done));
}

void ContactStore::set(std::string_view address, json::object attributes, ContactDone done) {
    ContactPatch patch;
    patch.address = std::string(address);
    patch.attributes = std::move(attributes);
    write_one(patch, std::move(done));
}

void ContactStore::set_tags(std::string_view address, std::vector<std::string> tags,
                            ContactDone done) {
    ContactPatch patch;
    patch.address = std::string(address);
    patch.tags = std::move(tags);
    write_one(patch, std::move(done));
}

void ContactStore::remove(std::string_view address, ContactDone done) {
    const auto key = normalize_contact_address(address);
    if (!key)
        return answer(done, ContactStatus::Invalid, "not an address");
    const std::lock_guard lock(pending_->mu);
    if (!current(*key))
        return answer(done, ContactStatus::NotFound, "no such contact");
    std::vector<Store::KvWrite> writes;
    writes.push_back({contacts_, *key, std::nullopt});
    queue_writes(store_, pending_, domains_, std::move(writes), std::move(done));
}

void ContactStore::update_domain(std::string_view sending_domain, std::int64_t time_ms,
                                 std::vector<Store::KvWrite>& writes) {
    const auto domain = normalize_domain(sending_domain);
    if (!domain)
        return;
    std::optional<std::string> value;
    if (const auto it = pending_->domains.find(*domain); it != pending_->domains.end())
        value = it->second.value;
    else
        value = store_.kv_get(domains_, *domain);
    HourHistogram h{};
    if (value) {
        const auto o = parse_object(*value);
        if (!o || !decode_histogram(o->if_contains("h"), h))
            h = {}; // an unreadable aggregate restarts (it is only a hint)
    }
    histogram_add(h, hour_of_week(time_ms));
    json::object out;
    out["v"] = kRecordVersion;
    out["h"] = encode_histogram(h);
    writes.push_back({domains_, *domain, json::serialize(out)});
}

void ContactStore::record_event(std::string_view address, EngagementKind kind, std::int64_t time_ms,
                                std::string_view sending_domain, ContactDone done) {
    const auto key = normalize_contact_address(address);
    if (!key)
        return answer(done, ContactStatus::Invalid, "not an address");
    if (time_ms <= 0)
        return answer(done, ContactStatus::Invalid, "the event has no time");
    const std::lock_guard lock(pending_->mu);
    auto contact = current(*key);
    if (!contact && !config_.create_on_event)
        return answer(done, ContactStatus::NotFound, "no such contact");
    if (!contact)
        contact = Contact{*key, {}, {}, {}};
    contact->engagement = record_engagement(std::move(contact->engagement), kind, time_ms);
    std::vector<Store::KvWrite> writes;
    writes.push_back({contacts_, *key, encode_contact(*contact)});
    if (kind != EngagementKind::Delivered && !sending_domain.empty())
        update_domain(sending_domain, time_ms, writes);
    queue_writes(store_, pending_, domains_, std::move(writes), std::move(done));
}

double ContactStore::priority(std::string_view address, std::int64_t now_ms) const {
    const auto contact = get(address);
    return priority_score(contact ? contact->engagement : Engagement{}, now_ms);
}

HourHistogram ContactStore::domain_histogram(std::string_view sending_domain) const {
    HourHistogram h{};
    const auto domain = normalize_domain(sending_domain);
    if (!domain)
        return h;
    std::optional<std::string> value;
    {
        const std::lock_guard lock(pending_->mu);
        if (const auto it = pending_->domains.find(*domain); it != pending_->domains.end())
            value = it->second.value;
    }
    if (!value)
        value = store_.kv_get(domains_, *domain);
    if (!value)
        return h;
    const auto o = parse_object(*value);
    if (!o || !decode_histogram(o->if_contains("h"), h))
        return {};
    return h;
}

void ContactStore::scan(std::string_view from,
                        const std::function<bool(const Contact&)>& visit) const {
    store_.kv_scan(contacts_, "", from, [&visit](std::string_view key, std::string_view value) {
        const auto contact = decode_contact(key, value);
        if (!contact) {
            core::log::warning("contacts.unreadable_record", "address={}", core::log::q(key));
            return true;
        }
        return visit(*contact);
    });
}

std::uint64_t ContactStore::size() const {
    return store_.kv_count(contacts_);
}

std::size_t ContactStore::pending_writes() const {
    const std::lock_guard lock(pending_->mu);
    return pending_->contacts.size() + pending_->domains.size();
}

} // namespace ember::personalize
