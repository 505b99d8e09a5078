"""DKIM helpers for the sender-authentication scenarios (test_dkim.py,
test_alignment.py): keys made by the real `emberctl dkim keygen`, the zone
that publishes them, and two independent verifiers run on what a receiver
got, both fetching the public key from the test DNS server:

- dkimpy (python3-dkim, what `dkimverify` runs): dkim.DKIM(raw).verify(i,
  dnsfunc=...) with a dnsfunc that asks the test DNS server over UDP (TCP
  when truncated) with dnslib. The `dkimverify` script itself cannot be
  used: it resolves through dnspython's resolv.conf, which names no port.
- opendkim-testmsg (opendkim-tools, libopendkim 2.11): it verifies when
  given no -d/-k/-s, exits 0 on a good signature and prints
  "dkim_eom(): Bad signature" (exit 70) on a bad one. It has no option for
  a name server and resolves through glibc's res_ninit (resolv.conf, port
  53), so it runs with tests/support/resolv_redirect.cpp preloaded
  (EMBER_RESOLV_REDIRECT, set by CTest), which points that resolver at the
  test DNS server's port. It reports the verdict of the message as a whole
  (one good signature is enough), so each signature is checked on a copy
  carrying only that DKIM-Signature field; the signatures are independent
  (none signs another), so removing one leaves the others valid.
"""

import io
import logging
import os
import re
import stat
import subprocess

import dkim
from dnslib import QTYPE, DNSRecord

from harness import EMBERCTL, check, expect_eq

RESOLV_REDIRECT = os.environ.get("EMBER_RESOLV_REDIRECT", "")


class Key:
    def __init__(self, domain, selector, algorithm, path, dns_name, record):
        self.domain = domain
        self.selector = selector
        self.algorithm = algorithm
        self.path = path
        self.dns_name = dns_name
        self.record = record

    def config(self):
        """The [[dkim]] entry for Daemon(sections={"dkim": [...]})."""
        return {"domain": self.domain, "selector": self.selector, "key": self.path,
                "algorithm": self.algorithm}

    def zone_record(self):
        return {"name": self.dns_name, "type": "TXT", "value": self.record}


def keygen(directory, domain, selector, algorithm="rsa-sha256"):
    """A key made by `emberctl dkim keygen`, with the record it printed."""
    path = os.path.join(directory, f"{domain}.{selector}.pem")
    r = subprocess.run([EMBERCTL, "dkim", "keygen", "--domain", domain, "--selector", selector,
                        "--algorithm", algorithm, "--out", path],
                       capture_output=True, text=True, timeout=60)
    expect_eq(r.returncode, 0, f"emberctl dkim keygen exit status ({r.stderr})")
    m = re.search(r"^publish TXT at (\S+):\n(.+)$", r.stdout, re.M)
    check(m is not None, f"keygen printed no record to publish:\n{r.stdout}")
    expect_eq(m.group(1).rstrip("."), f"{selector}._domainkey.{domain}", "the record's name")
    expect_eq(stat.S_IMODE(os.stat(path).st_mode), 0o600, "mode of the private key file")
    return Key(domain, selector, algorithm, path, m.group(1).rstrip("."), m.group(2).strip())


# ---- the message as received ----

def header_and_body(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    check(sep, f"no end of header in the received message:\n{raw[:2000]!r}")
    return head + b"\r\n", body


def fields(head):
    """[(lowercased name, the field's raw bytes with continuation lines and CRLF)]."""
    out = []
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + line + b"\r\n")
        else:
            out.append((line.split(b":", 1)[0].strip().lower().decode("utf-8", "replace"),
                        line + b"\r\n"))
    return out


def tags(field):
    """The tag=value pairs of a DKIM-Signature field (whitespace removed)."""
    value = re.sub(rb"\s+", b"", field.split(b":", 1)[1]).decode()
    return dict(part.split("=", 1) for part in value.split(";") if "=" in part)


def signatures(raw):
    head, _ = header_and_body(raw)
    return [tags(f) for name, f in fields(head) if name == "dkim-signature"]


def with_only_signature(raw, index):
    """raw without its DKIM-Signature fields but the index-th."""
    head, body = header_and_body(raw)
    kept, seen = [], 0
    for name, f in fields(head):
        if name == "dkim-signature":
            seen += 1
            if seen - 1 != index:
                continue
        kept.append(f)
    return b"".join(kept) + b"\r\n" + body


# ---- the verifiers ----

def txt_lookup(port):
    """A dkimpy dnsfunc that asks only the test DNS server on 127.0.0.1:port."""
    def lookup(name, timeout=5):
        qname = name.decode() if isinstance(name, bytes) else name
        question = DNSRecord.question(qname, "TXT")
        reply = DNSRecord.parse(question.send("127.0.0.1", port, timeout=timeout))
        if reply.header.tc:
            reply = DNSRecord.parse(question.send("127.0.0.1", port, tcp=True, timeout=timeout))
        for rr in reply.rr:
            if rr.rtype == QTYPE.TXT:
                return b"".join(rr.rdata.data)
        return None
    return lookup


def dkimpy_verify(raw, dns_port, index):
    """(verified, dkimpy's log) for the index-th signature of raw."""
    text = io.StringIO()
    logger = logging.getLogger(f"dkimpy-{id(text)}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = logging.StreamHandler(text)
    logger.addHandler(handler)
    try:
        ok = dkim.DKIM(raw, logger=logger).verify(index, dnsfunc=txt_lookup(dns_port))
    except dkim.DKIMException as e:
        ok = False
        text.write(f"exception: {e}\n")
    finally:
        logger.removeHandler(handler)
    return bool(ok), text.getvalue()


def opendkim_verify(raw, dns_port):
    """(exit status, stderr) of opendkim-testmsg verifying raw."""
    check(RESOLV_REDIRECT and os.path.exists(RESOLV_REDIRECT),
          f"EMBER_RESOLV_REDIRECT={RESOLV_REDIRECT!r}: build target ember_resolv_redirect "
          "(CTest sets the variable)")
    env = dict(os.environ, LD_PRELOAD=RESOLV_REDIRECT, EMBER_TEST_DNS=f"127.0.0.1:{dns_port}")
    env.pop("ASAN_OPTIONS", None)
    r = subprocess.run(["opendkim-testmsg"], input=raw, capture_output=True, env=env, timeout=60)
    return r.returncode, r.stderr.decode("utf-8", "replace").strip()


def expect_verified(raw, dns_port, want):
    """raw carries exactly the signatures `want` ([(d, s, a)], top to
    bottom) and each verifies with dkimpy and with opendkim-testmsg."""
    sigs = signatures(raw)
    expect_eq([(t.get("d"), t.get("s"), t.get("a")) for t in sigs], want,
              "DKIM-Signature fields (d, s, a)")
    for i, t in enumerate(sigs):
        expect_eq(t.get("c"), "relaxed/relaxed", f"c= of signature {i}")
        ok, log = dkimpy_verify(raw, dns_port, i)
        check(ok, f"dkimpy: signature {i} ({t.get('a')}, d={t.get('d')}) does not verify:\n{log}"
                  f"\n{raw[:3000]!r}")
        rc, err = opendkim_verify(with_only_signature(raw, i), dns_port)
        check(rc == 0, f"opendkim-testmsg: signature {i} ({t.get('a')}, d={t.get('d')}) does "
                       f"not verify: exit {rc}: {err}\n{raw[:3000]!r}")
    rc, err = opendkim_verify(raw, dns_port)
    check(rc == 0, f"opendkim-testmsg on the whole message: exit {rc}: {err}")


def expect_rejected(raw, dns_port, opendkim_errors=("bad signature",)):
    """Every signature of raw fails with both verifiers: dkimpy does not
    verify it, opendkim-testmsg fails with one of opendkim_errors (a bad
    signature, not a missing key, unless told otherwise)."""
    sigs = signatures(raw)
    check(sigs, "the message carries DKIM signatures")
    for i, t in enumerate(sigs):
        ok, log = dkimpy_verify(raw, dns_port, i)
        check(not ok, f"dkimpy accepted signature {i} ({t.get('a')}) of the tampered message")
        rc, err = opendkim_verify(with_only_signature(raw, i), dns_port)
        check(rc != 0 and any(e in err.lower() for e in opendkim_errors),
              f"opendkim-testmsg on signature {i} ({t.get('a')}) of the tampered message: "
              f"exit {rc}: {err!r}, want one of {opendkim_errors}")
