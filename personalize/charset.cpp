#include "personalize/charset.hpp"

#include "personalize/text.hpp"

#include <cerrno>
#include <iconv.h>
#include <memory>

namespace ember::personalize {
namespace {

// iconv takes "//TRANSLIT" style suffixes in its names: only plain labels
// from the message may reach it.
bool plain_label(std::string_view name) {
    if (name.empty() || name.size() > 40)
        return false;
    for (const char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == ':';
        if (!ok)
            return false;
    }
    return true;
}

struct IconvCloser {
    void operator()(void* cd) const { iconv_close(static_cast<iconv_t>(cd)); }
};

std::optional<std::string> iconv_utf8(std::string_view bytes, const std::string& from) {
    const iconv_t raw = iconv_open("UTF-8", from.c_str());
    if (raw == reinterpret_cast<iconv_t>(-1))
        return std::nullopt;
    const std::unique_ptr<void, IconvCloser> cd(raw);
    std::string out(bytes.size() * 2 + 16, '\0');
    // iconv(3) takes char** for its input although it never writes it.
    char* in = const_cast<char*>(bytes.data());
    std::size_t in_left = bytes.size();
    std::size_t done = 0;
    for (;;) {
        char* dst = out.data() + done;
        std::size_t dst_left = out.size() - done;
        const std::size_t rc = iconv(raw, in_left > 0 ? &in : nullptr, &in_left, &dst, &dst_left);
        done = out.size() - dst_left;
        if (rc != static_cast<std::size_t>(-1) && in_left == 0) {
            // Flush a stateful encoding's shift sequence (ISO-2022-JP).
            dst = out.data() + done;
            dst_left = out.size() - done;
            if (iconv(raw, nullptr, nullptr, &dst, &dst_left) == static_cast<std::size_t>(-1))
                return std::nullopt;
            out.resize(out.size() - dst_left);
            return out;
        }
        if (rc == static_cast<std::size_t>(-1) && errno != E2BIG)
            return std::nullopt; // EILSEQ or a truncated sequence (EINVAL)
        out.resize(out.size() * 2);
    }
}

} // namespace

bool is_utf8_label(std::string_view charset) {
    return charset.empty() || text::iequals(charset, "utf-8") || text::iequals(charset, "utf8") ||
           text::iequals(charset, "us-ascii") || text::iequals(charset, "ascii");
}

bool is_valid_utf8(std::string_view text) {
    std::size_t i = 0;
    const auto byte = [&](std::size_t k) {
        return static_cast<unsigned char>(text[k]);
    };
    while (i < text.size()) {
        const unsigned char c = byte(i);
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t n = 0;
        unsigned char lo = 0x80;
        unsigned char hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            lo = c == 0xE0 ? 0xA0 : 0x80; // overlong
            hi = c == 0xED ? 0x9F : 0xBF; // surrogates
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF; // above U+10FFFF
        } else {
            return false;
        }
        if (i + n >= text.size())
            return false;
        if (byte(i + 1) < lo || byte(i + 1) > hi)
            return false;
        for (std::size_t k = 2; k <= n; ++k)
            if (byte(i + k) < 0x80 || byte(i + k) > 0xBF)
                return false;
        i += n + 1;
    }
    return true;
}

std::optional<std::string> to_utf8(std::string_view bytes, std::string_view charset) {
    if (text::iequals(charset, "utf-8") || text::iequals(charset, "utf8"))
        return std::string(bytes);
    // ASCII bytes mean ASCII text, except in the 7-bit encodings that shift
    // with ESC (ISO-2022-*) or '+'/'~' (UTF-7, HZ).
    const bool shifting = text::istarts_with(charset, "utf-7") ||
                          text::istarts_with(charset, "hz") ||
                          bytes.find('\x1B') != std::string_view::npos;
    if (text::is_ascii(bytes) && !shifting)
        return std::string(bytes);
    const bool latin = charset.empty() || text::iequals(charset, "us-ascii") ||
                       text::iequals(charset, "ascii") || text::iequals(charset, "iso-8859-1") ||
                       text::iequals(charset, "iso_8859-1") || text::iequals(charset, "latin1") ||
                       text::iequals(charset, "l1");
    if (latin) {
        if ((charset.empty() || text::iequals(charset, "us-ascii") ||
             text::iequals(charset, "ascii")) &&
            is_valid_utf8(bytes))
            return std::string(bytes); // 8-bit UTF-8 without a label
        if (auto text = iconv_utf8(bytes, "WINDOWS-1252"))
            return text;
        return iconv_utf8(bytes, "ISO-8859-1");
    }
    if (!plain_label(charset))
        return std::nullopt;
    return iconv_utf8(bytes, std::string(charset));
}

} // namespace ember::personalize
