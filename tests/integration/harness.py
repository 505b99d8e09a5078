"""Integration test harness: runs the real emberd on loopback and talks to it
with real peers (smtplib, swaks, raw sockets, emberctl).

Every daemon a test starts is stopped when the test ends (the Daemon context
manager), also when the test fails. Binaries come from the environment that
CTest sets: EMBERD, EMBERCTL. Nothing here sleeps for a fixed time to make a
result come true: waits poll for a condition with a generous limit.
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

EMBERD = os.environ.get("EMBERD", "emberd")
EMBERCTL = os.environ.get("EMBERCTL", "emberctl")
SOURCE_DIR = os.environ.get("EMBER_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))

PASSWORD = "s3cret-Passw0rd"


class Failure(AssertionError):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def expect_eq(got, want, what):
    if got != want:
        raise Failure(f"{what}: got {got!r}, want {want!r}")


def wait_until(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise Failure(f"timed out after {timeout}s waiting for {what}")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_cert_cache = {}


def make_cert(directory):
    """A self-signed certificate for localhost (EC P-256: fast to make)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def make_users(directory, users):
    """users: {name: password}; hashes made with mkpasswd (yescrypt)."""
    path = os.path.join(directory, "users")
    with open(path, "w") as f:
        for name, password in users.items():
            h = subprocess.run(["mkpasswd", "-m", "yescrypt", password], check=True,
                               capture_output=True, text=True).stdout.strip()
            f.write(f"{name}:{h}\n")
    return path


class Daemon:
    """One emberd under test.

    listeners: list of dicts with keys name, mode, tls, auth, auth_without_tls.
    smtp / server / auth / queue: extra keys for those sections (TOML literals
    written as Python values).
    """

    def __init__(self, listeners=None, smtp=None, server=None, auth=None, queue=None,
                 users=None, trusted=("127.0.0.0/8", "::1/128"), http=True, tls=None,
                 extra_toml="", sections=None, alignment="off"):
        self.dir = tempfile.mkdtemp(prefix="ember-it-")
        self.listeners = listeners or [{"name": "main", "mode": "submission", "tls": "none",
                                        "auth": "none"}]
        self.ports = {l["name"]: free_port() for l in self.listeners}
        self.http_port = free_port() if http else None
        self.smtp = smtp or {}
        self.server = server or {}
        self.auth = dict(auth or {})
        self.queue = queue or {}
        self.trusted = list(trusted)
        self.extra_toml = extra_toml
        # Further sections as {"delivery": {...}, "dns": {...}}; a value that is
        # a dict becomes an inline table, a list of dicts an array of tables.
        self.sections = sections or {}
        # The DMARC gate is off unless a test is about it: most scenarios
        # submit from domains without DNS records or DKIM keys.
        self.alignment = alignment
        self.users = users if users is not None else {"alice": PASSWORD}
        self.needs_tls = tls if tls is not None else any(
            l.get("tls", "none") != "none" for l in self.listeners)
        self.proc = None
        self.log_path = os.path.join(self.dir, "emberd.log")
        self.config_path = os.path.join(self.dir, "ember.toml")
        self.socket_path = os.path.join(self.dir, "admin.sock")
        self._log_offset = 0
        self.write_config()

    # ---- configuration ----

    @staticmethod
    def _toml(value):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        if isinstance(value, dict):
            return "{ " + ", ".join(f"{json.dumps(str(k))} = {Daemon._toml(v)}"
                                    for k, v in value.items()) + " }"
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(Daemon._toml(v) for v in value) + "]"
        return json.dumps(str(value))

    def config_text(self):
        lines = ["[server]", 'hostname = "mta.test.example"',
                 f'data_dir = "{self.dir}/data"', 'shutdown_grace = "10s"']
        for k, v in self.server.items():
            lines.append(f"{k} = {self._toml(v)}")
        for l in self.listeners:
            lines += ["", "[[listener]]", f'address = "127.0.0.1:{self.ports[l["name"]]}"']
            for k in ("mode", "tls", "auth", "auth_without_tls"):
                if k in l:
                    lines.append(f"{k} = {self._toml(l[k])}")
        if self.smtp:
            lines += ["", "[smtp]"] + [f"{k} = {self._toml(v)}" for k, v in self.smtp.items()]
        if self.needs_tls:
            cert, key = make_cert(self.dir)
            lines += ["", "[tls]", f'cert = "{cert}"', f'key = "{key}"']
        lines += ["", "[auth]", f"trusted_networks = {self._toml(self.trusted)}"]
        if self.alignment is not None:
            lines.append(f'alignment = "{self.alignment}"')
        if self.users:
            lines.append(f'users_file = "{make_users(self.dir, self.users)}"')
        for k, v in self.auth.items():
            lines.append(f"{k} = {self._toml(v)}")
        if self.queue:
            lines += ["", "[queue]"] + [f"{k} = {self._toml(v)}" for k, v in self.queue.items()]
        if self.http_port:
            lines += ["", "[http]", f'listen = "127.0.0.1:{self.http_port}"']
        if "delivery" not in self.sections:
            # Submission scenarios look at the queue: keep their mail in it.
            lines += ["", "[delivery]", "hold = true"]
        for name, body in self.sections.items():
            if isinstance(body, list):
                for entry in body:
                    lines += ["", f"[[{name}]]"] + [f"{k} = {self._toml(v)}"
                                                    for k, v in entry.items()]
            else:
                lines += ["", f"[{name}]"] + [f"{k} = {self._toml(v)}" for k, v in body.items()]
        lines += ["", "[admin]", f'socket = "{self.socket_path}"', "", self.extra_toml]
        return "\n".join(lines) + "\n"

    def write_config(self, text=None):
        with open(self.config_path, "w") as f:
            f.write(text if text is not None else self.config_text())

    # ---- life cycle ----

    def start(self, wait=True):
        self.mark_log()  # a restart must not match the previous run's lines
        self._log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen([EMBERD, "-c", self.config_path, "--log-level", "debug"],
                                     stdout=self._log_file, stderr=self._log_file)
        if wait:
            self.wait_log(r"daemon\.ready", timeout=30)
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if exc[0] is not None:
            print("---- emberd log (last 60 lines) ----")
            print("\n".join(self.log().splitlines()[-60:]))
        shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def stop(self, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def signal(self, signo):
        self.proc.send_signal(signo)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # ---- observation ----

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def mark_log(self):
        """Later wait_log() calls only look at lines written after this."""
        self._log_offset = len(self.log())

    def wait_log(self, pattern, timeout=20):
        rx = re.compile(pattern)

        def found():
            if self.proc is not None and self.proc.poll() is not None and not rx.search(
                    self.log()[self._log_offset:]):
                raise Failure(f"emberd exited ({self.proc.returncode}) before logging "
                              f"/{pattern}/:\n{self.log()[-3000:]}")
            return rx.search(self.log()[self._log_offset:])
        return wait_until(found, timeout, f"log line /{pattern}/")

    def port(self, name="main"):
        return self.ports[name]

    def ctl(self, *args, check_rc=True):
        r = subprocess.run([EMBERCTL, "--socket", self.socket_path, *args], capture_output=True,
                           text=True, timeout=30)
        if check_rc and r.returncode != 0:
            raise Failure(f"emberctl {' '.join(args)} exited {r.returncode}: {r.stderr}{r.stdout}")
        return r

    def ctl_json(self, *args):
        return json.loads(self.ctl("--json", *args).stdout)

    def queue_ids(self):
        listing = self.ctl_json("queue", "list", "--limit", "10000")
        return [m["id"] for m in listing["messages"]]

    def metrics(self):
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=10) as r:
            return r.read().decode()


# ---- SMTP clients ----

class RawSmtp:
    """A line-level SMTP client over a raw socket, for malformed input and
    pipelining: send exactly the bytes a test wants, read replies as parsed."""

    def __init__(self, port, host="127.0.0.1", tls=False, timeout=20):
        sock = socket.create_connection((host, port), timeout=timeout)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            sock = ctx.wrap_socket(sock)
        self.sock = sock
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def starttls(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed by server")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        """(code, text of all lines joined by newline)."""
        lines = []
        while True:
            line = self._line()
            lines.append(line[4:])
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), "\n".join(lines)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def expect(self, want_code, line=None, contains=None):
        code, text = self.cmd(line) if line is not None else self.reply()
        if code != want_code or (contains and contains not in text):
            raise Failure(f"{line!r}: got {code} {text!r}, want {want_code}"
                          + (f" containing {contains!r}" if contains else ""))
        return text

    def closed_by_server(self, timeout=10):
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def message(sender="app@sender.example", to="user@dest.example", subject="hello", body="Hi.\r\n",
            extra_headers=""):
    return (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n{extra_headers}\r\n{body}")


def queued_id(text):
    m = re.search(r"queued as ([0-9A-Z]{13})", text)
    check(m is not None, f"no queue id in {text!r}")
    return m.group(1)


def swaks(*args, timeout=60):
    return subprocess.run(["swaks", *args], capture_output=True, text=True,
                          timeout=timeout)
