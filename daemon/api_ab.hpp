#pragma once
// POST /v1/messages with variants (an A/B test): the request's parts as one
// template that holds every variant, so each recipient's queued message is
// the same bytes but for To:, its ids and X-Ember-AB, and the merge at
// dispatch renders the recipient's cell (daemon/ab_service.hpp).
//
// A field (subject, from_name, text, html) that some variant changes is
// written as template sections over the merge's variant tag, one per
// variant, with the variant's value or else the request's:
//
//   control   {{^tag:variant:b}}{{^tag:variant:c}}VALUE{{/tag:variant:c}}{{/tag:variant:b}}
//   others    {{#tag:variant:b}}VALUE{{/tag:variant:b}}
//
// The control's value sits inside the inverse sections of every other
// variant, so a recipient with no variant at all (its test record lost)
// still gets the control, never an empty subject. Subject and the From:
// display name hold the sections inline; bodies hold every tag on a line
// of its own (the merge's standalone rule drops those lines, so the
// variant's text keeps its layout and its own standalone tags). A body
// value that does not end in a line break gets one, for every variant of
// that body alike: a standalone close tag needs its own line. Fields no
// variant changes are written as the request has them.
//
// The control section nests one level per other variant (at most 9), which
// counts against the merge's section depth limit (16) together with the
// variant's own sections; the submission's template check refuses a
// message over it (422), as for any template.
//
// Caveat: a contact that carries a tag "variant:NAME" itself would render
// that section too; don't tag contacts "variant:*".
//
// Pure; thread-safe.

#include "daemon/api_request.hpp"
#include "personalize/compose.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ember::daemon {

// One field's template: `values` parallel to `names` (the control first).
[[nodiscard]] std::string ab_inline_sections(const std::vector<std::string>& names,
                                             const std::vector<std::string>& values);
[[nodiscard]] std::string ab_block_sections(const std::vector<std::string>& names,
                                            const std::vector<std::string>& values);

// Rewrites the compose input's subject, from name, text and html where the
// request's variants change them.
void apply_variants(const MessageRequest& request, personalize::ComposeInput& in);

// 16 lowercase hex digits from a random source: the test id.
[[nodiscard]] std::string new_ab_test_id();

} // namespace ember::daemon
