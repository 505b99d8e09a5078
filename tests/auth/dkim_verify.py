#!/usr/bin/python3
"""ember's DKIM signatures checked by two verifiers that share no code with it.

Usage: /usr/bin/python3 dkim_verify.py PATH/TO/dkim_sign_sample

dkim_sign_sample signs sample messages (RSA, Ed25519, both, simple/simple,
with x=; 8-bit and SMTPUTF8 text, long folded headers, dot lines, an empty
and a 5 MB body) with keys it generates. Then every signature must verify
with:

  - dkimpy (python3-dkim), with the key records handed to it by a dnsfunc;
  - opendkim-testmsg (opendkim-tools, i.e. libopendkim), which only looks
    keys up in DNS through the system resolver. It runs in its own user,
    mount and network namespaces (unshare -rmn), where lo is up, the test
    DNS server (tests/support/dns_server.py) serves the records on
    127.0.0.1:53 and /etc/resolv.conf is bind-mounted to point there.
    opendkim-testmsg checks one signature at a time, so each signature is
    verified in a copy of the message holding only that signature.

Tampered copies (Subject changed, a second From added on top, a line added
to the body) must fail with both.

Exit 0: all good. 1: a verification went the wrong way. 77 (ctest skip):
dkimpy passed everything but namespaces are not available here, so
opendkim-testmsg could not run.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import dkim

HERE = os.path.dirname(os.path.abspath(__file__))
DNS_SERVER = os.path.join(HERE, "..", "support", "dns_server.py")
SKIP = 77


def load_tsv(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def split_signatures(message):
    """The DKIM-Signature fields at the top of `message`, and the rest."""
    sigs = []
    rest = message
    while rest.startswith(b"DKIM-Signature:"):
        end = 0
        while True:
            end = rest.index(b"\r\n", end) + 2
            if rest[end:end + 1] not in (b" ", b"\t"):
                break
        sigs.append(rest[:end])
        rest = rest[end:]
    return sigs, rest


def tampered(rest):
    """(what, message without signatures) pairs that must not verify."""
    subject = rest.index(b"\r\nSubject:") + len(b"\r\nSubject:")
    return [
        ("subject changed", rest[:subject] + b" Changed:" + rest[subject:]),
        ("From added", b"From: evil@attacker.example\r\n" + rest),
        ("body changed", rest + b"P.S. click here\r\n"),
    ]


def dkimpy_verifies(message, records, index):
    def dnsfunc(name, timeout=5):
        return records.get(name.decode().rstrip(".").lower(), "").encode()

    try:
        return dkim.DKIM(message).verify(idx=index, dnsfunc=dnsfunc)
    except dkim.DKIMException:  # dkimpy raises for some failures, returns False for others
        return False


def opendkim_inner(workdir, jobs_path):
    """Runs inside the namespaces: DNS on 127.0.0.1:53, then opendkim-testmsg."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    resolv = os.path.join(workdir, "resolv.conf")
    with open(resolv, "w") as f:
        f.write("nameserver 127.0.0.1\noptions attempts:1 timeout:2\n")
    subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
    server = subprocess.Popen(
        [sys.executable, DNS_SERVER, os.path.join(workdir, "zones.json"),
         "--address", "127.0.0.1", "--port", "53"],
        stdout=subprocess.PIPE, text=True)
    try:
        ready = server.stdout.readline()
        if not ready.startswith("PORT"):
            raise RuntimeError("dns_server.py did not start: %r" % ready)
        with open(jobs_path) as f:
            jobs = json.load(f)
        results = {}
        for path in jobs:
            with open(path, "rb") as msg:
                run = subprocess.run(["opendkim-testmsg"], stdin=msg,
                                     capture_output=True, text=True)
            results[path] = [run.returncode, run.stderr.strip()]
        print(json.dumps(results))
    finally:
        server.terminate()
        server.wait()


def run_opendkim(workdir, records, jobs):
    """{path: [rc, stderr]}, or None with a reason when it cannot run here."""
    if shutil.which("opendkim-testmsg") is None:
        return None, "opendkim-testmsg is not installed (apt install opendkim-tools)"
    if not os.path.exists(DNS_SERVER):
        return None, "tests/support/dns_server.py is missing"
    zones = {"records": [{"name": name, "type": "TXT", "value": txt}
                         for name, txt in records.items()]}
    with open(os.path.join(workdir, "zones.json"), "w") as f:
        json.dump(zones, f)
    jobs_path = os.path.join(workdir, "jobs.json")
    with open(jobs_path, "w") as f:
        json.dump(jobs, f)
    probe = subprocess.run(["unshare", "-rmn", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return None, "unshare -rmn failed: " + probe.stderr.strip()
    run = subprocess.run(
        ["unshare", "-rmn", sys.executable, os.path.abspath(__file__), "--inner",
         workdir, jobs_path],
        capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        raise RuntimeError("opendkim run failed: " + run.stderr)
    return json.loads(run.stdout), ""


def check_dkimpy(workdir, records):
    """Verifies every sample with dkimpy; returns failures and opendkim jobs."""
    failures = []
    jobs = {}  # path -> (label, should pass)
    for file, signer, count in load_tsv(os.path.join(workdir, "manifest.tsv")):
        with open(os.path.join(workdir, file), "rb") as f:
            message = f.read()
        sigs, rest = split_signatures(message)
        if len(sigs) != int(count):
            failures.append("%s: %d signatures, want %s" % (file, len(sigs), count))
            continue
        variants = [("as signed", rest, True)] + [(w, m, False) for w, m in tampered(rest)]
        for what, body, want in variants:
            for i, sig in enumerate(sigs):
                label = "%s signature %d (%s)" % (file, i, what)
                if dkimpy_verifies(b"".join(sigs) + body, records, i) != want:
                    failures.append("dkimpy: " + label + (" failed" if want else " passed"))
                path = os.path.join(workdir, "single-%d-%d.eml" % (len(jobs), i))
                with open(path, "wb") as f:
                    f.write(sig + body)
                jobs[path] = (label, want)
    return failures, jobs


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--inner":
        opendkim_inner(sys.argv[2], sys.argv[3])
        return 0
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="ember-dkim-verify-")
    try:
        subprocess.run([sys.argv[1], workdir], check=True)
        records = {n: t for n, t in load_tsv(os.path.join(workdir, "records.tsv"))}
        failures, jobs = check_dkimpy(workdir, records)
        results, why = run_opendkim(workdir, records, list(jobs))
        if results is not None:
            for path, (label, want) in jobs.items():
                rc, err = results[path]
                if (rc == 0) != want:
                    failures.append("opendkim-testmsg: %s %s: rc=%d %s" % (
                        label, "failed" if want else "passed", rc, err))
        for f in failures:
            print("FAIL", f)
        print("%d verifications, %d failures" % (len(jobs) * (2 if results else 1), len(failures)))
        if failures:
            return 1
        if results is None:
            print("SKIP opendkim-testmsg:", why)
            return SKIP
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
