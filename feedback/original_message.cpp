#include "feedback/original_message.hpp"

#include <algorithm>
#include <cctype>

namespace ember::feedback {
namespace {

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos)
        return {};
    return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

std::string strip_angles(std::string_view value) {
    auto text = trim(value);
    const auto open = text.find('<');
    if (open != std::string_view::npos) {
        const auto close = text.find('>', open);
        text = text.substr(open + 1, close == std::string_view::npos ? std::string_view::npos
                                                                     : close - open - 1);
    }
    return std::string(trim(text));
}

bool address_char(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 32 && u != '<' && u != '>' && u != '(' && u != ')' && u != ',' && u != ';' &&
           u != '"' && u != '[' && u != ']' && u != ':' && u != '\\';
}

} // namespace

OriginalMessage original_from_headers(const mime::Headers& headers) {
    OriginalMessage out;
    out.message_id = strip_angles(headers.get("Message-ID"));
    out.ember_id = std::string(trim(headers.get("X-Ember-ID")));
    out.return_path = strip_angles(headers.get("Return-Path"));
    out.from = headers.get("From");
    out.to = headers.get("To");
    out.subject = mime::decode_words(headers.get("Subject"));
    return out;
}

std::optional<std::string> verp_token(std::string_view address, std::string_view prefix) {
    const auto at = address.rfind('@');
    const auto local = address.substr(0, at == std::string_view::npos ? address.size() : at);
    if (prefix.empty() || local.size() <= prefix.size())
        return std::nullopt;
    const bool same = std::equal(prefix.begin(), prefix.end(), local.begin(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) ==
               std::tolower(static_cast<unsigned char>(b));
    });
    if (!same)
        return std::nullopt;
    return std::string(local.substr(prefix.size()));
}

TraceKey trace_key(const OriginalMessage& original, std::string_view envelope_to,
                   std::string_view verp_prefix) {
    for (const auto address : {envelope_to, std::string_view(original.return_path)}) {
        if (auto token = verp_token(address, verp_prefix); token && !token->empty())
            return {TraceKey::Kind::Verp, std::move(*token)};
    }
    if (!original.ember_id.empty())
        return {TraceKey::Kind::EmberId, original.ember_id};
    if (!original.message_id.empty())
        return {TraceKey::Kind::MessageId, original.message_id};
    return {};
}

std::string first_address(std::string_view value) {
    const auto open = value.find('<');
    if (open != std::string_view::npos) {
        const auto close = value.find('>', open);
        if (close != std::string_view::npos &&
            value.substr(open, close - open).find('@') != std::string_view::npos)
            return std::string(trim(value.substr(open + 1, close - open - 1)));
    }
    const auto at = value.find('@');
    if (at == std::string_view::npos || at == 0)
        return "";
    auto begin = at;
    while (begin > 0 && address_char(value[begin - 1]))
        --begin;
    auto end = at + 1;
    while (end < value.size() && address_char(value[end]))
        ++end;
    if (begin == at || end == at + 1)
        return "";
    auto address = value.substr(begin, end - begin);
    while (!address.empty() && (address.back() == '.'))
        address.remove_suffix(1);
    return std::string(address);
}

} // namespace ember::feedback
