#include "daemon/ctl_ab.hpp"

#include <CLI/CLI.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

namespace ember::daemon::ctl {

namespace json = boost::json;

namespace {

const json::value* field(const json::value& v, std::string_view key) {
    if (!v.is_object())
        return nullptr;
    const auto* f = v.get_object().if_contains(key);
    return f == nullptr || f->is_null() ? nullptr : f;
}

std::string text(const json::value& v, std::string_view key) {
    const auto* f = field(v, key);
    if (f == nullptr)
        return "-";
    if (f->is_string())
        return printable(f->get_string());
    return printable(json::serialize(*f));
}

double number(const json::value& v, std::string_view key) {
    const auto* f = field(v, key);
    return f != nullptr && f->is_number() ? f->to_number<double>() : 0.0;
}

std::string percent(const json::value& v, std::string_view key) {
    const auto* f = field(v, key);
    return f != nullptr && f->is_number() ? fmt::format("{:.1f}%", f->to_number<double>() * 100)
                                          : "-";
}

std::string split_text(const json::value& cell) {
    const auto* f = field(cell, "split");
    return f != nullptr && f->is_number() ? fmt::format("{:g}%", f->to_number<double>()) : "-";
}

std::string cells_table(const json::value& result) {
    Table table(
        {"cell", "split", "recipients", "delivered", "opens", "clicks", "open rate", "click rate"});
    for (std::size_t c = 1; c < 8; ++c)
        table.align_right(c);
    if (const auto* cells = field(result, "cells"); cells != nullptr && cells->is_array()) {
        for (const auto& cell : cells->get_array())
            table.add_row({text(cell, "name"), split_text(cell), text(cell, "recipients"),
                           text(cell, "delivered"), text(cell, "opens"), text(cell, "clicks"),
                           percent(cell, "open_rate"), percent(cell, "click_rate")});
    }
    return table.render();
}

std::string decision_text(const json::value& result) {
    const auto* d = field(result, "decision");
    if (d == nullptr)
        return fmt::format("no decision yet: decided at {}\n", text(result, "decide_at"));
    const auto* significant = field(*d, "significant");
    const bool yes = significant != nullptr && significant->is_bool() && significant->get_bool();
    return key_values({
        {"winner", text(*d, "winner")},
        {"runner-up", text(*d, "runner_up")},
        {"rates",
         fmt::format("{} vs {}", percent(*d, "winner_rate"), percent(*d, "runner_up_rate"))},
        {"z", fmt::format("{:.3f}", number(*d, "z"))},
        {"p-value", fmt::format("{:.4f}", number(*d, "p_value"))},
        {"significant", yes ? "yes (p < 0.05)" : "no (p >= 0.05): the winner may be chance"},
        {"decided at", text(*d, "decided_at")},
    });
}

} // namespace

Printed format_ab_status(const json::value& result) {
    std::string out = key_values({
        {"test", text(result, "id")},
        {"campaign", text(result, "campaign")},
        {"state", text(result, "state")},
        {"metric", text(result, "metric")},
        {"created", text(result, "created")},
        {"decide at", text(result, "decide_at")},
        {"rest", text(result, "rest") + " recipients (get the winner)"},
    });
    out += "\n" + cells_table(result) + "\n" + decision_text(result);
    return Printed{std::move(out), "", kExitOk};
}

Printed format_ab_list(const json::value& result) {
    const auto* tests = field(result, "tests");
    if (tests == nullptr || !tests->is_array() || tests->get_array().empty())
        return Printed{"no A/B tests\n", "", kExitOk};
    Table table({"test", "campaign", "state", "metric", "cells", "created", "decide at", "winner"});
    for (const auto& t : tests->get_array()) {
        std::string cells;
        if (const auto* c = field(t, "cells"); c != nullptr && c->is_array())
            for (const auto& cell : c->get_array())
                cells += (cells.empty() ? "" : ",") + text(cell, "name");
        table.add_row({text(t, "id"), text(t, "campaign"), text(t, "state"), text(t, "metric"),
                       cells, text(t, "created"), text(t, "decide_at"), text(t, "winner")});
    }
    return Printed{table.render(), "", kExitOk};
}

void ab_status_options(CLI::App& command, VerbArgs&) {
    command.add_option("id", "the test id (the 202 answer's \"ab_test\")")->required();
}

void ab_list_options(CLI::App&, VerbArgs&) {}

} // namespace ember::daemon::ctl
