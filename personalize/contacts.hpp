#pragma once
// Contacts: per recipient address, the sender's attributes (merge
// variables), tags, and engagement (engagement.hpp), kept in two key-value
// tables of the queue's LMDB environment (queue::Store):
//
//   contacts         address -> {"v":1,"a":{attributes},"t":[tags],"e":{engagement}}
//   contact_domains  sending domain -> {"v":1,"h":[[hour,count],...]}
//                    (the domain's aggregate hour-of-week histogram of opens
//                    and clicks, for send-time optimisation)
//
// Values are compact JSON (Boost.JSON) so records stay readable with
// mdb_dump and can grow fields: readers ignore keys they do not know.
//
// Keys: the address lower-cased as a whole (ASCII; UTF-8 octets kept).
// RFC 5321 2.4 lets a local part be case sensitive, but no mailbox provider
// uses that, and the same person arrives as "Jane@x" in an import and as
// "jane@x" in an open event: one record keeps their attributes and
// engagement together. The suppression list normalizes the same way.
//
// Attributes are a JSON object: names 1..128 octets of ASCII letters,
// digits and "_ . : -" (what a template can name: `{{ first_name }}`),
// values strings, numbers, booleans or lists of those (no objects: a hook
// supplies structured data per message). Tags use the same characters
// (`{{#tag:runner}}`), at most kMaxTags, duplicates ignoring ASCII case
// dropped. A record is at most kMaxRecordSize octets encoded.
//
// Writes (set, set_tags, remove, record_event, apply) read the current
// record, change it and queue the result on the Store's group committer;
// `done` runs once on the committer thread after the fsynced commit (or at
// once, on the caller's thread, for input refused before any write). A
// record written but not yet committed is what the next write and get()
// see, so back-to-back events on one address all count. `done` must not
// block (queue/store.hpp). All methods are thread-safe.
//
// Does not: decide which events to record (the daemon feeds delivered,
// opened and clicked events), expire contacts, or talk to Redis.

#include "personalize/engagement.hpp"
#include "queue/store.hpp"

#include <boost/json/object.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ember::personalize {

inline constexpr std::size_t kMaxAttributeName = 128;
inline constexpr std::size_t kMaxTags = 100;
inline constexpr std::size_t kMaxTagSize = 128;
inline constexpr std::size_t kMaxRecordSize = 64 * 1024;
inline constexpr std::size_t kMaxAddressSize = 254; // RFC 5321 4.5.3.1.3, without the brackets

// Trimmed, angle brackets dropped, lower-cased. nullopt when it is not an
// address ember could have mailed: no '@', an empty local part or domain,
// over kMaxAddressSize octets, a space, a control character or NUL.
[[nodiscard]] std::optional<std::string> normalize_contact_address(std::string_view address);

// Empty when valid, else why (for the admin tool and import errors).
[[nodiscard]] std::string check_attribute_name(std::string_view name);
[[nodiscard]] std::string check_attribute_value(const boost::json::value& value);
[[nodiscard]] std::string check_tag(std::string_view tag);

struct Contact {
    std::string address; // normalized
    boost::json::object attributes;
    std::vector<std::string> tags; // in the order they were added
    Engagement engagement;
    friend bool operator==(const Contact&, const Contact&) = default;
};

// A change to one contact, as set(), set_tags() and a CSV row make it.
struct ContactPatch {
    std::string address;
    boost::json::object attributes;               // merged in; a null value removes the key
    std::vector<std::string> add_tags;            // added when not there (case ignored)
    std::optional<std::vector<std::string>> tags; // replaces every tag first, when set
};

// Applies `patch` to `contact` (pure). Empty on success, else why; on error
// `contact` is unchanged.
[[nodiscard]] std::string apply_patch(Contact& contact, const ContactPatch& patch);

// The stored form (see the header comment), and back. decode_contact gives
// nullopt for a record it cannot read.
[[nodiscard]] std::string encode_contact(const Contact& contact);
[[nodiscard]] std::optional<Contact> decode_contact(std::string_view address,
                                                    std::string_view value);

// JSON for the admin tool and the HTTP API:
//   {"address":..., "attributes":{...}, "tags":[...], "engagement":{engagement_summary}}
[[nodiscard]] boost::json::object contact_json(const Contact& contact, std::int64_t now_ms);

struct ContactsConfig {
    // record_event() on an address with no record creates one (ESPs track
    // every recipient mailed); false: events for unknown addresses are
    // dropped (only imported or set contacts have engagement).
    bool create_on_event = true;
};

enum class ContactStatus : std::uint8_t {
    Ok,
    NotFound,    // remove() or record_event() (create_on_event off) of an unknown address
    Invalid,     // refused before writing: not an address, bad name, value or tag, too large
    StoreFailed, // the commit failed (map or disk full, I/O error, shutting down)
};

struct ContactResult {
    ContactStatus status = ContactStatus::Ok;
    std::string detail; // why, when not Ok
};
using ContactDone = std::function<void(ContactResult)>;

// apply(): the patches refused before writing, by index, with why.
using PatchErrors = std::vector<std::pair<std::size_t, std::string>>;

class ContactStore {
public:
    // Opens (creates) the two tables; nullptr and `error` set on failure.
    [[nodiscard]] static std::unique_ptr<ContactStore>
    open(queue::Store& store, ContactsConfig config, std::string& error);

    // The contact, nullopt when there is none (or the address is invalid).
    // An unreadable record reads as absent (and is logged).
    [[nodiscard]] std::optional<Contact> get(std::string_view address) const;

    // Merges `attributes` (null deletes a key), creating the contact.
    void set(std::string_view address, boost::json::object attributes, ContactDone done);
    // Replaces the tags, creating the contact.
    void set_tags(std::string_view address, std::vector<std::string> tags, ContactDone done);
    void remove(std::string_view address, ContactDone done);

    // One event for the address at `time_ms` (the event's time). Opens and
    // clicks with a `sending_domain` also count in that domain's histogram.
    void record_event(std::string_view address, EngagementKind kind, std::int64_t time_ms,
                      std::string_view sending_domain = {}, ContactDone done = {});
    // priority_score() of the contact's engagement at `now_ms`; an unknown
    // address scores as a new contact (150). For the warm-up gate.
    [[nodiscard]] double priority(std::string_view address, std::int64_t now_ms) const;
    // The sending domain's aggregate histogram (all zero when unknown).
    [[nodiscard]] HourHistogram domain_histogram(std::string_view sending_domain) const;

    // Many patches in one write (one commit): what an import chunk does.
    // Patches refused before writing are returned and left out; `done`
    // gets the commit's result for the rest (Ok at once when none is left).
    [[nodiscard]] PatchErrors apply(std::vector<ContactPatch> patches, ContactDone done);

    // Contacts in address order from the first address >= `from`, while
    // visit() returns true. Committed records only; unreadable ones skipped.
    void scan(std::string_view from, const std::function<bool(const Contact&)>& visit) const;
    [[nodiscard]] std::uint64_t size() const;
    // Records written and not yet committed (bounded by what callers have
    // in flight; for metrics and tests).
    [[nodiscard]] std::size_t pending_writes() const;

    class Pending; // the records in flight, shared with commit callbacks

private:
    ContactStore(queue::Store& store, ContactsConfig config, queue::Store::TableId contacts,
                 queue::Store::TableId domains);
    // These run with the pending mutex held.
    [[nodiscard]] std::optional<Contact> current(const std::string& address) const;
    // Applies `patch` to the current record and adds its write; else why.
    [[nodiscard]] std::string prepare(const ContactPatch& patch,
                                      std::vector<queue::Store::KvWrite>& writes);
    void update_domain(std::string_view sending_domain, std::int64_t time_ms,
                       std::vector<queue::Store::KvWrite>& writes);
    void write_one(const ContactPatch& patch, ContactDone done);

    queue::Store& store_;
    ContactsConfig config_;
    queue::Store::TableId contacts_;
    queue::Store::TableId domains_;
    std::shared_ptr<Pending> pending_;
};

} // namespace ember::personalize
