// An LD_PRELOAD shim for test peers that resolve through glibc's
// res_ninit()/res_nquery() (libopendkim, hence opendkim-testmsg): after the
// real res_ninit() has read /etc/resolv.conf, the name server list is
// replaced by the one server in $EMBER_TEST_DNS ("127.0.0.1:PORT"). A test
// DNS server listens on a free port, which resolv.conf cannot name, and
// opendkim-testmsg has no option for a name server of its own.
//
// Only res_ninit() is wrapped: it is the entry point libopendkim uses
// (dkim-dns.c), and glibc honours a changed nsaddr_list (with its port)
// in every later res_nquery() on that state. Without EMBER_TEST_DNS, or
// with a value that is not IPv4:PORT, the state is left as glibc made it.
//
// Built without sanitizers (tests/integration/CMakeLists.txt): it is loaded
// into uninstrumented programs. Not thread-safe beyond what res_ninit() is.

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <resolv.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

using ResNinit = int (*)(res_state);

// "IPv4:PORT" as a socket address; false when `spec` is anything else.
bool parse_server(const char* spec, sockaddr_in& out) {
    const std::string text(spec);
    const auto colon = text.rfind(':');
    if (colon == std::string::npos)
        return false;
    const std::string host = text.substr(0, colon);
    char* end = nullptr;
    const long port = std::strtol(text.c_str() + colon + 1, &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535)
        return false;
    std::memset(&out, 0, sizeof out);
    out.sin_family = AF_INET;
    out.sin_port = htons(static_cast<std::uint16_t>(port));
    return inet_pton(AF_INET, host.c_str(), &out.sin_addr) == 1;
}

void use_only(res_state state, const sockaddr_in& server) {
    // IPv6 servers from resolv.conf live in _u._ext.nsaddrs (malloc'd by
    // glibc, which frees them in res_nclose()): drop them so index 0 is ours.
    for (auto& extra : state->_u._ext.nsaddrs) {
        std::free(extra);
        extra = nullptr;
    }
    state->nsaddr_list[0] = server;
    state->nscount = 1;
}

} // namespace

extern "C" int __res_ninit(res_state state) { // NOLINT(bugprone-reserved-identifier): glibc's name
    static const auto real = reinterpret_cast<ResNinit>(dlsym(RTLD_NEXT, "__res_ninit"));
    if (real == nullptr)
        return -1;
    const int rc = real(state);
    const char* spec = std::getenv("EMBER_TEST_DNS");
    sockaddr_in server{};
    if (rc == 0 && spec != nullptr && parse_server(spec, server))
        use_only(state, server);
    return rc;
}
