#pragma once
// Turns what c-ares hands an ares_query callback (its status code and the
// raw reply) into an AnyAnswer: the records decoded by ares_parse_*_reply,
// the TTL (c-ares's own for A/AAAA, message.hpp's for the other types),
// and a precise Status. Pure; <ares.h> stays in the .cpp.
//
// Status mapping (c-ares 1.18's ares_query already folds the RCODE in):
//   NXDOMAIN (ARES_ENOTFOUND), or a name c-ares cannot encode -> NxDomain
//   NOERROR with no records of the type (ARES_ENODATA, or parse ENODATA
//   when only a CNAME came back)                              -> NoData
//   SERVFAIL, REFUSED, FORMERR, NOTIMP, other local failures, and
//   ARES_ECONNREFUSED (what 1.18 reports after every server
//   answered SERVFAIL/REFUSED on every try)                    -> ServFail
//   no answer (ARES_ETIMEOUT), cancelled or destroyed
//   (ARES_ECANCELLED, ARES_EDESTRUCTION)                       -> Timeout
//   an answer that does not parse (ARES_EBADRESP, parse errors) -> Malformed
// Negative answers carry min(SOA TTL, SOA MINIMUM) (RFC 2308 5), or 0 when
// the server sent no SOA: such answers are not cached (RFC 2308 5).

#include "dns/record.hpp"

#include <cstdint>
#include <span>

namespace ember::dns {

[[nodiscard]] AnyAnswer interpret_reply(RecordType type, int ares_status,
                                        std::span<const std::uint8_t> reply);

} // namespace ember::dns
