#!/usr/bin/env python3
"""bench/tus: tus 1.0 uploads against multipart on the same files (issue 11).

1. loopback: the same N photos (BENCH_COUNT, 200) into one Shoebox upload each way,
   on a fresh `shoebox serve --batch-delay 0` (free loopback port, fresh data dir, one
   user) per run:
   - multipart the page's way (web/js/upload/send.js): POST /photos/upload/ in requests
     of up to 10 files / 8 MB, the first alone (it announces `expected` and starts the
     upload), the others 3 in flight (they add with `upload`);
   - tus: POST /api/uploads {"expected": N}, then 3 files in parallel (like the page),
     each a creation POST (Upload-Length, Upload-Metadata filename/filetype/upload in
     base64) and ONE PATCH with the whole file (tus-js-client's default chunkSize is
     Infinity; BENCH_TUS_CHUNK_MB > 0 sends PATCHes of that size instead).
   Times from the first byte to "all files received" (the last 202 / last 204) and to
   "all processed" (GET /api/uploads/ID status completed/failed, polled every 0.1 s).
   BENCH_ROUNDS (3) interleaved rounds (the order alternates), medians, verdict against
   the goal: tus within 10 % of multipart.
2. forced drops: the tus run again through a TCP proxy in this process (127.0.0.1, a
   thread per direction per connection) that cuts the connection each time another
   BENCH_DROP_MB (2) MB of upstream bytes went through it. The client resumes with HEAD
   + PATCH from the reported Upload-Offset. Reports the bytes the client sent through
   the proxy against the files' bytes (overhead %), and checks that the upload holds N
   files, 0 failed, and that the photos' sha256 are exactly the files' sha256.
Every run is checked the same way (N files, 0 failed, sha256 set).

Corpus: SHOEBOX_CORPUS/<N> made once by ../shared/bench/make_corpus.sh (12 MP JPEGs,
about 12 minutes for 200 on 2 cores), as bench/ingest.py. For a quick run,
BENCH_GENERATE=1 makes N distinct JPEGs of BENCH_GEN_SIZE (2000x1500) with `vips
gaussnoise` (one image, distinct bytes appended after the end marker) in a temp dir.
BENCH_TUS_WITH_CREATION=1 sends each file's bytes in its creation POST (one request a
file; a break there starts the file over). BENCH_KEEPALIVE (1) keeps one connection per
client thread for both doors, as browsers and tus-js-client do (0: one per request). BENCH_RESUME_DELAY (0) waits that many seconds after a break before the HEAD.
BENCH_RECEIVE_ONLY=1: `serve --workers 0`, no wait for processing (the rows' sha256 are
checked in the database): the receive path alone, without the server's workers decoding
the first photos on the same cores while the rest arrive. BENCH_DROPS=0 leaves out part 2.
Every run reports serve's CPU seconds (/proc/PID/stat) and this client's, and every round
its own tus / multipart ratio (the median of those is printed too).
Writes build/bench/tus.json.
"""
import base64
import hashlib
import http.client
import json
import os
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import concurrent.futures

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Client  # noqa: E402
from photos import Part, file_part, multipart  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ingest import Server, free_port  # noqa: E402  (user bench/bench, --batch-delay 0)

SHARED = os.environ.get("SHOEBOX_SHARED", os.path.join(ROOT, "..", "shared"))
CORPUS = os.environ.get("SHOEBOX_CORPUS", "/tmp/shoebox-corpus")
COUNT = int(os.environ.get("BENCH_COUNT", "200"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
GENERATE = os.environ.get("BENCH_GENERATE", "") == "1"
GEN_SIZE = os.environ.get("BENCH_GEN_SIZE", "2000x1500")
CHUNK = int(float(os.environ.get("BENCH_TUS_CHUNK_MB", "0")) * 1024 * 1024)
DROP = int(float(os.environ.get("BENCH_DROP_MB", "2")) * 1024 * 1024)
WITH_CREATION = os.environ.get("BENCH_TUS_WITH_CREATION", "") == "1"   # body in the POST
RESUME_DELAY = float(os.environ.get("BENCH_RESUME_DELAY", "0"))   # s before the HEAD
KEEPALIVE = os.environ.get("BENCH_KEEPALIVE", "1") == "1"   # a connection per client thread
# --workers 0 and no wait for processing: the receive path alone, without the server's own
# workers decoding the first files on the same cores while the rest arrive
RECEIVE_ONLY = os.environ.get("BENCH_RECEIVE_ONLY", "") == "1"
DROPS = os.environ.get("BENCH_DROPS", "1") == "1"   # 0: no run through the dropping proxy
PARALLEL = 3
PER_REQUEST = 10
REQ_BYTES = 8 * 1024 * 1024
GOAL = 0.10
OUT = os.path.join(ROOT, "build", "bench")
USER, PW = "bench", "bench"


def ensure_corpus():
    if GENERATE:
        folder = tempfile.mkdtemp(prefix="shoebox-tus-corpus-")
        w, h = GEN_SIZE.split("x")
        base = os.path.join(folder, "base.jpg")
        subprocess.run(["vips", "gaussnoise", base + "[Q=90]", w, h], check=True,
                       capture_output=True)
        with open(base, "rb") as f:
            data = f.read()
        os.unlink(base)
        for i in range(COUNT):
            with open(os.path.join(folder, f"gen-{i:04d}.jpg"), "wb") as f:
                f.write(data + b"shoebox-tus-bench-%d" % i)
        return folder, True
    folder = os.path.join(CORPUS, str(COUNT))
    if not os.path.isdir(folder) or len(os.listdir(folder)) < COUNT:
        print(f"making the corpus in {CORPUS} (about 12 minutes on 2 cores, once)", flush=True)
        subprocess.run([os.path.join(SHARED, "bench", "make_corpus.sh"), CORPUS, str(COUNT)],
                       check=True, env=dict(os.environ, SETS=str(COUNT)))
    return folder, False


class Proxy:
    """127.0.0.1 TCP proxy; cuts the connection carrying the byte that takes the
    upstream total past the next multiple of `drop` (0: never)."""

    def __init__(self, port, drop):
        self.target, self.drop = port, drop
        self.up = 0            # bytes read from clients (what they sent)
        self.cuts = 0
        self.next_cut = drop
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            threading.Thread(target=self._pipe, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, False), daemon=True).start()

    @staticmethod
    def _kill(a, b):
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _pipe(self, src, dst, upstream):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            cut = False
            if upstream:
                with self.lock:
                    self.up += len(data)
                    if self.drop and self.up >= self.next_cut:
                        keep = len(data) - (self.up - self.next_cut)
                        data = data[:keep]
                        self.next_cut += self.drop
                        self.cuts += 1
                        cut = True
            try:
                if data:
                    dst.sendall(data)
            except OSError:
                cut = True
            if cut:
                self._kill(src, dst)
                return

    def close(self):
        self.closed = True
        self.sock.close()


_local = threading.local()


def request(port, method, path, body=None, headers=None, timeout=300, again=True):
    """One request: status, headers (lower-case names), body. With KEEPALIVE the
    thread's connection to port is reused, as a browser's or tus-js-client's (Node's
    agent) would be; a request that fails on a reused connection (closed by the server
    meanwhile) is sent once more on a new one when `again`. Other errors raise."""
    conns = _local.__dict__.setdefault("conns", {})
    for attempt in (0, 1):
        conn = conns.pop(port, None) if KEEPALIVE else None
        reused = conn is not None
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            if reused and again and attempt == 0:
                continue
            raise
        if KEEPALIVE and not r.will_close:
            conns[port] = conn
        else:
            conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    raise AssertionError("unreachable")


def login(port):
    c = Client(port)
    r = c.login(USER, PW)
    if r.status != 303:
        raise RuntimeError(f"login: {r.status}")
    return c


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def wait_processed(c, uid, timeout=900):
    if RECEIVE_ONLY:
        return None
    deadline = time.time() + timeout
    while time.time() < deadline:
        p = c.get(f"/photos/upload-progress/?upload={uid}",
                  headers={"Accept": "application/json"}).json()
        if p.get("status") in ("completed", "failed"):
            return p
        time.sleep(0.1)
    raise RuntimeError(f"upload {uid} not processed in {timeout} s")


def check(c, uid, files, sums, db=None):
    """N files, 0 failed, the photos' sha256 = the files' sha256 (receive-only: the
    files' rows' sha256, read from the server's SQLite database `db`)."""
    u = c.json("GET", f"/api/uploads/{uid}").json()
    fl = u.get("files") or []
    if RECEIVE_ONLY:
        with sqlite3.connect(db) as con:
            stored = sorted(r[0] for r in con.execute(
                "SELECT sha256 FROM upload_files WHERE upload_id = ?", (uid,)))
        return {"files_listed": len(fl), "failed": u.get("failed"),
                "states": sorted({f["state"] for f in fl}),
                "sha256_match": stored == sorted(sums),
                "ok": len(fl) == len(files) and u.get("failed") == 0 and stored == sorted(sums)}
    photos = c.json("GET", f"/api/photos?upload={uid}&limit={len(files) + 10}").json()
    items = photos if isinstance(photos, list) else (photos.get("photos") or photos.get("items") or [])
    stored = sorted(p["sha256"] for p in items)
    return {"files_listed": len(fl), "failed": u.get("failed"),
            "states": sorted({f["state"] for f in fl}),
            "sha256_match": stored == sorted(sums),
            "ok": len(fl) == len(files) and u.get("failed") == 0 and stored == sorted(sums)}


def groups_of(files):
    """The page's grouping (web/js/upload/send.js): up to 10 files or 8 MB a request,
    a bigger file alone."""
    out, g, size = [], [], 0
    for p in files:
        n = os.path.getsize(p)
        if g and (len(g) >= PER_REQUEST or size + n > REQ_BYTES):
            out.append(g)
            g, size = [], 0
        g.append(p)
        size += n
    if g:
        out.append(g)
    return out


def multipart_run(port, files):
    c = login(port)
    csrf = c.cookies["csrftoken"]
    cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
    groups = groups_of(files)

    def send(group, uid):
        parts = [Part("csrfmiddlewaretoken", value=csrf)]
        parts.append(Part("upload", value=str(uid)) if uid else Part("expected", value=str(len(files))))
        parts += [file_part(p) for p in group]
        ctype, length, body = multipart(parts)
        status, _, data = request(port, "POST", "/photos/upload/", body=b"".join(body),
                                  headers={"Content-Type": ctype, "Content-Length": str(length),
                                           "Accept": "application/json", "Cookie": cookie})
        if status != 202:
            raise RuntimeError(f"multipart: {status} {data[:200]!r}")
        return json.loads(data)["upload_id"]

    t0 = time.time()
    uid = send(groups[0], None)      # the first request starts the upload, as the page's
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as ex:
        list(ex.map(lambda g: send(g, uid), groups[1:]))
    received = time.time() - t0
    wait_processed(c, uid)
    processed = time.time() - t0
    return c, uid, received, processed, len(groups)


def b64(s):
    return base64.b64encode(s.encode()).decode()


class TusClient:
    def __init__(self, port, cookie, csrf, uid):
        self.port, self.uid = port, uid
        self.h = {"Tus-Resumable": "1.0.0", "Cookie": cookie, "X-CSRFToken": csrf}
        self.resumes = 0

    def _req(self, method, path, body=None, headers=None):
        # A broken PATCH is never sent again as it was: the client asks HEAD (tus).
        status, h, _ = request(self.port, method, path, body=body,
                               headers={**self.h, **(headers or {})}, timeout=120,
                               again=method != "PATCH")
        return status, h

    def _retry(self, fn):
        for attempt in range(100):
            try:
                return fn()
            except (OSError, http.client.HTTPException):
                time.sleep(min(0.05 * attempt, 0.5))
        raise RuntimeError("tus: 100 tries failed")

    def upload(self, path):
        size = os.path.getsize(path)
        meta = ",".join([f"filename {b64(os.path.basename(path))}", f"filetype {b64('image/jpeg')}",
                         f"upload {b64(str(self.uid))}"])
        if WITH_CREATION:   # creation-with-upload: the whole file in the creation POST
            with open(path, "rb") as f:
                data = f.read()
            st, h = self._retry(lambda: self._req("POST", "/photos/tus/", body=data, headers={
                "Upload-Length": str(size), "Upload-Metadata": meta,
                "Content-Type": "application/offset+octet-stream", "Content-Length": str(size)}))
        else:
            st, h = self._retry(lambda: self._req("POST", "/photos/tus/", headers={
                "Upload-Length": str(size), "Upload-Metadata": meta, "Content-Length": "0"}))
        if st != 201:
            raise RuntimeError(f"tus create: {st}")
        loc = h["location"]
        if loc.startswith("http"):
            loc = "/" + loc.split("/", 3)[3]
        offset = int(h.get("upload-offset", "0"))
        with open(path, "rb") as f:
            while offset < size:
                n = size - offset if not CHUNK else min(CHUNK, size - offset)
                f.seek(offset)
                body = f.read(n)
                try:
                    st, h = self._req("PATCH", loc, body=body, headers={
                        "Content-Type": "application/offset+octet-stream",
                        "Upload-Offset": str(offset), "Content-Length": str(n)})
                    ok = st == 204
                except (OSError, http.client.HTTPException):
                    ok = False
                if ok:
                    offset = int(h["upload-offset"])
                    continue
                # broken off (or 409): ask the server where it stands, go on from there
                self.resumes += 1
                if RESUME_DELAY:
                    time.sleep(RESUME_DELAY)
                st, h = self._retry(lambda: self._req("HEAD", loc))
                if st != 200:
                    raise RuntimeError(f"tus HEAD: {st}")
                offset = int(h["upload-offset"])
        return size


def tus_run(port, files, via=None):
    """via: the port to send the tus requests to (the proxy), else the server's."""
    c = login(port)
    csrf = c.cookies["csrftoken"]
    cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
    r = c.json("POST", "/api/uploads", {"expected": len(files)})
    if r.status != 201:
        raise RuntimeError(f"POST /api/uploads: {r.status}")
    uid = r.json()["upload_id"]
    tc = TusClient(via or port, cookie, csrf, uid)
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as ex:
        list(ex.map(tc.upload, files))
    received = time.time() - t0
    wait_processed(c, uid)
    processed = time.time() - t0
    return c, uid, received, processed, tc.resumes


def new_server():
    return Server("--workers", "0") if RECEIVE_ONLY else Server()


def cpu_s(pid):
    """User + system CPU seconds of process pid so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one(kind, files, sums):
    srv = new_server()
    try:
        cpu0 = cpu_s(srv.proc.pid)
        me0 = resource.getrusage(resource.RUSAGE_SELF)
        if kind == "multipart":
            c, uid, rec, proc, _ = multipart_run(srv.port, files)
        else:
            c, uid, rec, proc, _ = tus_run(srv.port, files)
        cpu = cpu_s(srv.proc.pid) - cpu0   # serve only (workers are processes of their own)
        me1 = resource.getrusage(resource.RUSAGE_SELF)   # this client (with the polling)
        client = me1.ru_utime + me1.ru_stime - me0.ru_utime - me0.ru_stime
        chk = check(c, uid, files, sums, os.path.join(srv.dir, "shoebox.db"))
    finally:
        srv.stop()
    return {"received_s": round(rec, 3), "processed_s": None if RECEIVE_ONLY else round(proc, 3),
            "serve_cpu_s": round(cpu, 2), "client_cpu_s": round(client, 2), "check": chk}


def drops_run(files, sums, total):
    srv = new_server()
    proxy = Proxy(srv.port, DROP)
    try:
        c, uid, rec, proc, resumes = tus_run(srv.port, files, via=proxy.port)
        chk = check(c, uid, files, sums, os.path.join(srv.dir, "shoebox.db"))
    finally:
        proxy.close()
        srv.stop()
    return {"drop_every_mb": DROP / 1048576, "resume_delay_s": RESUME_DELAY, "cuts": proxy.cuts, "resumes": resumes,
            "bytes_sent": proxy.up, "file_bytes": total,
            "overhead_pct": round(100.0 * (proxy.up - total) / total, 2),
            "received_s": round(rec, 3), "processed_s": None if RECEIVE_ONLY else round(proc, 3),
            "check": chk}


def median(xs):
    if None in xs:
        return None
    xs = sorted(xs)
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else round((xs[m - 1] + xs[m]) / 2, 3)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    os.makedirs(OUT, exist_ok=True)
    folder, generated = ensure_corpus()
    files = [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".jpg")][:COUNT]
    sums = [sha256_file(p) for p in files]
    total = sum(os.path.getsize(p) for p in files)
    res = {"files": len(files), "file_bytes": total, "generated_corpus": generated,
           "cores": os.cpu_count(), "loadavg_start": loadavg(),
           "tus_patch": ("creation-with-upload, " if WITH_CREATION else "") + (f"{CHUNK // 1048576} MB chunks" if CHUNK else "one PATCH per file"),
           "tus_parallel": PARALLEL, "multipart_requests": f"{len(groups_of(files))} requests of <= {PER_REQUEST} files / 8 MB, {PARALLEL} in flight", "rounds": []}
    print(f"bench/tus: {len(files)} files, {total / 1e6:.1f} MB, load average {res['loadavg_start']}",
          flush=True)
    try:
        for r in range(ROUNDS):
            order = ("multipart", "tus") if r % 2 == 0 else ("tus", "multipart")
            rnd = {k: one(k, files, sums) for k in order}
            rnd["loadavg"] = loadavg()
            rnd["tus_vs_multipart_received"] = round(rnd["tus"]["received_s"] /
                                                     rnd["multipart"]["received_s"], 3)
            res["rounds"].append(rnd)
            print(f"round {r + 1}/{ROUNDS}: multipart received {rnd['multipart']['received_s']} s "
                  f"processed {rnd['multipart']['processed_s']} s; tus received "
                  f"{rnd['tus']['received_s']} s processed {rnd['tus']['processed_s']} s "
                  f"(load {rnd['loadavg']}): tus / multipart received "
                  f"{rnd['tus_vs_multipart_received']}; serve CPU multipart "
                  f"{rnd['multipart']['serve_cpu_s']} s, tus {rnd['tus']['serve_cpu_s']} s; client "
                  f"CPU multipart {rnd['multipart']['client_cpu_s']} s, tus "
                  f"{rnd['tus']['client_cpu_s']} s",
                  flush=True)
        med = {k: {m: median([x[k][m] for x in res["rounds"]])
                   for m in ("received_s", "processed_s", "serve_cpu_s", "client_cpu_s")}
               for k in ("multipart", "tus")}
        res["median"] = med
        res["tus_vs_multipart_received"] = round(med["tus"]["received_s"] / med["multipart"]["received_s"], 3)
        res["tus_vs_multipart_received_paired"] = median([x["tus_vs_multipart_received"]
                                                          for x in res["rounds"]])
        res["tus_vs_multipart_processed"] = (None if RECEIVE_ONLY else round(
            med["tus"]["processed_s"] / med["multipart"]["processed_s"], 3))
        res["within_goal_received"] = res["tus_vs_multipart_received"] <= 1 + GOAL
        res["within_goal_processed"] = (None if RECEIVE_ONLY else
                                        res["tus_vs_multipart_processed"] <= 1 + GOAL)
        res["all_checks_ok"] = all(x[k]["check"]["ok"] for x in res["rounds"] for k in ("multipart", "tus"))
        res["drops"] = drops_run(files, sums, total) if DROPS else None
        res["loadavg_end"] = loadavg()
    finally:
        if generated:
            shutil.rmtree(folder, ignore_errors=True)
    with open(os.path.join(OUT, "tus.json"), "w") as f:
        json.dump(res, f, indent=2)
    d = res["drops"] or {"check": {"ok": True}}
    print(f"\n== bench/tus ({len(files)} files, {total / 1e6:.1f} MB, {res['cores']} cores, "
          f"median of {ROUNDS} rounds, load {res['loadavg_start']} -> {res['loadavg_end']}) ==")
    for k in ("multipart", "tus"):
        print(f"{k:9}: all received {med[k]['received_s']} s, all processed {med[k]['processed_s']} s, "
              f"serve CPU {med[k]['serve_cpu_s']} s, client CPU {med[k]['client_cpu_s']} s")
    print(f"tus / multipart: received {res['tus_vs_multipart_received']} "
          f"({'within' if res['within_goal_received'] else 'OUTSIDE'} the 10 % goal; median of "
          f"the rounds' own ratios {res['tus_vs_multipart_received_paired']}), processed "
          f"{res['tus_vs_multipart_processed']} "
          f"({'-' if RECEIVE_ONLY else 'within' if res['within_goal_processed'] else 'OUTSIDE'})")
    if res["drops"]:
        print(f"drops every {d['drop_every_mb']} MB: {d['cuts']} cuts, {d['resumes']} resumes, "
              f"{d['bytes_sent']} bytes sent for {d['file_bytes']} file bytes "
              f"(overhead {d['overhead_pct']} %), check {d['check']}")
    print(f"checks (N files, 0 failed, sha256): {'ok' if res['all_checks_ok'] and d['check']['ok'] else 'FAILED'}")
    return 0 if res["all_checks_ok"] and d["check"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
