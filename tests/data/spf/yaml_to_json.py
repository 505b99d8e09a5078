#!/usr/bin/python3
"""Converts the RFC 7208 SPF test suite (YAML) into rfc7208-tests.json.

Usage: /usr/bin/python3 yaml_to_json.py [rfc7208-tests.yml] > rfc7208-tests.json
Default input: /usr/share/doc/python3-spf/rfc7208-tests.yml.gz (Debian
python3-spf), the same file as pyspf's test/rfc7208-tests.yml.

The zonedata is rewritten the way the suite's reference driver (pyspf
testspf.py, getrdata/loadZone) reads it, so every consumer sees the same
records: a TXT or SPF value that is a string becomes a one-string list;
"TXT: NONE" means "no TXT record" and is dropped; a name with SPF records and
no TXT record also gets each SPF record as a TXT record, appended after its
other entries (the suite relies on this "auto-magic duplication"); a bare
TIMEOUT entry becomes ["TIMEOUT"]. Names are lower-cased. Results are always
lists of acceptable results.
"""
import gzip
import json
import sys

import yaml


def records(entries):
    out, generated, has_txt = [], [], False
    for entry in entries:
        if entry == "TIMEOUT":
            out.append(["TIMEOUT"])
            continue
        ((rtype, value),) = entry.items()
        if rtype in ("TXT", "SPF") and isinstance(value, str):
            value = [value]
        if rtype == "TXT":
            has_txt = True
        elif rtype == "SPF":
            generated.append(["TXT", value])
        if value != ["NONE"]:
            out.append([rtype, value])
    return out if has_txt else out + generated


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/doc/python3-spf/rfc7208-tests.yml.gz"
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        scenarios = list(yaml.safe_load_all(f))
    out = []
    for s in scenarios:
        tests = {}
        for name, t in s["tests"].items():
            result = t["result"]
            case = {"host": t["host"], "mailfrom": t["mailfrom"], "helo": t["helo"],
                    "result": result if isinstance(result, list) else [result],
                    "spec": str(t.get("spec", ""))}
            if "explanation" in t:
                case["explanation"] = t["explanation"]
            tests[name] = case
        zone = {name.lower(): records(entries) for name, entries in s.get("zonedata", {}).items()}
        out.append({"description": s["description"], "tests": tests, "zonedata": zone})
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


main()
