"""Issue 4, progress tracking, against the real binary: the seed's endpoints
(GET /photos/upload-progress/, POST /photos/clear-upload-progress/) and the live
stream (GET /photos/upload-progress/stream).

Every test starts its own server with a fresh data dir. Nothing sleeps a fixed
time: waits poll with deadlines. Uploads use small generated JPEGs (vips CLI);
--batch-delay stretches uploads so that steps are observable.

A trick used below to keep an upload open as long as a test needs: announce more
files than the first request sends (field `expected`), then send the rest later
into the same upload (field `upload`). Until the last file arrives the upload
stays `processing`/`receiving` and costs no CPU.
"""
import http.client
import json
import math
import os
import re
import selectors
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Server, wait_until  # noqa: E402
from photos import Images, Part, data_part, multipart  # noqa: E402

PW = "pw-progress"
PROGRESS = "/photos/upload-progress/"
STREAM = "/photos/upload-progress/stream"
CLEAR = "/photos/clear-upload-progress/"

# The documented keys and their JSON types (None = null allowed).
INT = (int,)
NUM = (int, float)
KEYS = {
    "upload_id": (int, type(None)),
    "status": (str,),
    "phase": (str,),
    "total": INT,
    "processed": INT,
    "uploaded": INT,
    "failed": INT,
    "duplicates": INT,
    "current_batch": INT,
    "total_batches": INT,
    "batch_size": INT,
    "percent": NUM,
    "bytes_received": INT,
    "bytes_total": (int, type(None)),
    "eta_seconds": (int, type(None)),
    "started_at": (str, type(None)),
    "finished_at": (str, type(None)),
    "errors": (list,),
}
COUNTERS = ("processed", "uploaded", "failed", "duplicates")

IMAGES = None


def setUpModule():
    global IMAGES
    IMAGES = Images()


def tearDownModule():
    IMAGES.cleanup()


def jpeg(i):
    """Distinct real JPEG bytes per i (same picture, different SHA-256)."""
    return IMAGES.jpeg(i + 1)


# ---------------------------------------------------------------- helpers

class Poller:
    """Fast keep-alive GETs of the progress JSON with a client's cookies."""

    def __init__(self, client):
        self.client = client
        self.conn = None

    def get(self, path):
        h = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.client.cookies.items()),
             "Accept": "application/json"}
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.client.host, self.client.port,
                                                       timeout=30)
            try:
                self.conn.request("GET", path, headers=h)
                r = self.conn.getresponse()
                body = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, body
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, path):
        status, body = self.get(path)
        if status != 200:
            raise AssertionError(f"GET {path}: {status} {body[:200]!r}")
        return json.loads(body)

    def close(self):
        if self.conn:
            self.conn.close()
            self.conn = None


def parse_sse(text):
    """Complete events of an SSE text: list of dicts {event, id, data}; comments skipped."""
    events = []
    for block in text.split("\n\n"):
        ev = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            k, _, v = line.partition(":")
            ev[k] = v[1:] if v.startswith(" ") else v
        if "data" in ev:
            events.append(ev)
    return events


class RawStream:
    """One SSE stream over a raw non-blocking socket (HTTP/1.1, chunked decoded),
    so that hundreds fit in one thread with a selector."""

    def __init__(self, port, path, cookies, source=None):
        """source: the local address to connect from (any of 127.0.0.0/8), for more
        streams than the server allows one address (LIMIT_CONNECTIONS_PER_ADDR)."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                             source_address=(source, 0) if source else None)
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           f"Cookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n").encode())
        self.sock.setblocking(False)
        self.raw = b""
        self.head = None
        self.status = None
        self.chunked = False
        self.body = b""
        self.closed = False      # EOF or the terminating chunk
        self.text_done = 0

    def fileno(self):
        return self.sock.fileno()

    def on_readable(self):
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return
        self.raw += data
        self._decode()

    def _decode(self):
        if self.head is None:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            self.head = self.raw[:end].decode("latin-1")
            self.raw = self.raw[end + 4:]
            self.status = int(self.head.split(" ", 2)[1])
            self.chunked = "transfer-encoding: chunked" in self.head.lower()
        if not self.chunked:
            self.body += self.raw
            self.raw = b""
            return
        while True:
            nl = self.raw.find(b"\r\n")
            if nl < 0:
                return
            size = int(self.raw[:nl].split(b";")[0], 16)
            if size == 0:
                self.closed = True
                self.raw = b""
                return
            if len(self.raw) < nl + 2 + size + 2:
                return
            self.body += self.raw[nl + 2:nl + 2 + size]
            self.raw = self.raw[nl + 2 + size + 2:]

    def events(self):
        text = self.body.decode("utf-8", errors="replace")
        complete = text[:text.rfind("\n\n") + 2] if "\n\n" in text else ""
        return parse_sse(complete)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def pump(streams, until, timeout, what):
    """Read every stream until until() is true (or fail after timeout)."""
    sel = selectors.DefaultSelector()
    live = {}
    for s in streams:
        if not s.closed:
            sel.register(s.sock, selectors.EVENT_READ, s)
            live[s] = True
    deadline = time.monotonic() + timeout
    try:
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            for key, _ in sel.select(timeout=0.1):
                s = key.data
                s.on_readable()
                if s.closed and live.pop(s, None):
                    sel.unregister(s.sock)
    finally:
        sel.close()


class ProgressTest(unittest.TestCase):
    maxDiff = None

    # --- servers, users, uploads ---
    def server(self, users=("alice",), args=()):
        srv = Server(users={u: PW for u in users}, args=list(args))
        self.addCleanup(srv.cleanup)
        srv.start()
        return srv

    def login(self, srv, user="alice"):
        c = srv.client()
        r = c.login(user, PW)
        self.assertEqual(r.status, 303, f"login {user}")
        return c

    def upload(self, c, files, upload_id=None, expected=None, status=202):
        """POST files [(name, bytes)] as one multipart request; returns the JSON answer."""
        parts = [Part("csrfmiddlewaretoken", value=c.cookies["csrftoken"])]
        if upload_id:
            parts.append(Part("upload", value=str(upload_id)))
        if expected:
            parts.append(Part("expected", value=str(expected)))
        parts += [data_part(name, data) for name, data in files]
        ctype, length, body = multipart(parts)
        r = c.request("POST", "/photos/upload/", body=b"".join(body),
                      headers={"Content-Type": ctype, "Content-Length": str(length),
                               "Accept": "application/json"})
        self.assertEqual(r.status, status, r.text)
        return r.json()

    def progress(self, c, upload_id=None, files=False):
        q = []
        if upload_id:
            q.append(f"upload={upload_id}")
        if files:
            q.append("files=1")
        r = c.get(PROGRESS + ("?" + "&".join(q) if q else ""),
                  headers={"Accept": "application/json"})
        self.assertEqual(r.status, 200, r.text)
        self.assertTrue(r.header("Content-Type").startswith("application/json"))
        return r.json()

    def wait_final(self, c, upload_id, timeout=60):
        return wait_until(lambda: (lambda p: p if p["status"] != "processing" else None)(
            self.progress(c, upload_id)), timeout=timeout, interval=0.05,
            what=f"upload {upload_id} to finish")

    def assert_shape(self, p):
        for k, types in KEYS.items():
            self.assertIn(k, p)
            self.assertIsInstance(p[k], types, f"{k}={p[k]!r}")
            if types == INT:
                self.assertNotIsInstance(p[k], bool, k)
        self.assertIn(p["status"], ("idle", "processing", "completed", "failed"))
        self.assertIn(p["phase"], ("idle", "receiving", "queued", "processing", "done"))
        for k in ("total", "processed", "uploaded", "failed", "duplicates", "current_batch",
                  "total_batches", "bytes_received"):
            self.assertGreaterEqual(p[k], 0, k)
        self.assertLessEqual(p["processed"], p["total"])
        self.assertEqual(p["processed"], p["uploaded"] + p["failed"] + p["duplicates"])
        self.assertGreaterEqual(p["percent"], 0)
        self.assertLessEqual(p["percent"], 100)
        for e in p["errors"]:
            for k in ("file", "stage", "message"):
                self.assertIsInstance(e[k], str, k)

    # ------------------------------------------------------------ the JSON

    def test_idle_before_any_upload(self):
        srv = self.server()
        c = self.login(srv)
        p = self.progress(c)
        self.assert_shape(p)
        self.assertEqual(p["status"], "idle")
        self.assertIsNone(p["upload_id"])
        for k in ("total", "processed", "uploaded", "failed", "duplicates", "current_batch",
                  "total_batches", "bytes_received"):
            self.assertEqual(p[k], 0, k)
        self.assertEqual(p["percent"], 0)
        self.assertEqual(p["errors"], [])
        # Login required (an AJAX endpoint: 401 JSON, never the login page).
        anon = srv.client()
        r = anon.get(PROGRESS, headers={"Accept": "application/json"})
        self.assertEqual(r.status, 401)
        self.assertIn("error", r.json())
        # Bad ids.
        self.assertEqual(c.get(PROGRESS + "?upload=abc").status, 400)
        self.assertEqual(c.get(PROGRESS + "?upload=999").status, 404)

    def test_a_poll_writes_its_access_line(self):
        # the line is formatted by hand (server.c access_line): every field, in order
        srv = self.server()
        c = self.login(srv)
        self.progress(c)
        self.assertEqual(c.get(PROGRESS + "?upload=999").status, 404)
        line = re.compile(r'event=request method="GET" path="/photos/upload-progress/" '
                          r'status=(\d+) bytes=(\d+) dur_ms=\d+\.\d user="alice"$', re.M)
        got = wait_until(lambda: (lambda m: m if len(m) >= 2 else None)(
            line.findall(srv.log())), timeout=10, what="the polls' access lines")
        self.assertEqual([s for s, _ in got[-2:]], ["200", "404"])
        self.assertGreater(int(got[-2][1]), 100)  # the progress object's bytes

    def test_mixed_upload_counts_move_forward_and_match_outcomes(self):
        # --lease 5: a file whose outcome cannot be recorded fails in seconds, not minutes.
        srv = self.server(args=["--batch-delay", "0.3", "--lease", "5"])
        c = self.login(srv)
        good = [(f"good{i:02}.jpg", jpeg(i)) for i in range(20)]
        bad = [("notes.jpg", b"this is a text file, not a photo\n"), ("empty.jpg", b"")]
        dup = [("again03.jpg", jpeg(3))]          # same bytes as good03.jpg
        files = good[:10] + bad[:1] + good[10:] + bad[1:] + dup
        answer = self.upload(c, files)
        uid = answer["upload_id"]
        self.assertIsInstance(uid, int)
        self.assertEqual(answer["progress_url"], f"{PROGRESS}?upload={uid}")

        poll = Poller(c)
        self.addCleanup(poll.close)
        seen, prev = [], None
        deadline = time.monotonic() + 90
        while True:
            p = poll.json(PROGRESS)           # the session's current upload
            self.assert_shape(p)
            self.assertEqual(p["upload_id"], uid)
            if prev:
                for k in COUNTERS + ("current_batch", "version"):
                    self.assertGreaterEqual(p[k], prev[k], f"{k} went back: {prev} -> {p}")
                self.assertGreaterEqual(p["total"], prev["total"])
            seen.append(p)
            prev = p
            if p["status"] != "processing":
                break
            self.assertIsNone(p["finished_at"])
            self.assertLess(time.monotonic(), deadline, f"upload never finished: {p}")
            time.sleep(0.01)
        self.assertTrue(any(s["status"] == "processing" for s in seen))

        final = p
        n = len(files)
        self.assertEqual(final["status"], "completed", final)
        self.assertEqual(final["phase"], "done")
        self.assertEqual(final["total"], n)
        self.assertEqual(final["processed"], n)
        self.assertEqual(final["total"],
                         final["uploaded"] + final["failed"] + final["duplicates"])
        self.assertEqual(final["failed"], 2, final["errors"])
        self.assertEqual(final["duplicates"], 1, final["errors"])
        self.assertEqual(final["uploaded"], 20)
        self.assertEqual(final["percent"], 100)
        self.assertEqual(final["current_batch"], final["total_batches"])
        self.assertEqual(final["total_batches"], math.ceil(22 / 15))  # rejects never batch
        self.assertIsNotNone(final["finished_at"])
        self.assertEqual(final["eta_seconds"], 0)
        self.assertEqual(final["batch_size"], 15)
        self.assertEqual(final["bytes_total"] is None or final["bytes_total"] >= 0, True)
        self.assertGreater(final["bytes_received"], 0)
        self.assertEqual(sorted(e["file"] for e in final["errors"]), ["empty.jpg", "notes.jpg"])

        # ?files=1: one entry per file with its outcome; the numbers agree.
        pf = self.progress(c, uid, files=True)
        self.assertEqual(len(pf["files"]), n)
        # Same object with and without files (two serializers on the server: keep them equal).
        self.assertEqual({k: v for k, v in pf.items() if k != "files"}, final)
        states = {}
        for f in pf["files"]:
            states[f["state"]] = states.get(f["state"], 0) + 1
            if f["state"] == "done":
                self.assertIsInstance(f["photo_id"], int)
            if f["state"] == "failed":
                self.assertIsInstance(f["error"], str)
        self.assertEqual(states, {"done": 20, "failed": 2, "duplicate": 1})
        dupe = [f for f in pf["files"] if f["file_name"] == "again03.jpg"][0]
        orig = [f for f in pf["files"] if f["file_name"] == "good03.jpg"][0]
        self.assertEqual(dupe["duplicate_of"] or dupe["photo_id"], orig["photo_id"])
        photos = c.get("/api/photos").json()
        self.assertEqual(photos.get("total", len(photos.get("photos", []))), 20)

    def test_current_batch_steps_through_ceil_n_over_15(self):
        """current_batch shows 1, 2, 3 for 31 files. One worker, and the first file of
        batches 1 and 2 takes 4 s to decode (decode_slow): each batch is current for at
        least that long, so the polls see it even on a loaded machine. (Without the
        slow files, batch 1 could end while the upload's answer was still on its way,
        and the first poll saw 2: CI, PostgreSQL.)"""
        srv = self.server(args=["--batch-delay", "0.3", "--workers", "1",
                                "--faults", "worker:decode_slow@slow"])
        c = self.login(srv)
        n = 31
        names = [f"p{i}-slow.jpg" if i in (0, 15) else f"p{i}.jpg" for i in range(n)]
        uid = self.upload(c, [(name, jpeg(i)) for i, name in enumerate(names)])["upload_id"]
        poll = Poller(c)
        self.addCleanup(poll.close)
        batches, prev = [], 0
        deadline = time.monotonic() + 90
        while True:
            p = poll.json(f"{PROGRESS}?upload={uid}")
            self.assertGreaterEqual(p["current_batch"], prev, "current_batch went back")
            self.assertLessEqual(p["current_batch"], 3)
            if p["phase"] != "receiving":
                self.assertEqual(p["total_batches"], 3, p)
            if p["current_batch"] != prev:
                batches.append(p["current_batch"])
            prev = p["current_batch"]
            if p["status"] != "processing":
                break
            self.assertLess(time.monotonic(), deadline, f"upload never finished: {p}")
            time.sleep(0.01)
        self.assertEqual(batches, [1, 2, 3])
        self.assertEqual(p["status"], "completed")
        self.assertEqual((p["current_batch"], p["total_batches"]), (3, math.ceil(n / 15)))
        self.assertEqual((p["total"], p["processed"], p["uploaded"]), (n, n, n))

    def test_status_failed_when_every_file_failed(self):
        srv = self.server(args=["--batch-delay", "0"])
        c = self.login(srv)
        uid = self.upload(c, [("a.jpg", b"plain text"), ("b.jpg", b""),
                              ("c.jpg", b"\xff\xd8\xff\xe0 truncated jpeg")])["upload_id"]
        p = self.wait_final(c, uid)
        self.assert_shape(p)
        self.assertEqual(p["status"], "failed", p)
        self.assertEqual((p["total"], p["processed"], p["failed"], p["uploaded"]), (3, 3, 3, 0))
        self.assertEqual(len(p["errors"]), 3)
        self.assertIsNotNone(p["finished_at"])
        # One good file among them: completed, not failed.
        uid2 = self.upload(c, [("d.jpg", b"text"), ("e.jpg", jpeg(0))])["upload_id"]
        p = self.wait_final(c, uid2)
        self.assertEqual(p["status"], "completed", p)
        self.assertEqual((p["uploaded"], p["failed"]), (1, 1))

    # ------------------------------------------------------------ clear

    def test_clear_forgets_session_progress_only(self):
        srv = self.server(args=["--batch-delay", "0"])
        c = self.login(srv)
        uid = self.upload(c, [(f"c{i}.jpg", jpeg(i)) for i in range(3)])["upload_id"]
        done = self.wait_final(c, uid)
        self.assertEqual(done["status"], "completed")
        self.assertEqual(self.progress(c)["upload_id"], uid)
        # CSRF required.
        r = c.request("POST", CLEAR, body=b"", headers={"Content-Length": "0"})
        self.assertEqual(r.status, 403)
        r = c.json("POST", CLEAR)
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json()["status"], "idle")
        idle = self.progress(c)
        self.assertEqual(idle["status"], "idle")
        self.assertIsNone(idle["upload_id"])
        self.assertEqual(idle["total"], 0)
        # The upload itself still answers by id, unchanged; photos stay.
        again = self.progress(c, uid)
        for k in ("status", "total", "processed", "uploaded", "failed", "finished_at"):
            self.assertEqual(again[k], done[k], k)
        photos = c.get("/api/photos").json()
        self.assertEqual(photos.get("total", len(photos.get("photos", []))), 3)
        self.assertEqual(c.get(f"/api/uploads/{uid}").status, 200)
        # Clearing again is harmless.
        r = c.json("POST", CLEAR)
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.json()["cleared"])

    # ------------------------------------------------------------ isolation

    def test_isolation_between_users_and_between_tabs(self):
        srv = self.server(users=("alice", "bob"), args=["--batch-delay", "0"])
        alice, bob = self.login(srv, "alice"), self.login(srv, "bob")
        # Two tabs of one session: two uploads, each seen by its id.
        a = self.upload(alice, [(f"a{i}.jpg", jpeg(i)) for i in range(3)])["upload_id"]
        b = self.upload(alice, [(f"b{i}.jpg", jpeg(10 + i)) for i in range(5)]
                        + [("bad.jpg", b"x")])["upload_id"]
        self.assertNotEqual(a, b)
        pa, pb = self.wait_final(alice, a), self.wait_final(alice, b)
        self.assertEqual((pa["upload_id"], pa["total"], pa["uploaded"], pa["failed"]), (a, 3, 3, 0))
        self.assertEqual((pb["upload_id"], pb["total"], pb["uploaded"], pb["failed"]), (b, 6, 5, 1))
        self.assertEqual(self.progress(alice)["upload_id"], b)  # the session's current one
        # Clearing one tab's upload by id leaves the other's.
        r = alice.json("POST", f"{CLEAR}?upload={a}")
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(self.progress(alice)["upload_id"], b)
        # Another user: 404 for both ids, on every endpoint; idle otherwise.
        for uid in (a, b):
            r = bob.get(f"{PROGRESS}?upload={uid}", headers={"Accept": "application/json"})
            self.assertEqual(r.status, 404, r.text)
            self.assertNotIn(b"total", r.body)
            self.assertEqual(bob.get(f"{STREAM}?upload={uid}").status, 404)
            self.assertEqual(bob.json("POST", f"{CLEAR}?upload={uid}").status, 404)
        self.assertEqual(self.progress(bob)["status"], "idle")
        self.assertEqual(self.progress(alice, b)["status"], "completed")

    # ------------------------------------------------------------ restart

    def test_progress_survives_restart_mid_upload(self):
        # Batches of 15 with 4 s between them (strict: the seed's pause even with no
        # other upload waiting); stop in the pause after batch 1, when nothing moves,
        # so the state before the stop is known exactly.
        srv = self.server(args=["--batch-delay", "4", "--batch-pacing", "strict"])
        c = self.login(srv)
        n = 45
        uid = self.upload(c, [(f"r{i}.jpg", jpeg(i)) for i in range(n)])["upload_id"]

        def in_pause():
            p = self.progress(c, uid, files=True)
            return p if (p["current_batch"] == 1 and p["processed"] == 15) else None
        before = wait_until(in_pause, timeout=60, interval=0.02, what="the pause after batch 1")
        self.assertEqual(before["status"], "processing")
        srv.restart()
        after = self.progress(c, uid, files=True)
        # Equal but for eta_seconds, which is computed from the clock at each request.
        # updated_at and version must not move: a restart that changes nothing is no change.
        for p in (before, after):
            p.pop("eta_seconds")
        self.assertEqual(after, before)
        self.assertEqual(self.progress(c)["upload_id"], uid)  # session kept too
        final = self.wait_final(c, uid, timeout=90)
        self.assertEqual(final["status"], "completed", final)
        self.assertEqual((final["processed"], final["uploaded"], final["current_batch"]),
                         (n, n, 3))

    # ------------------------------------------------------------ SSE

    def test_stream_sends_events_in_order_then_closes(self):
        # strict pacing: the pauses between batches space the events out (with the default
        # yield a lone upload's batches run back to back and the hub may coalesce them all)
        srv = self.server(args=["--batch-delay", "0.3", "--batch-pacing", "strict"])
        c = self.login(srv)
        # Keep the upload open (expected 20, 5 sent) until the stream is connected.
        uid = self.upload(c, [(f"s{i}.jpg", jpeg(i)) for i in range(5)], expected=20)["upload_id"]
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        self.addCleanup(conn.close)
        cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
        conn.request("GET", f"{STREAM}?upload={uid}", headers={"Cookie": cookie})
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        self.assertTrue(r.getheader("Content-Type").startswith("text/event-stream"))
        self.assertEqual(r.getheader("Cache-Control"), "no-store")
        t0 = time.monotonic()
        first = r.readline()
        self.assertTrue(first.startswith(b"event: progress"), first)
        self.upload(c, [(f"s{i}.jpg", jpeg(i)) for i in range(5, 20)], upload_id=uid)
        rest = r.read()          # until the server ends the stream
        elapsed = time.monotonic() - t0
        events = parse_sse((first + rest).decode())
        self.assertGreaterEqual(len(events), 3)
        versions = [int(e["id"]) for e in events]
        self.assertEqual(versions, sorted(set(versions)), "ids strictly increasing")
        datas = [json.loads(e["data"]) for e in events]
        for e, d in zip(events, datas):
            self.assertEqual(e["event"], "progress")
            self.assert_shape(d)
            self.assertEqual(d["upload_id"], uid)
            self.assertEqual(d["version"], int(e["id"]))
        for a, b in zip(datas, datas[1:]):
            for k in COUNTERS:
                self.assertGreaterEqual(b[k], a[k], k)
        self.assertEqual([d["status"] for d in datas[:-1]], ["processing"] * (len(datas) - 1))
        last = datas[-1]
        self.assertEqual(last["status"], "completed")
        self.assertEqual((last["total"], last["processed"], last["uploaded"]), (20, 20, 20))
        # The final event is the upload's final state, exactly as GET gives it.
        self.assertEqual(self.progress(c, uid), last)
        full = self.progress(c, uid, files=True)
        self.assertEqual(len(full.pop("files")), 20)
        self.assertEqual(full, last)
        # Coalesced: at most 4 events a second (plus the first, sent at once).
        self.assertLessEqual(len(events), 2 + 4 * elapsed + 1, f"{len(events)} in {elapsed:.1f}s")

    def test_stream_without_upload_sends_idle_and_closes(self):
        srv = self.server()
        c = self.login(srv)
        r = c.get(STREAM)
        self.assertEqual(r.status, 200)
        events = parse_sse(r.text)
        self.assertEqual(len(events), 1)
        self.assertEqual(json.loads(events[0]["data"])["status"], "idle")
        # Not logged in: no stream.
        self.assertIn(srv.client().get(STREAM).status, (302, 303, 401))

    def test_hundreds_of_streams_do_not_hold_up_uploads(self):
        users = [f"u{i}" for i in range(4)]
        per_user = 50
        srv = self.server(users=users, args=["--batch-delay", "0"])
        streams, opened = [], {}
        for u in users:
            c = self.login(srv, u)
            uid = self.upload(c, [(f"{u}-0.jpg", jpeg(0))], expected=3)["upload_id"]
            opened[u] = (c, uid)
            for _ in range(per_user):
                streams.append(RawStream(srv.port, f"{STREAM}?upload={uid}", c.cookies))
        self.addCleanup(lambda: [s.close() for s in streams])
        # Everyone got the first event (upload still receiving) and stays open.
        pump(streams, lambda: all(s.events() for s in streams), 30, "first events")
        self.assertTrue(all(s.status == 200 for s in streams))
        self.assertFalse(any(s.closed for s in streams))
        # Per-user cap: 64 streams; the 65th is refused, the others unharmed.
        c0, uid0 = opened[users[0]]
        extra = [RawStream(srv.port, f"{STREAM}?upload={uid0}", c0.cookies)
                 for _ in range(64 - per_user + 1)]
        self.addCleanup(lambda: [s.close() for s in extra])
        pump(extra, lambda: all(s.status for s in extra), 30, "extra streams")
        self.assertEqual(sorted(s.status for s in extra).count(429), 1)
        # The uploads finish while 200+ streams are open.
        for u in users:
            c, uid = opened[u]
            self.upload(c, [(f"{u}-1.jpg", jpeg(1)), (f"{u}-2.jpg", jpeg(2))], upload_id=uid)
        for u in users:
            c, uid = opened[u]
            p = self.wait_final(c, uid, timeout=60)
            self.assertEqual((p["status"], p["uploaded"]), ("completed", 3))
        # Every stream gets the final event, then the server ends it.
        pump(streams, lambda: all(s.closed for s in streams), 30, "every stream to end")
        for s in streams:
            evs = s.events()
            last = json.loads(evs[-1]["data"])
            self.assertEqual((last["status"], last["processed"]), ("completed", 3))
            ids = [int(e["id"]) for e in evs]
            self.assertEqual(ids, sorted(set(ids)))


if __name__ == "__main__":
    unittest.main()
