#pragma once
// The DMARC alignment gate as the SMTP server's ContentPolicy: for every
// submission, would a DKIM signature ember adds, or SPF for ember's egress
// addresses on the envelope sender's domain, align with the From domain
// (auth/alignment.hpp decides; this class gathers the inputs). The policy,
// keys and egress addresses swap on reload. Runs on the I/O thread.

#include "auth/alignment.hpp"
#include "auth/dkim_signer.hpp"
#include "auth/dmarc.hpp"
#include "dns/resolver.hpp"
#include "smtp/server_env.hpp"

#include <memory>
#include <string>
#include <vector>

namespace ember::daemon {

struct AlignmentSettings {
    auth::AlignmentPolicy policy = auth::AlignmentPolicy::Enforce;
    std::string helo_name;                   // the SPF identity for the null sender
    std::vector<core::IpAddress> egress_ips; // [delivery] source_ips or the host's
    std::shared_ptr<const auth::DkimSigner> signer;
};

class AlignmentGate final : public smtp::ContentPolicy {
public:
    AlignmentGate(dns::Resolver& resolver, AlignmentSettings settings);
    void update(AlignmentSettings settings) { settings_ = std::move(settings); }
    [[nodiscard]] boost::asio::awaitable<smtp::PolicyVerdict>
    check(smtp::ContentCheck check) override;

private:
    dns::Resolver& resolver_;
    std::shared_ptr<const auth::PublicSuffixList> psl_;
    AlignmentSettings settings_;
};

} // namespace ember::daemon
