#!/usr/bin/env python3
"""A throwaway PostgreSQL server for the tests (Python 3 standard library only).

    import pgserver
    pg = pgserver.start()                 # or start("/tmp/somedir"); a fresh temp dir by default
    pg.url("photos")                      # postgres://shoebox:PASS@127.0.0.1:PORT/photos
    pg.socket_url("photos")               # postgres://shoebox:PASS@/photos?host=DIR&port=PORT
    pg.base_url()                         # postgres://shoebox:PASS@127.0.0.1:PORT (no database)
    pg.create_db("photos")                # CREATE DATABASE photos OWNER shoebox; returns pg.url("photos")
    pg.drop_db("photos")                  # DROP DATABASE IF EXISTS photos WITH (FORCE)
    pg.restart("fast")                    # pg_ctl restart -m fast|immediate, same port and socket
    pg.pause(); pg.resume()               # down (pg_ctl stop -m fast) until resumed, data kept
    pg.stop()                             # stops postgres, removes the whole directory

Command line (the server outlives the command; stop removes DIR):

    python3 tests/pgserver.py start DIR   # prints the base URL (the value for SHOEBOX_TEST_PG)
    python3 tests/pgserver.py url DIR [DBNAME]
    python3 tests/pgserver.py stop DIR

Layout of DIR: data/ (PGDATA, 0700), the unix socket .s.PGSQL.PORT, postgres.log,
pgserver.json (port and password, for `stop DIR` and for other processes).

Who runs it: PostgreSQL refuses to run as root, so as root initdb/pg_ctl/postgres run as
the `postgres` system user (created by Debian's postgresql-common) through setpriv, and
DIR is chowned to it. As any other user they run as that user.

Users: `postgres` is the bootstrap superuser, trusted on the unix socket only. `shoebox`
(LOGIN CREATEDB, member of pg_signal_backend, not a superuser) has a random password; TCP (127.0.0.1) asks every user
for a scram-sha-256 password, the unix socket trusts everyone.

Speed: initdb takes 1-3 s on a loaded machine, so the first start initdb's a template
cluster once (per binary version and run-as user, in tmp_parent()) and every start
copies it (cp -a, ~0.1 s on /dev/shm). Temp dirs go to /dev/shm when it is big enough
(see tmp_parent()). Durability is switched off (fsync, synchronous_commit,
full_page_writes): a test database never has to survive an OS crash, and fsyncs are
most of the cost of the tests' many small commits.

Nothing is left running: start(dir) registers an atexit stop and a watchdog process
that kills the server's process group and removes DIR when this Python process exits
in any way (even SIGKILL); a failed start kills the process group at once.
"""
import atexit
import glob
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

import throwaway  # noqa: E402  (tests/, beside this file)

RUN_AS = "postgres"          # the unprivileged user when we are root
ROLE = "shoebox"             # the password-authenticated user of the URLs
MAX_CONNECTIONS = 300        # several servers, each with a connection pool
STATE = "pgserver.json"
TEMPLATE_FORMAT = "2"        # bump when the template's initdb options change
_NAME_OK = set("abcdefghijklmnopqrstuvwxyz0123456789_")


class PgError(RuntimeError):
    pass


# --- finding the binaries -------------------------------------------------------------

def find_bindir():
    """The directory with initdb/pg_ctl/postgres: $SHOEBOX_PG_BINDIR, Debian's
    /usr/lib/postgresql/15/bin (else the newest /usr/lib/postgresql/N/bin), or the
    directory of an initdb on PATH. None when PostgreSQL's server is not installed."""
    cands = []
    if os.environ.get("SHOEBOX_PG_BINDIR"):
        cands.append(os.environ["SHOEBOX_PG_BINDIR"])
    cands.append("/usr/lib/postgresql/15/bin")
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    versions.sort(key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
                  reverse=True)
    cands += versions
    on_path = shutil.which("initdb")
    if on_path:
        cands.append(os.path.dirname(os.path.realpath(on_path)))
    for d in cands:
        if all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


def available():
    """True when the server binaries are installed (and, as root, the postgres user exists)."""
    if find_bindir() is None:
        return False
    if os.geteuid() == 0:
        try:
            import pwd
            pwd.getpwnam(RUN_AS)
        except KeyError:
            return False
    return True


def _run_as_ids():
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    import pwd
    pw = pwd.getpwnam(RUN_AS)
    return pw.pw_uid, pw.pw_gid


def _as_pg(argv):
    """argv run as the unprivileged user (setpriv execs in place: no extra process)."""
    if os.geteuid() != 0:
        return argv
    return ["setpriv", f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--init-groups", "--"] + argv


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env.pop("LANG", None)
    return env


def _run(argv, what, timeout=60, as_pg=True, input=None, wrap=()):
    argv = list(wrap) + (_as_pg(argv) if as_pg else argv)
    proc = subprocess.run(argv, env=_env(), capture_output=True,
                          text=True, timeout=timeout, input=input, stdin=None if input else
                          subprocess.DEVNULL)
    if proc.returncode != 0:
        raise PgError(f"{what} failed ({proc.returncode}): {proc.stdout}{proc.stderr}".strip())
    return proc.stdout


def tmp_parent():
    return throwaway.tmp_parent("SHOEBOX_PG_TMPDIR")


_free_port = throwaway.free_port


# --- the template cluster -------------------------------------------------------------

def _template(bindir):
    """Path of an initdb'd data directory to copy (made once, atomically renamed)."""
    uid, gid = _run_as_ids()
    version = _run([os.path.join(bindir, "postgres"), "--version"], "postgres --version",
                   as_pg=False).strip()
    key = hashlib.sha256(f"{bindir}\0{version}\0{TEMPLATE_FORMAT}".encode()).hexdigest()[:12]
    path = os.path.join(tmp_parent(), f"shoebox-pg-template-{uid}-{key}")
    data = os.path.join(path, "data")
    if _template_ok(path, uid):
        return data
    tmp = tempfile.mkdtemp(prefix=os.path.basename(path) + ".tmp-", dir=os.path.dirname(path))
    try:
        os.chown(tmp, uid, gid)
        _run([os.path.join(bindir, "initdb"), "--no-sync", "--auth=trust", "--username=postgres",
              "--encoding=UTF8", "--no-locale", "--no-instructions",
              "--wal-segsize=1",  # 1 MB instead of 16 MB of WAL to copy per start
              "-D",
              os.path.join(tmp, "data")], "initdb", timeout=120)
        try:
            os.rename(tmp, path)
        except OSError:
            pass    # another process made it first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not _template_ok(path, uid):
        raise PgError(f"template cluster {path} is not usable")
    return data


def _template_ok(path, uid):
    try:
        st = os.lstat(path)
        dst = os.lstat(os.path.join(path, "data"))
    except OSError:
        return False
    return (not os.path.islink(path) and st.st_uid == uid and dst.st_uid == uid
            and os.path.isfile(os.path.join(path, "data", "PG_VERSION"))
            and not os.path.exists(os.path.join(path, "data", "postmaster.pid")))


# --- the server -----------------------------------------------------------------------

class PgServer:
    """One running PostgreSQL in self.dir. Make one with start(); attach(dir) finds the
    one a `pgserver.py start DIR` left running."""

    def __init__(self, dir, port, password, bindir, host="127.0.0.1", wrap=()):
        self.dir = os.path.abspath(dir)
        self.host = host          # the TCP listen address (a test host's, see start())
        self.wrap = list(wrap)    # argv prefix that runs the server there (ip netns exec NS)
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.port = port
        self.password = password
        self.bindir = bindir
        self._watchdog = None
        self._atexit = False

    # URLs (libpq URI syntax; the password is hex, so it needs no escaping)
    def base_url(self):
        return f"postgres://{ROLE}:{self.password}@{self.host}:{self.port}"

    def url(self, dbname="postgres"):
        return f"{self.base_url()}/{dbname}"

    def socket_url(self, dbname="postgres"):
        host = urllib.parse.quote(self.dir, safe="")
        return f"postgres://{ROLE}:{self.password}@/{dbname}?host={host}&port={self.port}"

    def env(self):
        """What tests/run.py exports."""
        return {"SHOEBOX_TEST_PG": self.base_url(), "SHOEBOX_TEST_PG_DIR": self.dir}

    # SQL as the superuser over the unix socket
    def psql(self, sql, dbname="postgres"):
        return _run([os.path.join(self.bindir, "psql"), "-X", "-q", "-A", "-t",
                     "-v", "ON_ERROR_STOP=1", "-h", self.dir, "-p", str(self.port),
                     "-U", "postgres", "-d", dbname, "-c", sql], f"psql {sql!r}", as_pg=False)

    def create_db(self, name):
        _check_name(name)
        self.psql(f'CREATE DATABASE "{name}" OWNER {ROLE}')
        return self.url(name)

    def drop_db(self, name):
        _check_name(name)
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # life cycle
    def pid(self):
        """The postmaster's pid (from postmaster.pid), or None."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def ready(self):
        proc = subprocess.run([os.path.join(self.bindir, "pg_isready"), "-q", "-h", self.host,
                               "-p", str(self.port), "-U", ROLE, "-d", "postgres", "-t", "2"],
                              env=_env(), stdin=subprocess.DEVNULL, timeout=10)
        return proc.returncode == 0

    def _wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise PgError(f"postgres not ready on port {self.port} after {timeout}s; log:\n"
                              + self.log()[-4000:])
            time.sleep(0.02)

    def _pg_ctl(self, *args, timeout=60):
        return _run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", self.log_path,
                     "-w", "-t", str(timeout), *args], "pg_ctl " + " ".join(args),
                    timeout=timeout + 10, wrap=self.wrap)

    def restart(self, mode="fast"):
        """pg_ctl restart -m fast|immediate: same data, port and socket; every client
        connection is cut (immediate: no shutdown checkpoint, crash recovery on start)."""
        if mode not in ("fast", "immediate", "smart"):
            raise ValueError(f"restart mode {mode!r}")
        if mode == "immediate":
            # synchronous_commit=off leaves the last few hundred ms of commits in memory,
            # and an immediate shutdown would lose them. One synchronous commit of a
            # transaction that wrote WAL (a transactional logical message; a bare
            # txid_current() commits asynchronously) flushes the WAL up to here, so what
            # was committed before restart() survives crash recovery, as with
            # synchronous_commit=on.
            self.psql("SET synchronous_commit = on; "
                      "SELECT pg_logical_emit_message(true, 'shoebox', 'flush')")
        try:
            self._pg_ctl("restart", "-m", mode)
            self._wait_ready()
        except (PgError, subprocess.TimeoutExpired):
            self.kill()
            raise

    def pause(self):
        """pg_ctl stop -m fast, keeping the data: the server is down until resume()."""
        self._pg_ctl("stop", "-m", "fast")

    def resume(self):
        """Start again what pause() stopped (same data, port and socket) and wait until ready."""
        try:
            self._pg_ctl("start")
            self._wait_ready()
        except (PgError, subprocess.TimeoutExpired):
            self.kill()
            raise

    def stop(self):
        """Stop (fast shutdown; SIGKILL to the process group if that fails) and remove
        everything. Safe to call twice."""
        if self._atexit:
            atexit.unregister(self.stop)
            self._atexit = False
        try:
            if os.path.exists(os.path.join(self.data, "postmaster.pid")):
                try:
                    self._pg_ctl("stop", "-m", "fast", timeout=30)
                except (PgError, subprocess.TimeoutExpired):
                    self.kill()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self._end_watchdog()

    def kill(self):
        """SIGKILL the postmaster's process group (pg_ctl makes it a session leader, so
        the group is the postmaster and its backends) and wait until it is gone."""
        _kill_group(self.pid())

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _end_watchdog(self):
        if self._watchdog:
            try:
                self._watchdog.stdin.close()
                self._watchdog.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self._watchdog = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _check_name(name):
    if not name or len(name) > 63 or not set(name) <= _NAME_OK or name[0].isdigit():
        raise ValueError(f"database name {name!r}: use [a-z_][a-z0-9_]*, at most 63")


_alive = throwaway.alive


def _is_postmaster(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
        return comm in ("postgres", "postmaster") and os.getpgid(pid) == pid \
            and os.getpgid(pid) != os.getpgrp()
    except OSError:
        return False


def _kill_group(pid, timeout=10.0):
    if not pid or not _is_postmaster(pid):
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


# The watchdog blocks reading a pipe whose only writer is the Python process that started
# the server; EOF means that process is gone (or stop() closed it): kill and remove.
_WATCHDOG = r"""
import os, shutil, signal, sys, time
sys.path.insert(0, sys.argv[2])
import pgserver
d = sys.argv[1]
sys.stdin.buffer.read()
try:
    with open(os.path.join(d, "data", "postmaster.pid")) as f:
        pgserver._kill_group(int(f.readline().strip()))
except (OSError, ValueError):
    pass
shutil.rmtree(d, ignore_errors=True)
"""


def start(dir=None, cleanup_at_exit=True, start_timeout=30.0, host="127.0.0.1", wrap=()):
    """Start a fresh server in dir (made if missing; must be empty; a new temp dir when
    None) and return its PgServer. With cleanup_at_exit (the default) it is stopped and
    dir removed when this process exits, however it exits. host and wrap put it on a test
    host of tests/netns.py: host=h.addr, wrap=["ip", "netns", "exec", h.ns] (it listens on
    that address and takes passwords from its /24; the unix socket works from anywhere)."""
    bindir = find_bindir()
    if bindir is None:
        raise PgError("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    uid, gid = _run_as_ids()
    if dir is None:
        dir = tempfile.mkdtemp(prefix="shoebox-pg-", dir=tmp_parent())
    else:
        os.makedirs(dir, exist_ok=True)
        if os.listdir(dir):
            raise PgError(f"{dir} is not empty")
    dir = os.path.abspath(dir)
    if len(dir) + len("/.s.PGSQL.65535") > 107:
        raise PgError(f"{dir}: too long for a unix socket path")
    os.chown(dir, uid, gid)
    os.chmod(dir, 0o755)
    if os.geteuid() == 0 and subprocess.run(_as_pg(["test", "-w", dir]), env=_env()).returncode:
        raise PgError(f"{dir}: the {RUN_AS} user cannot reach it (a parent directory is "
                      "not searchable by others; use one under /tmp or /dev/shm)")
    srv = PgServer(dir, 0, secrets.token_hex(16), bindir, host, wrap)
    try:
        if cleanup_at_exit:
            srv._watchdog = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG, dir, os.path.dirname(os.path.abspath(__file__))],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
            atexit.register(srv.stop)
            srv._atexit = True
        template = _template(bindir)
        subprocess.run(["cp", "-a", template, srv.data], check=True)
        with open(os.path.join(srv.data, "pg_hba.conf"), "w") as f:
            f.write("# tests/pgserver.py: the socket trusts everyone, TCP wants a password\n"
                    "local all all trust\n"
                    "host  all all 127.0.0.1/32 scram-sha-256\n"
                    + ("" if host == "127.0.0.1" else "host  all all samenet scram-sha-256\n"))
        for attempt in range(5):
            srv.port = _free_port()
            _write_conf(srv)
            try:
                srv._pg_ctl("start", timeout=int(start_timeout))
                break
            except PgError:
                log = srv.log()
                _kill_group(srv.pid())
                if ("could not bind" in log or "Address already in use" in log) and attempt < 4:
                    os.truncate(srv.log_path, 0)
                    continue    # lost a race for the port with another process
                raise PgError("postgres did not start; log:\n" + log[-4000:])
        srv.psql(f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{srv.password}'")
        # DROP DATABASE ... WITH (FORCE) ends every session in the database, autovacuum's
        # workers included; those belong to no role, and PostgreSQL 15 lets only members
        # of pg_signal_backend end them, so without this a test's cleanup fails whenever
        # autovacuum happens to be working in its database.
        srv.psql(f"GRANT pg_signal_backend TO {ROLE}")
        srv._wait_ready()
        with open(os.path.join(dir, STATE), "w") as f:
            json.dump({"port": srv.port, "password": srv.password, "bindir": bindir}, f)
        return srv
    except BaseException:
        _kill_group(srv.pid())
        shutil.rmtree(dir, ignore_errors=True)
        srv._end_watchdog()
        raise


def _write_conf(srv):
    uid, gid = _run_as_ids()
    path = os.path.join(srv.data, "shoebox.conf")
    with open(path, "w") as f:
        f.write(f"""# written by tests/pgserver.py
listen_addresses = '{srv.host}'
port = {srv.port}
unix_socket_directories = '{srv.dir}'
max_connections = {MAX_CONNECTIONS}
password_encryption = 'scram-sha-256'
# Test speed over durability: nothing here has to survive an OS crash. (A postgres
# crash, pg_ctl restart -m immediate, is still recovered from the WAL.)
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 32MB
# dynamic shared memory as files in data/pg_dynshmem, not /dev/shm/PostgreSQL.*: a
# SIGKILLed server then leaves nothing outside DIR
dynamic_shared_memory_type = mmap
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
""")
    os.chown(path, uid, gid)
    conf = os.path.join(srv.data, "postgresql.conf")
    with open(conf) as f:
        if "include 'shoebox.conf'" in f.read():
            return
    with open(conf, "a") as f:
        f.write("\ninclude 'shoebox.conf'\n")


def attach(dir):
    """The PgServer a `pgserver.py start DIR` started (not stopped at this process's exit)."""
    dir = os.path.abspath(dir)
    with open(os.path.join(dir, STATE)) as f:
        st = json.load(f)
    return PgServer(dir, st["port"], st["password"], st["bindir"])


def main(argv):
    usage = "usage: pgserver.py start DIR | stop DIR | url DIR [DBNAME]"
    if len(argv) < 2 or argv[0] not in ("start", "stop", "url"):
        print(usage, file=sys.stderr)
        return 2
    cmd, dir = argv[0], argv[1]
    try:
        if cmd == "start":
            print(start(dir, cleanup_at_exit=False).base_url())
        elif cmd == "url":
            srv = attach(dir)
            print(srv.url(argv[2]) if len(argv) > 2 else srv.base_url())
        else:
            if os.path.exists(os.path.join(dir, STATE)):
                attach(dir).stop()
            elif os.path.isdir(dir):
                PgServer(dir, 0, "", find_bindir() or "").stop()
    except (PgError, OSError, ValueError) as e:
        print(f"pgserver: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
