#pragma once
// The typed configuration of personalization as emberd reads it from
// ember.toml's [personalize] section (man page ember.toml(5), the contract
// in ember-hook(7)): the external hook's client settings, send-time
// optimisation and the contact store's policy. The personalize library's
// own structs are embedded so their defaults are written once, in
// personalize/. Parsed by daemon/config_tables_personalize.cpp; used by
// daemon/personalize_service.hpp. Plain values, no behaviour.

#include "personalize/contacts.hpp"
#include "personalize/hook.hpp"
#include "personalize/send_time.hpp"

namespace ember::daemon {

struct PersonalizeConfig {
    personalize::HookConfig hook;          // url "" = no hook
    personalize::SendTimeConfig send_time; // sto_* keys
    personalize::ContactsConfig contacts;  // contacts_create_on_event
};

} // namespace ember::daemon
