"""Soak (bounded, loopback only): 500 idle connections and 50 clients sending a byte
a second, while two users log in, upload 30 photos each and follow their progress
(one over the live stream, one by polling). Every request of the two users is
served; the server cuts the idle and slow clients off by itself; its descriptors
and memory return to their starting level afterwards.

The attackers bind to 127.0.0.2 ... 127.0.0.8 (all of 127/8 is loopback), so the
per-address cap (256) does not simply refuse them: the deadlines have to do it.
"""
import os
import re
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Server, wait_until  # noqa: E402
from photos import Images, Part, data_part, multipart  # noqa: E402
from test_hardening_http import closed_by_peer, connect, raise_own_fd_limit  # noqa: E402

USERS = {"ann": "pw-soak-ann", "ben": "pw-soak-ben"}
PHOTOS = 30
IDLE = 500
SLOW = 50
FD_SLACK = 8                 # the store pool opens database handles (db + wal) on first use
RSS_SLACK_KB = 96 * 1024     # generous: SQLite page cache, malloc arenas


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


class User(threading.Thread):
    """Logs in, uploads PHOTOS photos in three requests, follows progress to the end.
    Every request's status is recorded in self.log as (what, status)."""

    def __init__(self, srv, name, images, first, stream):
        super().__init__(daemon=True)
        self.srv, self.name, self.images, self.first, self.stream = (
            srv, name, images, first, stream)
        self.log, self.error, self.final = [], None, None

    def req(self, what, status, fn, *a, **kw):
        r = fn(*a, **kw)
        self.log.append((what, r.status))
        if r.status != status:
            raise AssertionError(f"{self.name} {what}: {r.status} {r.text[:200]}")
        return r

    def run(self):
        try:
            self.work()
        except Exception as e:  # reported by the test
            self.error = e

    def work(self):
        c = self.c = self.srv.client()
        self.req("login", 303, c.login, self.name, USERS[self.name])
        uid = None
        for k in range(3):
            parts = [Part("csrfmiddlewaretoken", value=c.cookies["csrftoken"])]
            parts += [Part("upload", value=str(uid))] if uid else [
                Part("expected", value=str(PHOTOS))]
            parts += [data_part(f"{self.name}{i}.jpg", self.images.jpeg(self.first + i, 160, 120))
                      for i in range(k * 10, k * 10 + 10)]
            ctype, length, body = multipart(parts)
            r = self.req("upload", 202, c.request, "POST", "/photos/upload/",
                         body=b"".join(body), headers={"Content-Type": ctype,
                                                       "Content-Length": str(length),
                                                       "Accept": "application/json"})
            uid = r.json()["upload_id"]
        self.final = self.follow_stream(uid) if self.stream else self.poll(uid)
        self.req("gallery", 200, c.get, "/photos/")

    def poll(self, uid):
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            p = self.req("progress", 200, self.c.get,
                         f"/photos/upload-progress/?upload={uid}",
                         headers={"Accept": "application/json"}).json()
            if p["status"] != "processing":
                return p
            time.sleep(0.2)
        raise AssertionError(f"{self.name}: upload {uid} did not finish")

    def follow_stream(self, uid):
        """The live stream to its end (the server closes it after the final event)."""
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=90)
        cookie = "; ".join(f"{k}={v}" for k, v in self.c.cookies.items())
        conn.request("GET", f"/photos/upload-progress/stream?upload={uid}",
                     headers={"Cookie": cookie, "Accept": "text/event-stream"})
        r = conn.getresponse()
        self.log.append(("stream", r.status))
        if r.status != 200:
            raise AssertionError(f"{self.name} stream: {r.status}")
        text = r.read().decode()
        conn.close()
        events = re.findall(r"^data: (.*)$", text, re.M)
        if not events:
            raise AssertionError(f"{self.name}: no progress events")
        import json
        return json.loads(events[-1])


class Dribbler(threading.Thread):
    """SLOW clients each sending one byte of a request head a second."""

    def __init__(self, socks):
        super().__init__(daemon=True)
        self.socks, self.stop = socks, threading.Event()

    def run(self):
        while not self.stop.is_set():
            for s in self.socks:
                try:
                    s.send(b"X")
                except OSError:
                    pass
            self.stop.wait(1.0)


class TestSoak(unittest.TestCase):
    def test_two_users_upload_through_idle_and_slow_floods(self):
        if raise_own_fd_limit() < IDLE + SLOW + 200:
            self.skipTest("this test needs more descriptors of its own")
        srv = Server(users=USERS, args=["--batch-delay", "0.05"])
        self.addCleanup(srv.cleanup)
        srv.start()
        images = Images()
        self.addCleanup(images.cleanup)
        pid = srv.proc.pid
        self.assertEqual(srv.client().get("/healthz").status, 200)
        fd0, rss0 = len(os.listdir(f"/proc/{pid}/fd")), proc_status(pid, "VmRSS")

        idle = [connect(srv.port, f"127.0.0.{2 + i // 100}") for i in range(IDLE)]
        slow = [connect(srv.port, "127.0.0.8") for _ in range(SLOW)]
        attackers = idle + slow
        self.addCleanup(lambda: [s.close() for s in attackers])
        for s in slow:
            s.sendall(b"GET /photos/ HTTP/1.1\r\n")
        dribbler = Dribbler(slow)
        dribbler.start()
        self.addCleanup(dribbler.stop.set)
        # (fd0 may still hold the closing socket of the harness's health check)
        fd_busy = wait_until(lambda: (lambda n: n if n >= fd0 + IDLE + SLOW - 2 else None)(
            len(os.listdir(f"/proc/{pid}/fd"))), timeout=10, what="the flood to be accepted")

        users = [User(srv, "ann", images, 0, stream=True),
                 User(srv, "ben", images, 1000, stream=False)]
        for u in users:
            u.start()
        for u in users:
            u.join(120)
            self.assertFalse(u.is_alive(), f"{u.name} did not finish")
            self.assertIsNone(u.error, f"{u.name}: {u.error}")
            self.assertEqual(u.final["status"], "completed", u.final)
            self.assertEqual(u.final["uploaded"], PHOTOS, u.final)
            self.assertTrue(all(200 <= st < 400 for _, st in u.log), u.log)

        # The server ends idle and slow clients by itself (header deadline).
        wait_until(lambda: all(closed_by_peer(s) for s in attackers), timeout=30,
                   what="the server to close the idle and slow connections")
        dribbler.stop.set()
        for s in attackers:
            s.close()
        fds = wait_until(lambda: (lambda n: n if n <= fd0 + FD_SLACK else None)(
            len(os.listdir(f"/proc/{pid}/fd"))), timeout=20, what="descriptors to return")
        rss = proc_status(pid, "VmRSS")
        print(f"\nsoak: fds start={fd0} under-flood={fd_busy} end={fds}; "
              f"VmRSS start={rss0 // 1024} MB end={rss // 1024} MB; "
              f"requests ann={len(users[0].log)} ben={len(users[1].log)}", flush=True)
        self.assertLessEqual(rss, rss0 + RSS_SLACK_KB)
        self.assertEqual(srv.client().get("/healthz").status, 200)


if __name__ == "__main__":
    unittest.main()
