#pragma once
// Contacts as CSV (RFC 4180): a streaming import that reads line by line
// and commits in chunks, so a file of millions of rows takes bounded
// memory, and an export that streams the table.
//
// The header row names the columns (any order, names trimmed):
//   address | email   required (ASCII case ignored): the contact's address
//   tags              optional: tags separated by ';', added to the
//                     contact's tags (an import never removes tags)
//   NAME[:TYPE]       any other column: the attribute NAME. TYPE says how
//                     cells are read: string (the default: the cell as is),
//                     number (integer or decimal), bool (true/false, yes/no,
//                     1/0, case ignored) or list (strings separated by ';').
//                     Nothing is guessed: "02134" stays a string unless the
//                     column says number.
// An empty cell leaves the attribute as it was (the hosted services'
// rule: a partial file never wipes data), unless empty_deletes is set.
// A UTF-8 byte order mark before the header is skipped (Excel writes one).
// Fields are separated by ',' and may be quoted ("a ""b"", c"), quoted
// fields may span lines; CRLF and LF line ends both work. A '"' inside an
// unquoted field is taken literally.
//
// A bad row (wrong number of fields, not an address, a cell that is not of
// its column's type, a bad tag, a contact that would be too large) is
// reported as "name:line: message" (line: where the row starts) and
// skipped; the rest imports. A bad header stops the import before any
// write. A failed commit stops it: rows of earlier chunks stay imported.
//
// Threads: import_contacts_csv() blocks its caller until every chunk is
// committed: run it on a worker thread (core::offload), never on the event
// loop nor in a Store `done` callback (it would wait for itself). At most
// max_in_flight chunks wait for the committer at once; that, chunk_rows and
// the longest row (kMaxCsvRecord) bound the memory an import uses.

#include "personalize/contacts.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

namespace ember::personalize {

inline constexpr std::size_t kMaxCsvRecord = 1024 * 1024; // octets in one row

struct ImportProgress {
    std::uint64_t rows = 0;     // data rows read (good and bad)
    std::uint64_t imported = 0; // rows committed
    std::uint64_t skipped = 0;  // bad rows
    std::uint64_t bytes = 0;    // octets read from the stream
};

struct CsvImportOptions {
    std::string name = "import";   // the "name" of "name:line: message"
    std::size_t chunk_rows = 5000; // rows per commit
    std::size_t max_in_flight = 2; // chunks queued on the committer at once
    std::size_t max_errors = 1000; // error lines kept in the report (all are counted)
    bool empty_deletes = false;    // an empty cell removes the attribute
    // Called on the importing thread after each chunk is handed to the
    // committer, and once at the end.
    std::function<void(const ImportProgress&)> progress;
};

struct ImportReport {
    bool ok = true;    // false: a bad header or a failed commit stopped the import
    std::string error; // why, when !ok ("contacts.csv:1: no address or email column")
    ImportProgress totals;
    std::vector<std::string> errors; // "name:line: message", the first max_errors
    std::uint64_t error_count = 0;   // every bad row
    std::uint64_t chunks = 0;        // commits made
    std::size_t largest_chunk = 0;   // rows in the largest chunk
    std::size_t most_in_flight = 0;  // chunks that were waiting for the committer at once
};

[[nodiscard]] ImportReport import_contacts_csv(ContactStore& contacts, std::istream& in,
                                               const CsvImportOptions& options = {});

struct CsvExportOptions {
    // Attribute columns, in order. Empty: every attribute name in the
    // table, sorted (found by a first pass over the table).
    std::vector<std::string> columns;
};

// Writes "address,tags,<columns>" and one row per contact in address order,
// LF line ends, to `write`; stops early when write() returns false. A
// column whose values all have one non-string type is named NAME:number,
// NAME:bool or NAME:list so that importing the file gives the same values
// back; lists are joined with ';', other values written as text. Returns
// the rows written.
std::uint64_t export_contacts_csv(const ContactStore& contacts,
                                  const std::function<bool(std::string_view)>& write,
                                  const CsvExportOptions& options = {});

// One CSV field, quoted when it holds ',', '"', CR or LF or starts or ends
// with a blank (RFC 4180 2.6, 2.7).
[[nodiscard]] std::string csv_field(std::string_view value);

} // namespace ember::personalize
