#include "dns/resolver.hpp"

namespace ember::dns {

bool is_temporary(Status s) {
    return s == Status::ServFail || s == Status::Timeout || s == Status::Malformed;
}

std::string_view status_name(Status s) {
    switch (s) {
    case Status::Ok:
        return "ok";
    case Status::NxDomain:
        return "nxdomain";
    case Status::NoData:
        return "nodata";
    case Status::ServFail:
        return "servfail";
    case Status::Timeout:
        return "timeout";
    case Status::Malformed:
        return "malformed";
    }
    return "unknown";
}

} // namespace ember::dns
