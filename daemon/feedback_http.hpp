#pragma once
// RFC 8058 one-click unsubscribe on the HTTP listener:
//
//   POST /u/TOKEN  with a body holding List-Unsubscribe=One-Click (what
//                  mailbox providers send, RFC 8058 3.2): the recipient is
//                  suppressed for the token's sending domain (or globally,
//                  per unsubscribe_scope) and the answer is 200 once that
//                  is committed; no redirect, no confirmation step. A POST
//                  without that body is 400 and changes nothing.
//   GET /u/TOKEN   a small HTML page naming the address, with a button that
//                  makes that POST. GET never unsubscribes: link scanners
//                  and prefetchers follow GET links (RFC 8058 section 1).
//   a bad token    (malformed, tampered, or signed by a retired key): 404,
//                  nothing changes.
//
// Tokens are feedback::TokenSigner unsubscribe URL tokens: they carry the
// address and sending domain under an HMAC, so no lookup is needed.
// Each unsubscription is an `unsubscribed` event (source http); its delay
// to the durable suppression feeds the compliance scorecard.
//
// Threads: the HTTP server's executor (the daemon's I/O thread).

#include "daemon/feedback_service.hpp"
#include "daemon/http_server.hpp"

#include <string>
#include <string_view>

namespace ember::daemon {

inline constexpr std::string_view kUnsubscribePrefix = "/u/";

// Adds POST and GET /u/* to `router`; `service` must outlive the server.
void add_unsubscribe_routes(Router& router, FeedbackService& service);

// The confirmation page for GET (exposed for tests); values HTML-escaped.
[[nodiscard]] std::string unsubscribe_page(std::string_view address, std::string_view domain);

// RFC 8058 3.2: the POST body holds the key List-Unsubscribe with the value
// One-Click (application/x-www-form-urlencoded or multipart/form-data).
[[nodiscard]] bool one_click_body(std::string_view body);

} // namespace ember::daemon
