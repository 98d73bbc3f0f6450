"""Integration harness: start the real `shoebox serve` on a free loopback port with a
fresh data directory, and talk to it over HTTP (Python 3 standard library only).

    srv = Server(users={"alice": "pw"}, args=["--session-age", "2"])
    srv.start()
    c = srv.client()
    c.login("alice", "pw")
    status, headers, body = c.get("/photos/")
    srv.stop()          # SIGTERM and wait; srv.restart() keeps the data dir
    srv.cleanup()       # removes the temp dir (after stop)

SHOEBOX_BIN names the binary (default build/shoebox under the repository root).
Nothing sleeps a fixed time: waits poll with a deadline (wait_until).

PostgreSQL: tests/run.py starts one throwaway server for the run (tests/pgserver.py) and
exports SHOEBOX_TEST_PG (postgres://shoebox:PASS@127.0.0.1:PORT, no database name) and
SHOEBOX_TEST_PG_DIR. pg_database(self) creates a fresh database on it and returns its
URL (dropped at the test's cleanup); without SHOEBOX_TEST_PG it raises SkipTest.

SHOEBOX_TEST_DB=pg (tests/run.py sets it for its "integration (PostgreSQL)" run of
test_pipeline, test_progress and test_crash): every Server gets a fresh pg_database() and
`--db URL` (for `user add` too), dropped at cleanup(). Read the database through
srv.query(sql, params), which works on either backend, never the SQLite file.

S3: tests/run.py also starts one RADOS Gateway for the run (tests/rgwserver.py) and
exports SHOEBOX_TEST_S3 (s3://BUCKET?endpoint=...&region=...) with
SHOEBOX_TEST_S3_ACCESS_KEY / _SECRET_KEY / _DIR. s3_blobs(self) returns (url, env): a
--blobs URL under a prefix of its own and the key variables for the server's
environment; without SHOEBOX_TEST_S3 it raises SkipTest.
"""
import http.client
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

ROOT = os.environ.get("SHOEBOX_ROOT",
                      os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.environ.get("SHOEBOX_BIN", os.path.join(ROOT, "build", "shoebox"))
TESTDATA = os.environ.get("SHOEBOX_TESTDATA", "")

sys.path.insert(0, os.path.join(ROOT, "tests"))
from throwaway import free_port  # noqa: E402,F401  (a port no other job takes first)


def have_testdata():
    """Tests that need SHOEBOX_TESTDATA skip when this is False."""
    return bool(TESTDATA) and os.path.isdir(TESTDATA)


def wait_until(pred, timeout=10.0, interval=0.02, what="condition"):
    """Poll pred() until it returns a truthy value (returned) or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


_pg_serial = itertools.count(1)


def pg_base_url():
    """SHOEBOX_TEST_PG (the run's PostgreSQL, no database name), or None."""
    return os.environ.get("SHOEBOX_TEST_PG", "").rstrip("/") or None


def psql(url, sql, timeout=60):
    """Run sql through psql against url; returns stdout (unaligned, tuples only)."""
    exe = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    proc = subprocess.run([exe, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url,
                           "-c", sql], capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise AssertionError(f"psql {sql!r} failed: {proc.stderr.strip()}")
    return proc.stdout


def pg_database(test=None):
    """Create a fresh, uniquely named database on the run's PostgreSQL (owned by the URL's
    user) and return its URL, postgres://shoebox:PASS@127.0.0.1:PORT/sbt_...; with a
    TestCase, it is dropped at that test's cleanup. SkipTest when SHOEBOX_TEST_PG is unset
    (PostgreSQL not installed; `make test` installs it, so CI never skips)."""
    base = pg_base_url()
    if not base:
        raise unittest.SkipTest("SHOEBOX_TEST_PG is not set (no PostgreSQL on this machine)")
    name = f"sbt_{os.getpid()}_{next(_pg_serial)}_{secrets.token_hex(3)}"
    psql(base + "/postgres", f'CREATE DATABASE "{name}"')
    url = f"{base}/{name}"
    if test is not None:
        test.addCleanup(pg_drop_database, url)
    return url


def pg_drop_database(url):
    """Drop a pg_database() database, closing its connections (WITH (FORCE))."""
    base, _, name = url.rpartition("/")
    if not re.fullmatch(r"sbt_[0-9a-f_]+", name):
        raise ValueError(f"not a pg_database() URL: {url}")
    sql = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    try:
        psql(base + "/postgres", sql)
    except AssertionError as e:
        # A session the URL's role may not end (a test's superuser session: "must be a
        # superuser to terminate ...", "... whose process is being terminated ...") is
        # ended by a superuser: drop it as `postgres` over the run's unix socket.
        sock = os.environ.get("SHOEBOX_TEST_PG_DIR")
        port = urllib.parse.urlsplit(base).port
        if "terminat" not in str(e) or not sock or not port:
            raise
        psql(f"postgres://postgres@/postgres?host={urllib.parse.quote(sock, safe='')}"
             f"&port={port}", sql)


_s3_serial = itertools.count(1)


def s3_blobs(test=None):
    """A --blobs URL on the run's S3 server under a fresh prefix, and the environment
    (SHOEBOX_S3_ACCESS_KEY, SHOEBOX_S3_SECRET_KEY) a server needs for it. SkipTest when
    SHOEBOX_TEST_S3 is unset (Ceph not installed; `make test` installs it)."""
    base = os.environ.get("SHOEBOX_TEST_S3", "")
    if not base:
        raise unittest.SkipTest("SHOEBOX_TEST_S3 is not set (no Ceph on this machine)")
    u = urllib.parse.urlsplit(base)
    prefix = f"t{os.getpid()}-{next(_s3_serial)}-{secrets.token_hex(3)}"
    url = urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + prefix, u.query, ""))
    env = {"SHOEBOX_S3_ACCESS_KEY": os.environ["SHOEBOX_TEST_S3_ACCESS_KEY"],
           "SHOEBOX_S3_SECRET_KEY": os.environ["SHOEBOX_TEST_S3_SECRET_KEY"]}
    return url, env


def test_blobs_are_s3():
    """True when this run's Servers keep blobs on the run's S3 server (SHOEBOX_TEST_BLOBS=s3)."""
    return os.environ.get("SHOEBOX_TEST_BLOBS", "local") == "s3"


def test_db_is_pg():
    """True when this run's Servers use PostgreSQL (SHOEBOX_TEST_DB=pg)."""
    return os.environ.get("SHOEBOX_TEST_DB", "sqlite") == "pg"


def _pg_value(text):
    if text == "\\N":
        return None
    return int(text) if re.fullmatch(r"-?[0-9]+", text) else text


def _pg_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


def query(db, sql, params=()):
    """Rows (tuples) of sql with ?-placeholders on db: a SQLite file path (opened read
    only) or a PostgreSQL URL (through psql: NULL is None, integers are ints, the rest
    strings). For checks the API does not answer; statements only, no transactions."""
    if db.startswith(("postgres://", "postgresql://")):
        pieces = sql.split("?")
        if len(pieces) != len(params) + 1:
            raise ValueError(f"{len(params)} parameters for {sql!r}")
        text = pieces[0] + "".join(_pg_literal(p) + rest for p, rest in zip(params, pieces[1:]))
        exe = shutil.which("psql") or "/usr/lib/postgresql/15/bin/psql"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        proc = subprocess.run([exe, "-X", "-q", "-A", "-t", "-F", "\x1f", "-P", "null=\\N",
                               "-v", "ON_ERROR_STOP=1", "-d", db, "-c", text],
                              capture_output=True, text=True, timeout=60, env=env,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise AssertionError(f"psql {text!r} failed: {proc.stderr.strip()}")
        return [tuple(_pg_value(v) for v in line.split("\x1f"))
                for line in proc.stdout.split("\n") if line]
    import sqlite3
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


class Server:
    """One `shoebox serve` process with its own temp data dir."""

    def __init__(self, users=None, args=None, start_timeout=20.0):
        self.tmp = tempfile.mkdtemp(prefix="shoebox-it-")
        self.data = os.path.join(self.tmp, "data")
        os.makedirs(self.data)
        self.log_path = os.path.join(self.tmp, "server.log")
        self.args = list(args or [])
        self.start_timeout = start_timeout
        self.port = None
        self.proc = None
        self._log = None
        self.db_url = None
        if test_db_is_pg() and "--db" not in self.args:
            self.db_url = pg_database()   # passed by start(), whatever a test sets args to
        self.blobs_url, self.env = None, None
        if test_blobs_are_s3() and "--blobs" not in self.args:
            self.blobs_url, s3env = s3_blobs()   # a fresh prefix on the run's RADOS Gateway
            self.env = dict(os.environ, **s3env)
        for name, password in (users or {}).items():
            self.add_user(name, password)

    # --- users ---
    def add_user(self, name, password):
        db = ["--db", self.db_url] if self.db_url else []
        proc = subprocess.run([BIN, "user", "add", name, "--password-stdin", "--data", self.data]
                              + db,
                              input=password + "\n", capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"user add {name} failed: {proc.stdout}{proc.stderr}")

    # --- the database, whichever backend ---
    @property
    def db(self):
        """The database this server uses: its PostgreSQL URL or DATA/shoebox.db."""
        return self.db_url or os.path.join(self.data, "shoebox.db")

    def query(self, sql, params=()):
        """Rows of sql (?-placeholders) on this server's database, SQLite or PostgreSQL."""
        return query(self.db, sql, params)

    # --- life cycle ---
    def start(self):
        self.port = self.port or free_port()
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--data", self.data]
            + (["--db", self.db_url] if self.db_url and "--db" not in self.args else [])
            + (["--blobs", self.blobs_url] if self.blobs_url else [])
            + self.args,
            stdout=self._log, stderr=subprocess.STDOUT, env=self.env)
        try:
            wait_until(self._healthy, timeout=self.start_timeout, what="/healthz")
        except AssertionError:
            self.kill()
            raise AssertionError("server did not become healthy; log:\n" + self.log())
        self._check_backend()
        return self

    def _check_backend(self):
        """The server just started says which database it uses (event=listening ... db=):
        on a SHOEBOX_TEST_DB=pg run it must be PostgreSQL, whatever a test did to args."""
        if not self.db_url and ("--db" in self.args or os.environ.get("SHOEBOX_DB")):
            return  # the test chose its database
        lines = [ln for ln in self.log().splitlines() if "event=listening" in ln]
        shown = re.search(r'db="?(\S+?)"?(?: |$)', lines[-1]).group(1) if lines else ""
        want_pg = bool(self.db_url)
        if shown.startswith("postgres") != want_pg:
            self.kill()
            raise AssertionError(f"server runs on {shown or 'an unknown database'}, not on "
                                 f"{'PostgreSQL' if want_pg else 'SQLite'} "
                                 "(SHOEBOX_TEST_DB); log:\n" + self.log()[-3000:])

    def _healthy(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}; log:\n" + self.log())
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/healthz")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code."""
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("server ignored SIGTERM; log:\n" + self.log())
        return self._reap()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        return self._reap()

    def _reap(self):
        rc = self.proc.returncode
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None
        return rc

    def restart(self):
        """Stop and start again on the same port with the same data dir."""
        self.stop()
        return self.start()

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

    def cleanup(self):
        """Kill, remove the temp dir; under `make sanitize` (SHOEBOX_SANITIZE=1) a
        sanitizer report in the server's or a worker's log fails the test."""
        self.kill() if self.proc else None
        log = self.log() if os.environ.get("SHOEBOX_SANITIZE") else ""
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self.db_url:
            url, self.db_url = self.db_url, None
            pg_drop_database(url)
        found = [m for m in self.SANITIZER_MARKS if m in log]
        if found:
            start = min(log.find(m) for m in found)
            raise AssertionError("sanitizer report in the server log:\n" + log[start:start + 6000])

    def log(self):
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def client(self):
        return Client(self.port)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers          # list of (name, value), names as sent
        self.body = body                # bytes

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.body)

    # tuple-like unpacking: status, headers, body
    def __iter__(self):
        return iter((self.status, self.headers, self.body))


class Client:
    """http.client with a cookie jar (name -> value; Max-Age=0 deletes)."""

    def __init__(self, port, host="127.0.0.1"):
        self.host, self.port = host, port
        self.cookies = {}

    def request(self, method, path, body=None, headers=None):
        h = {"Host": f"{self.host}:{self.port}"}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        h.update(headers or {})
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            resp = Response(r.status, r.getheaders(), r.read())
        finally:
            conn.close()
        for line in resp.header_all("Set-Cookie"):
            self._store_cookie(line)
        return resp

    def _store_cookie(self, line):
        first, _, attrs = line.partition(";")
        name, _, value = first.strip().partition("=")
        m = re.search(r"max-age=(-?\d+)", attrs, re.I)
        if m and int(m.group(1)) <= 0:
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def post(self, path, fields=None, headers=None, csrf=True):
        """POST a urlencoded form; csrf adds csrfmiddlewaretoken from the cookie."""
        fields = dict(fields or {})
        if csrf and "csrftoken" in self.cookies:
            fields.setdefault("csrfmiddlewaretoken", self.cookies["csrftoken"])
        h = {"Content-Type": "application/x-www-form-urlencoded"}
        h.update(headers or {})
        return self.request("POST", path, body=urllib.parse.urlencode(fields), headers=h)

    def json(self, method, path, payload=None, headers=None):
        h = {"Accept": "application/json"}
        if method not in ("GET", "HEAD") and "csrftoken" in self.cookies:
            h["X-CSRFToken"] = self.cookies["csrftoken"]
        body = None
        if payload is not None:
            body = json.dumps(payload)
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        return self.request(method, path, body=body, headers=h)

    def login(self, username, password, next_path=None):
        """GET /login (sets csrftoken), POST the form; returns the POST's Response."""
        r = self.get("/login")   # 303 when already logged in; the cookie is set either way
        if r.status not in (200, 303):
            raise AssertionError(f"GET /login gave {r.status}")
        fields = {"username": username, "password": password}
        if next_path:
            fields["next"] = next_path
        return self.post("/login", fields)

    def csrf_field_in(self, html):
        m = re.search(r'name="csrfmiddlewaretoken" value="([0-9a-f]+)"', html)
        return m.group(1) if m else None
