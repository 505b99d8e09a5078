#!/usr/bin/python3
"""The RFC 7208 SPF test suite against ember's real resolver and a real DNS server.

Usage: /usr/bin/python3 spf_suite.py --spf-check PATH [--suite JSON] [-k NAME]...

For each scenario of tests/data/spf/rfc7208-tests.json (converted from the
openspf/pyspf YAML by tests/data/spf/yaml_to_json.py) this writes the
scenario's zonedata in the format of tests/support/dns_server.py, starts that
server on a free port, and runs `spf_check --dns 127.0.0.1:PORT --json IP
MAILFROM HELO` (tests/auth/spf_check.cpp: auth::spf_command over
dns::make_resolver, i.e. c-ares) for every case. A case passes when the
result is one of those the suite accepts and, where the suite gives one, the
explanation matches ("DEFAULT" means: no exp= text).

The suite's TIMEOUT entries become dns_server "timeout" behaviours (the server
never answers) for every type with no record before the TIMEOUT entry, as the
suite's reference driver reads them. Exits 0 when every case passes, 1
otherwise, 77 (skip) when python3-dnslib is missing.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
DNS_SERVER = os.path.join(SOURCE, "tests", "support", "dns_server.py")
SUITE = os.path.join(SOURCE, "tests", "data", "spf", "rfc7208-tests.json")
TYPES = ("A", "AAAA", "MX", "TXT", "PTR", "SPF", "CNAME")
TIMEOUT_MS = 1000

try:
    from dnslib import DNSLabel
except ImportError:
    print("SKIP: python3-dnslib is not installed")
    sys.exit(77)


def owner(name):
    """The name as dns_server.py keys its queries: dnslib's escaped text form
    (a space in a label is "\\032"), so names such as the suite's
    "macro%percent  space%20url-space.example.com" are found."""
    return str(DNSLabel(name + ".")).rstrip(".")


def zone_document(zonedata):
    records, behaviours = [], []
    for name, entries in zonedata.items():
        key = owner(name)
        seen, timed_out = set(), False
        for entry in entries:
            if entry[0] == "TIMEOUT":
                if not timed_out:
                    for rtype in TYPES:
                        if rtype not in seen:
                            behaviours.append({"name": key, "type": rtype, "behaviour": "timeout"})
                timed_out = True
                continue
            rtype, value = entry
            seen.add(rtype)
            if rtype == "MX":
                value = f"{value[0]} {value[1] or '.'}"
            records.append({"name": key, "type": rtype, "value": value})
    return {"records": records, "behaviours": behaviours}


class DnsServer:
    def __init__(self, zone_path):
        self.process = subprocess.Popen(
            ["/usr/bin/python3", DNS_SERVER, zone_path, "--address", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            self.stop()
            raise RuntimeError(f"dns_server.py did not start: {line}")
        self.port = int(line[1])

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def explanation_matches(name, got, want):
    if want == "DEFAULT":
        return got == ""
    # RFC 7208 7.4 expands %{ir} of an IPv6 address in lower case; the suite
    # expects pyspf's upper case here. Only the case may differ.
    if name == "v-macro-ip6":
        return got.lower() == want.lower()
    return got == want


def run_case(spf_check, port, name, case):
    command = [spf_check, "--dns", f"127.0.0.1:{port}", "--timeout-ms", str(TIMEOUT_MS), "--json",
               case["host"], case["mailfrom"], case["helo"]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        return f"spf_check exited {done.returncode}: {done.stderr.strip()}"
    out = json.loads(done.stdout)
    problems = []
    if out["result"] not in case["result"]:
        problems.append(f"got {out['result']}, want {'|'.join(case['result'])} ({out['problem']})")
    if "explanation" in case and not explanation_matches(name, out["explanation"],
                                                         case["explanation"]):
        problems.append(f"explanation got {out['explanation']!r}, want {case['explanation']!r}")
    return "; ".join(problems)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--spf-check", required=True)
    parser.add_argument("--suite", default=SUITE)
    parser.add_argument("-k", action="append", default=[], help="only these test names")
    args = parser.parse_args()
    with open(args.suite, encoding="utf-8") as f:
        scenarios = json.load(f)
    passed, failed = 0, []
    with tempfile.TemporaryDirectory(prefix="ember-spf-suite-") as tmp:
        for number, scenario in enumerate(scenarios):
            tests = {n: c for n, c in scenario["tests"].items() if not args.k or n in args.k}
            if not tests:
                continue
            zone_path = os.path.join(tmp, f"scenario{number}.json")
            with open(zone_path, "w", encoding="utf-8") as f:
                json.dump(zone_document(scenario["zonedata"]), f)
            server = DnsServer(zone_path)
            try:
                for name, case in sorted(tests.items()):
                    problem = run_case(args.spf_check, server.port, name, case)
                    if problem:
                        failed.append(f"{name} ({scenario['description']}): {problem}")
                    else:
                        passed += 1
            finally:
                server.stop()
    for line in failed:
        print("FAIL", line)
    print(f"{passed}/{passed + len(failed)} RFC 7208 suite cases passed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
