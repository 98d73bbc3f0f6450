"""Issue 10, part 1: blobs as byte streams, the hand-off, `shoebox worker` hosts.

- The hand-off: an upload the server has acknowledged (202) has each original in the blob
  store (key of its SHA-256, the same bytes) and recorded by that key, with no worker
  running (`--workers 0`) and nothing left in the spool.
- Serving through the blob interface with `--blobs DIR` outside the data directory:
  originals and thumbnails with ETag (304) and Range (206, 416) as before.
- `shoebox worker` on PostgreSQL: a web node with `--workers 0` and a worker host sharing
  only the database and the blob directory; the host processes the uploads; SIGTERM in the
  middle of a batch: it finishes (or releases) its files and exits 0 with its temporary
  directory removed; a second host finishes the rest; every file done exactly once.
"""
import collections
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

import harness
import photos
from harness import Server, wait_until

USER, PW = "alice", "blob test pw"
DONE_RE = re.compile(r"event=file\.done upload=(\d+) batch=\d+ file=(\d+)")


def blob_path(root, sha):
    return os.path.join(root, "o", sha[:2], sha)


class Common(unittest.TestCase):
    def setUp(self):
        self.imgs = photos.Images()
        self.addCleanup(self.imgs.cleanup)
        self.tmp = tempfile.mkdtemp(prefix="shoebox-blobs-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.blobs = os.path.join(self.tmp, "blobs")

    def parts(self, n, prefix, size=(320, 240)):
        return [(f"{prefix}-{i:03d}.jpg", self.imgs.jpeg(i + 1, *size)) for i in range(n)]

    def upload(self, c, files):
        parts = [photos.Part("csrfmiddlewaretoken", value=c.cookies["csrftoken"])]
        parts += [photos.data_part(name, data) for name, data in files]
        ctype, length, body = photos.multipart(parts)
        r = c.request("POST", "/photos/upload/", body=b"".join(body),
                      headers={"Content-Type": ctype, "Content-Length": str(length),
                               "Accept": "application/json"})
        self.assertEqual(r.status, 202, r.text)
        return r.json()["upload_id"]

    def state(self, c, uid):
        r = c.get(f"/api/uploads/{uid}", headers={"Accept": "application/json"})
        self.assertEqual(r.status, 200, r.text)
        return r.json()

    def wait_finished(self, c, uid, timeout=90, logs=()):
        def done():
            u = self.state(c, uid)
            return u if u["finished_at"] else None
        try:
            return wait_until(done, timeout=timeout, interval=0.1, what=f"upload {uid}")
        except AssertionError as e:
            raise AssertionError(f"{e}; {self.state(c, uid)}\n" + "\n".join(
                l()[-4000:] for l in logs)) from None


class TestHandOff(Common):
    def test_acknowledged_files_are_in_the_blob_store(self):
        srv = Server(users={USER: PW}, args=["--workers", "0", "--blobs", self.blobs])
        self.addCleanup(srv.cleanup)
        srv.start()
        c = srv.client()
        self.assertEqual(c.login(USER, PW).status, 303)
        files = self.parts(3, "handoff")
        files.append(("again.jpg", files[0][1]))  # the same bytes: one object
        uid = self.upload(c, files)
        # Acknowledged, and no worker exists: the originals must already be stored.
        rows = srv.query("SELECT name, sha256, spool, state FROM upload_files "
                         "WHERE upload_id = ? ORDER BY seq", (uid,))
        self.assertEqual(len(rows), 4)
        for (name, sha, spool, state), (fname, data) in zip(rows, files):
            self.assertEqual(name, fname)
            self.assertEqual(sha, hashlib.sha256(data).hexdigest())
            self.assertEqual(spool, f"o/{sha[:2]}/{sha}", "the file holds its blob key")
            with open(blob_path(self.blobs, sha), "rb") as f:
                self.assertEqual(f.read(), data)
        spool = os.path.join(srv.data, "spool")
        self.assertEqual(os.listdir(spool) if os.path.isdir(spool) else [], [],
                         "the spool is a buffer: emptied by the hand-off")
        self.assertFalse(os.path.exists(os.path.join(srv.data, "blobs")),
                         "--blobs moves the blob store out of the data directory")


class TestServing(Common):
    def test_range_and_etag_through_the_blob_store(self):
        srv = Server(users={USER: PW}, args=["--workers", "1", "--blobs", self.blobs,
                                              "--batch-delay", "0.05"])
        self.addCleanup(srv.cleanup)
        srv.start()
        c = srv.client()
        self.assertEqual(c.login(USER, PW).status, 303)
        files = self.parts(1, "serve", (640, 480))
        uid = self.upload(c, files)
        final = self.wait_finished(c, uid, logs=[srv.log])
        self.assertEqual([f["state"] for f in final["files"]], ["done"], final)
        photo = c.get("/api/photos", headers={"Accept": "application/json"}).json()["photos"][0]
        data = files[0][1]
        r = c.get(photo["original_url"])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, data)
        etag = r.header("etag")
        self.assertEqual(c.get(photo["original_url"],
                               headers={"If-None-Match": etag}).status, 304)
        r = c.get(photo["original_url"], headers={"Range": "bytes=10-19"})
        self.assertEqual(r.status, 206)
        self.assertEqual(r.body, data[10:20])
        self.assertEqual(r.header("content-range"), f"bytes 10-19/{len(data)}")
        r = c.get(photo["original_url"], headers={"Range": f"bytes={len(data) + 5}-"})
        self.assertEqual(r.status, 416)
        r = c.get(photo["thumbnail_url"])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body[:2], b"\xff\xd8")


class TestWorkerHost(Common):
    def setUp(self):
        super().setUp()
        self.db = harness.pg_database(self)
        self.hosts = []

    def host(self, *args):
        log = os.path.join(self.tmp, f"host{len(self.hosts)}.log")
        f = open(log, "ab")
        self.addCleanup(f.close)
        proc = subprocess.Popen([harness.BIN, "worker", "--db", self.db, "--blobs", self.blobs,
                                 *args], stdout=f, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        read = lambda: open(log, errors="replace").read()  # noqa: E731
        self.hosts.append(read)
        wait_until(lambda: "event=host.ready" in read() or proc.poll() is not None,
                   timeout=20, what="the worker host to start")
        self.assertIsNone(proc.poll(), read())
        return proc, read

    def test_worker_host_processes_and_stops_cleanly(self):
        srv = Server(args=["--db", self.db, "--workers", "0", "--blobs", self.blobs,
                           "--batch-size", "4", "--batch-delay", "0.05"])
        self.addCleanup(srv.cleanup)
        r = subprocess.run([harness.BIN, "user", "add", USER, "--password-stdin", "--data",
                            srv.data, "--db", self.db], input=PW + "\n", capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        srv.start()
        c = srv.client()
        self.assertEqual(c.login(USER, PW).status, 303)
        common = ["--processes", "2", "--lease", "30", "--log-level", "info",
                  "--faults", "worker:decode_slow@slow"]
        h1, log1 = self.host(*common)
        temp = re.search(r'event=host\.ready processes=2 temp="?([^" ]+)', log1()).group(1)
        self.assertTrue(os.path.isdir(temp))

        # Processed by the worker host alone (the web node has no worker).
        uid = self.upload(c, self.parts(4, "first"))
        final = self.wait_finished(c, uid, logs=[srv.log, log1])
        self.assertEqual([f["state"] for f in final["files"]], ["done"] * 4, final)

        # SIGTERM while a file takes 4 s to decode and others wait in the batch.
        files = self.parts(8, "second", (200, 150))
        files[1] = ("slow-1.jpg", files[1][1])
        uid2 = self.upload(c, files)
        wait_until(lambda: "decode_slow" in log1() or
                   any(int(m.group(1)) == uid2 for m in DONE_RE.finditer(log1())),
                   timeout=30, what="the second batch to start")
        slow_id = [f for f in self.state(c, uid2)["files"] if f["file_name"] == "slow-1.jpg"]
        wait_until(lambda: harness.query(self.db, "SELECT state FROM upload_files WHERE id = ?",
                                     (slow_id[0]["id"],))[0][0] == "processing",
                   timeout=30, what="the slow file to be claimed")
        h1.send_signal(signal.SIGTERM)
        self.assertEqual(h1.wait(timeout=40), 0, log1()[-3000:])
        self.assertIn("event=host.stopped", log1())
        self.assertFalse(os.path.exists(temp), "the temporary directory is removed at exit")
        held = harness.query(self.db, "SELECT count(*) FROM upload_files WHERE state = 'processing'")
        self.assertEqual(held, [(0,)], "a stopped host holds no file")

        # A second host finishes what the first left; nothing lost, nothing twice.
        h2, log2 = self.host(*common)
        final = self.wait_finished(c, uid2, logs=[srv.log, log1, log2])
        self.assertEqual(sorted(f["state"] for f in final["files"]), ["done"] * 8, final)
        done = [int(m.group(2)) for log in (log1, log2) for m in DONE_RE.finditer(log())
                if int(m.group(1)) == uid2]
        dup = [f for f, k in collections.Counter(done).items() if k > 1]
        self.assertEqual(dup, [], "files finished twice")
        self.assertEqual(sorted(done), sorted(f["id"] for f in final["files"]))
        self.assertIn(slow_id[0]["id"], done)
        h2.send_signal(signal.SIGTERM)
        self.assertEqual(h2.wait(timeout=40), 0, log2()[-3000:])
        for p in c.get("/api/photos?limit=100",
                       headers={"Accept": "application/json"}).json()["photos"]:
            self.assertEqual(c.get(p["thumbnail_url"]).status, 200, p)

    def test_worker_host_needs_db_and_blobs(self):
        r = subprocess.run([harness.BIN, "worker", "--blobs", self.blobs], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("needs --db", r.stderr)
        env = {k: v for k, v in os.environ.items()
               if k not in ("SHOEBOX_S3_ACCESS_KEY", "SHOEBOX_S3_SECRET_KEY",
                            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        r = subprocess.run([harness.BIN, "worker", "--db", self.db, "--blobs",
                            "s3://shoebox-x/p"], capture_output=True, text=True, timeout=30,
                           env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("s3 needs keys", r.stderr)


if __name__ == "__main__":
    unittest.main()
