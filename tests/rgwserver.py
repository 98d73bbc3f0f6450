#!/usr/bin/env python3
"""A throwaway S3 server for the tests: Ceph's RADOS Gateway (Python 3 standard library only).

    import rgwserver
    rgw = rgwserver.start()               # or start("/dev/shm/somedir"); a fresh temp dir by default
    rgw.endpoint                          # http://127.0.0.1:PORT (path-style S3)
    rgw.blobs_url("some/prefix")          # s3://BUCKET/some/prefix?endpoint=...&region=us-east-1
    rgw.request("PUT", "/bucket/key", body=b"...")   # a SigV4-signed request: (status, headers, body)
    rgw.stop_rgw(); rgw.start_rgw()       # cut the S3 endpoint only (same port), cluster stays
    rgw.stop()                            # radosgw, then the OSD, then the monitor; removes DIR

Command line (the cluster outlives the command; stop removes DIR):

    python3 tests/rgwserver.py start DIR      # prints the environment (KEY=VALUE lines)
    python3 tests/rgwserver.py stop-rgw DIR   # radosgw only (tests/unit/store/test_s3.c)
    python3 tests/rgwserver.py start-rgw DIR
    python3 tests/rgwserver.py stop DIR

What runs (../shared/LIBRARY-NOTES.md, "Ceph RADOS Gateway"): one ceph-mon, one ceph-osd
on memstore (objects in RAM; the OSD holds them at ~2.2x their size) and radosgw with the
beast front end on 127.0.0.1, all in DIR with no authentication inside the cluster (cephx
off, crc messenger mode) and nothing listening anywhere but 127.0.0.1. No ceph-mgr, no
systemd. As root the daemons stay root (ceph's --setuser is not given): they touch only
DIR, and the unprivileged ceph user would need DIR chowned for nothing. Each daemon is
its own process group. A user with the given access and secret keys and one bucket are
created at start.

Exported to the tests (env()): SHOEBOX_TEST_S3 = s3://BUCKET?endpoint=http://127.0.0.1:PORT&region=R
(the URL form of --blobs, no prefix: each test adds its own), SHOEBOX_TEST_S3_ACCESS_KEY,
SHOEBOX_TEST_S3_SECRET_KEY, SHOEBOX_TEST_S3_DIR (for stop-rgw/start-rgw).

Nothing is left running: start(dir) registers an atexit stop and a watchdog process that
kills the daemons (pids in DIR/rgwserver.json) and removes DIR when this Python process
exits in any way (even SIGKILL).
"""
import atexit
import datetime
import hashlib
import hmac
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

import throwaway  # noqa: E402  (tests/, beside this file)

STATE = "rgwserver.json"
REGION = "us-east-1"
BUCKET = "shoebox-test"
BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph")
MEMSTORE_BYTES = 2 << 30     # RAM the OSD may use: tests store a few hundred MB at most


class RgwError(RuntimeError):
    pass


def available():
    """True when the Ceph binaries are installed (scripts/install-deps.sh test)."""
    return all(shutil.which(b) for b in BINARIES)


def tmp_parent():
    return throwaway.tmp_parent("SHOEBOX_RGW_TMPDIR")


_free_port = throwaway.free_port


def _env():
    return {k: v for k, v in os.environ.items() if not k.startswith("CEPH_")}


_alive = throwaway.alive


def _is_ours(pid, comm):
    """pid is still the daemon we started (its own group leader, same program)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == comm[:15] and os.getpgid(pid) == pid
    except OSError:
        return False


def _stop_pid(pid, comm, timeout=15.0):
    """SIGTERM, then SIGKILL to the group after timeout; waits until the daemon is gone."""
    if not pid or not _is_ours(pid, comm):
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pid, sig)
        except OSError:
            return
        deadline = time.monotonic() + wait
        while _alive(pid) and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)   # reap it when it is our child
            except ChildProcessError:
                pass
            time.sleep(0.02)
        if not _alive(pid):
            return


# --- SigV4 (for creating the bucket and for tests that look at the store) -----------

def _sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sigv4_headers(method, host, path, query, body, access, secret, region=REGION):
    """Headers of a SigV4-signed S3 request (path already percent-encoded, query a dict)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    amzdate, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(body).hexdigest()
    qs = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(str(v), safe='-_.~')}"
                  for k, v in sorted(query.items()))
    headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": amzdate}
    signed = ";".join(sorted(headers))
    canon = "\n".join([method, path, qs] + [f"{k}:{headers[k]}" for k in sorted(headers)]
                      + ["", signed, payload])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope,
                         hashlib.sha256(canon.encode()).hexdigest()])
    k = _sign(("AWS4" + secret).encode(), day)
    for part in (region, "s3", "aws4_request"):
        k = _sign(k, part)
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={access}/{scope}, "
                                f"SignedHeaders={signed}, Signature={sig}")
    return headers, qs


class RgwServer:
    """One running cluster in self.dir. Make one with start(); attach(dir) finds the one a
    `rgwserver.py start DIR` left running."""

    def __init__(self, dir, state):
        self.dir = os.path.abspath(dir)
        self.conf = os.path.join(self.dir, "ceph.conf")
        self.state = state
        self._watchdog = None
        self._atexit = False

    @property
    def port(self):
        return self.state["rgw_port"]

    @property
    def host(self):
        """The address radosgw listens on: 127.0.0.1, or a test host's (start(host=))."""
        return self.state.get("host", "127.0.0.1")

    @property
    def wrap(self):
        """argv prefix that runs the daemons and tools there (ip netns exec NS), or []."""
        return list(self.state.get("wrap", []))

    @property
    def endpoint(self):
        return f"http://{self.host}:{self.port}"

    @property
    def access_key(self):
        return self.state["access_key"]

    @property
    def secret_key(self):
        return self.state["secret_key"]

    @property
    def bucket(self):
        return self.state["bucket"]

    def blobs_url(self, prefix=""):
        """The --blobs value for this server's bucket under prefix."""
        q = urllib.parse.urlencode({"endpoint": self.endpoint, "region": REGION})
        return f"s3://{self.bucket}/{prefix.strip('/')}?{q}" if prefix else \
            f"s3://{self.bucket}?{q}"

    def env(self):
        """What tests/run.py exports."""
        return {"SHOEBOX_TEST_S3": self.blobs_url(), "SHOEBOX_TEST_S3_ACCESS_KEY": self.access_key,
                "SHOEBOX_TEST_S3_SECRET_KEY": self.secret_key, "SHOEBOX_TEST_S3_DIR": self.dir}

    def request(self, method, path, query=None, body=b"", timeout=30):
        """A signed request to this server: (status, headers dict, body bytes)."""
        host = f"{self.host}:{self.port}"
        path = urllib.parse.quote(path, safe="/-_.~")
        headers, qs = sigv4_headers(method, host, path, query or {}, body, self.access_key,
                                    self.secret_key)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path + ("?" + qs if qs else ""), body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    # --- daemons ---------------------------------------------------------------------

    def _reload(self):
        """The daemons' pids from DIR/rgwserver.json: another process (a test running
        `rgwserver.py stop-rgw|start-rgw DIR`) may have restarted radosgw since."""
        try:
            with open(os.path.join(self.dir, STATE)) as f:
                self.state["pids"] = json.load(f).get("pids", {})
        except (OSError, ValueError):
            pass

    def _save(self):
        tmp = os.path.join(self.dir, STATE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(self.state, f)
        os.rename(tmp, os.path.join(self.dir, STATE))

    def _ceph(self, *args, timeout=60):
        return _run(self.wrap + ["ceph", "-c", self.conf, *args], "ceph " + " ".join(args),
                    timeout)

    def _mon_command(self, cmd, timeout=60):
        """A monitor command through Debian's python3-rados (a dependency of ceph-common)
        in the system Python: ~0.5 s where the ceph CLI takes ~2 s on a loaded machine.
        Falls back to the CLI when the module is not importable."""
        py = "/usr/bin/python3"
        if os.access(py, os.X_OK) and subprocess.run(
                [py, "-c", "import rados"], env=_env(), capture_output=True).returncode == 0:
            return _run(self.wrap + [py, "-c", _MON_COMMAND, self.conf, json.dumps(cmd)],
                        f"mon command {cmd['prefix']}", timeout)
        args = cmd["prefix"].split() + [str(v) for k, v in cmd.items() if k != "prefix"]
        return self._ceph(*args, timeout=timeout)

    def _spawn(self, name, argv):
        log = open(os.path.join(self.dir, f"{name}.out"), "ab")
        try:
            p = subprocess.Popen(self.wrap + argv, env=_env(), stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self.state["pids"][name] = p.pid
        self._save()
        return p

    def _start_mon(self):
        fsid = self.state["fsid"]
        _run(["monmaptool", "--create", "--fsid", fsid, "--addv", "a",
              f"[v2:127.0.0.1:{self.state['mon_port']}]", os.path.join(self.dir, "monmap")],
             "monmaptool")
        _run(["ceph-mon", "-c", self.conf, "--mkfs", "-i", "a", "--monmap",
              os.path.join(self.dir, "monmap")], "ceph-mon --mkfs")
        self._spawn("mon", ["ceph-mon", "-c", self.conf, "-i", "a", "-f"])

    def _start_osd(self):
        osd_uuid = str(uuid.uuid4())
        osd_id = self._mon_command({"prefix": "osd new", "uuid": osd_uuid}).strip()
        self.state["osd_id"] = osd_id
        _run(self.wrap + ["ceph-osd", "-c", self.conf, "-i", osd_id, "--mkfs", "--osd-uuid",
                          osd_uuid],
             "ceph-osd --mkfs")
        self._spawn("osd", ["ceph-osd", "-c", self.conf, "-i", osd_id, "-f"])
        # Asked on its admin socket, not with the ceph CLI (a Python program that takes
        # ~1 s per call on a loaded machine): "active" once the monitor has it up.
        sock = os.path.join(self.dir, "run", f"osd.{osd_id}.asok")
        deadline = time.monotonic() + 60
        while _asok(sock, "status").get("state") != "active":
            if time.monotonic() > deadline:
                raise RgwError("the OSD did not come up in 60 s; log:\n" + self.log("osd"))
            time.sleep(0.02)

    def start_rgw(self, timeout=60.0):
        """Start radosgw (again) on its port and wait until it answers HTTP."""
        self._reload()
        p = self._spawn("rgw", ["radosgw", "-c", self.conf, "-n", "client.rgw.a", "-f"])
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    if s.recv(12).startswith(b"HTTP/1."):
                        return
            except OSError:
                pass
            if p.poll() is not None:
                raise RgwError(f"radosgw exited ({p.returncode}); log:\n" + self.log("rgw"))
            if time.monotonic() > deadline:
                raise RgwError(f"radosgw not answering after {timeout} s; log:\n"
                               + self.log("rgw"))
            time.sleep(0.05)

    def stop_rgw(self):
        """Stop radosgw only (its port is then closed: connections are refused)."""
        self._reload()
        _stop_pid(self.state["pids"].pop("rgw", None), "radosgw")
        self._save()

    def rgw_running(self):
        self._reload()
        pid = self.state["pids"].get("rgw")
        return bool(pid) and _is_ours(pid, "radosgw") and _alive(pid)

    def _create_user_and_bucket(self):
        _run(self.wrap + ["radosgw-admin", "-c", self.conf, "-n", "client.rgw.a", "user", "create",
              "--uid=shoebox", "--display-name=shoebox tests",
              f"--access-key={self.access_key}", f"--secret={self.secret_key}"],
             "radosgw-admin user create")
        status, _, body = self.request("PUT", "/" + self.bucket)
        if status != 200:
            raise RgwError(f"creating bucket {self.bucket}: HTTP {status} {body[:300]!r}")

    def stop(self):
        """radosgw, then the OSD, then the monitor (the OSD reports to a live monitor when
        it stops, else it waits 5 s); removes DIR. Safe to call twice."""
        if self._atexit:
            atexit.unregister(self.stop)
            self._atexit = False
        try:
            self._reload()
            pids = self.state.get("pids", {})
            for name, comm in (("rgw", "radosgw"), ("osd", "ceph-osd"), ("mon", "ceph-mon")):
                _stop_pid(pids.get(name), comm)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self._end_watchdog()

    def log(self, name):
        out = []
        for path in (os.path.join(self.dir, f"{name}.out"), os.path.join(self.dir, f"{name}.log")):
            try:
                with open(path, errors="replace") as f:
                    out.append(f.read()[-3000:])
            except OSError:
                pass
        return "\n".join(out)

    def _end_watchdog(self):
        if self._watchdog:
            try:
                self._watchdog.stdin.close()
                self._watchdog.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self._watchdog = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _asok(path, prefix):
    """A command on a daemon's admin socket: its JSON answer, {} when it cannot answer."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(path)
            s.sendall(json.dumps({"prefix": prefix}).encode() + b"\0")
            data = b""
            while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
                chunk = s.recv(65536)
                if not chunk:
                    return {}
                data += chunk
            return json.loads(data[4:4 + int.from_bytes(data[:4], "big")])
    except (OSError, ValueError):
        return {}


def _run(argv, what, timeout=60):
    try:
        proc = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RgwError(f"{what}: no answer in {timeout} s")
    if proc.returncode != 0:
        raise RgwError(f"{what} failed ({proc.returncode}): {proc.stdout}{proc.stderr}".strip())
    return proc.stdout


_MON_COMMAND = r"""
import json, sys, rados
c = rados.Rados(conffile=sys.argv[1])
c.connect(timeout=30)
rc, out, status = c.mon_command(sys.argv[2], b"")
c.shutdown()
if rc != 0:
    sys.exit(f"{status} ({rc})")
sys.stdout.write(out.decode())
"""


def _write_conf(srv):
    d = srv.dir
    st = srv.state
    with open(srv.conf, "w") as f:
        f.write(f"""# written by tests/rgwserver.py (see ../shared/LIBRARY-NOTES.md)
[global]
fsid = {st['fsid']}
mon_host = v2:127.0.0.1:{st['mon_port']}
mon_initial_members = a
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_msgr1 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
# radosgw's default 'secure' cannot work without cephx (it hangs at start)
ms_mon_client_mode = crc
run_dir = {d}/run
admin_socket = {d}/run/$name.asok
log_file = {d}/$name.log
log_to_stderr = false
err_to_stderr = true
mon_data = {d}/mon/$cluster-$id
osd_data = {d}/osd/$cluster-$id
rgw_data = {d}/rgw/$cluster-$id
keyring = /dev/null
osd_objectstore = memstore
memstore_device_bytes = {MEMSTORE_BYTES}
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
osd_crush_chooseleaf_type = 0
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_max_pg_per_osd = 1000
# one paxos round per 50 ms: radosgw's first start creates 7 pools, one round each
paxos_propose_interval = 0.05
mon_warn_on_pool_no_redundancy = false
osd_max_object_name_len = 460
osd_max_object_namespace_len = 64

[client.rgw.a]
# tcp_nodelay: without it a small GET on a kept-alive connection waits ~40 ms (Nagle
# on the gateway's two writes, header and body, against the client's delayed ACK)
rgw_frontends = beast endpoint={st.get('host', '127.0.0.1')}:{st['rgw_port']} tcp_nodelay=1
rgw_dns_name = {st.get('host', '127.0.0.1')}
""")
    for sub in ("run", "mon", "osd", "rgw", "osd/ceph-0", "rgw/ceph-rgw.a"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)


# The watchdog blocks reading a pipe whose only writer is the Python process that started
# the cluster; EOF means that process is gone (or stop() closed it): stop and remove.
_WATCHDOG = r"""
import json, os, shutil, sys
sys.path.insert(0, sys.argv[2])
import rgwserver
d = sys.argv[1]
sys.stdin.buffer.read()
try:
    with open(os.path.join(d, rgwserver.STATE)) as f:
        pids = json.load(f).get("pids", {})
    for name, comm in (("rgw", "radosgw"), ("osd", "ceph-osd"), ("mon", "ceph-mon")):
        rgwserver._stop_pid(pids.get(name), comm, timeout=5)
except (OSError, ValueError):
    pass
shutil.rmtree(d, ignore_errors=True)
"""


def start(dir=None, cleanup_at_exit=True, access_key=None, secret_key=None, bucket=BUCKET,
          host="127.0.0.1", wrap=()):
    """Start a fresh cluster in dir (made if missing; must be empty; a new temp dir when
    None) with a user (random keys unless given) and a bucket; return its RgwServer.
    With cleanup_at_exit (the default) it is stopped and dir removed when this process
    exits, however it exits. host and wrap put it on a test host of tests/netns.py:
    host=h.addr, wrap=["ip", "netns", "exec", h.ns] (every daemon and tool runs in that
    namespace, the monitor and OSD on its loopback, radosgw on host)."""
    if not available():
        raise RgwError("Ceph binaries not found (Debian: apt-get install --no-install-recommends "
                       "ceph-mon ceph-osd radosgw ceph-common)")
    if dir is None:
        dir = tempfile.mkdtemp(prefix="shoebox-rgw-", dir=tmp_parent())
    else:
        os.makedirs(dir, exist_ok=True)
        if os.listdir(dir):
            raise RgwError(f"{dir} is not empty")
    state = {"fsid": str(uuid.uuid4()), "mon_port": _free_port(), "rgw_port": _free_port(),
             "access_key": access_key or "SB" + secrets.token_hex(9).upper(),
             "secret_key": secret_key or secrets.token_hex(20), "bucket": bucket, "pids": {},
             "host": host, "wrap": list(wrap)}
    srv = RgwServer(dir, state)
    try:
        if cleanup_at_exit:
            srv._watchdog = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG, srv.dir,
                 os.path.dirname(os.path.abspath(__file__))],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
            atexit.register(srv.stop)
            srv._atexit = True
        _write_conf(srv)
        srv._save()
        srv._start_mon()
        srv._start_osd()
        srv.start_rgw()
        srv._create_user_and_bucket()
        return srv
    except BaseException:
        srv.stop()
        raise


def attach(dir):
    """The RgwServer a `rgwserver.py start DIR` started (not stopped at this process's exit)."""
    with open(os.path.join(dir, STATE)) as f:
        return RgwServer(dir, json.load(f))


def main(argv):
    usage = "usage: rgwserver.py start DIR | stop DIR | stop-rgw DIR | start-rgw DIR"
    if len(argv) != 2 or argv[0] not in ("start", "stop", "stop-rgw", "start-rgw"):
        print(usage, file=sys.stderr)
        return 2
    cmd, dir = argv
    try:
        if cmd == "start":
            began = time.monotonic()
            srv = start(dir, cleanup_at_exit=False)
            for k, v in srv.env().items():
                print(f"{k}={v}")
            print(f"started in {time.monotonic() - began:.1f} s", file=sys.stderr)
        elif cmd == "stop":
            if os.path.exists(os.path.join(dir, STATE)):
                attach(dir).stop()
        elif cmd == "stop-rgw":
            attach(dir).stop_rgw()
        else:
            srv = attach(dir)
            if not srv.rgw_running():
                srv.start_rgw()
    except (RgwError, OSError, ValueError) as e:
        print(f"rgwserver: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
