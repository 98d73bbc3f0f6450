"""Issue 12: a tus file that is terminated (DELETE, the tus termination extension) or
refused at creation no longer holds its Shoebox upload open.

The upload opened by POST /api/uploads {"expected": N} waits, phase "receiving", until N
files have arrived, else for --upload-idle (here an hour, so a test that needed it would
time out). A terminated tus upload bound to it is one file it will never get: the store
expects one file less (upload_drop_expected, once per tus upload), so the upload goes on
at once with the files it has; one left with no file and nothing expected is deleted at
once, and its progress stream ends. A DELETE of a tus upload whose bytes were complete
removes only the tus resource: the file is a file of the upload. A creation refused with
413 (Upload-Length over --max-file-size) is recorded as a FAILED file of its upload.
Every assertion is on state (the API, the database, the log), none on timing.

Runs on SQLite, and on PostgreSQL in the pg-integration pass (tests/run.py PG_SUITES).
"""
import json
import os
import socket
import time
import unittest

import harness
import photos
from test_tus import OCTET, PASSWORD, USER, Tus, TusBase, meta, read_answer

LONG = ["--upload-idle", "3600", "--tus-expire", "3600"]



def received(s, timeout):
    """What socket s sends, chunk by chunk, for at most timeout seconds; b"" last when
    the server closed it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return
        yield chunk
        if not chunk:
            return

class TermBase(unittest.TestCase):
    ARGS = ["--batch-delay", "0.1", "--workers", "1"] + LONG

    @classmethod
    def setUpClass(cls):
        cls.images = photos.Images()

    @classmethod
    def tearDownClass(cls):
        cls.images.cleanup()

    def setUp(self):
        self.server = harness.Server(users={USER: PASSWORD}, args=self.ARGS)
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.t = Tus(self.server)

    # --- helpers ---
    upload_id_of = TusBase.upload_id_of

    def open_upload(self, expected):
        r = self.t.c.json("POST", "/api/uploads", {"expected": expected})
        self.assertEqual(r.status, 201, r.text)
        return r.json()["upload_id"]

    def state(self, uid):
        r = self.t.c.get(f"/api/uploads/{uid}")
        self.assertEqual(r.status, 200, r.text)
        return r.json()

    def expected(self, uid):
        rows = self.server.query("SELECT expected FROM uploads WHERE id = ?", (uid,))
        return rows[0][0] if rows else None

    def send(self, uid, seed, name):
        """A whole file into upload uid; its tus URL."""
        data = self.images.jpeg(seed, 320, 240)
        url = self.t.create_url(len(data), metadata=meta(filename=name, upload=uid))
        r = self.t.patch(url, 0, data)
        self.assertEqual((r.status, r.header("Upload-Offset")), (204, str(len(data))))
        return url

    def half(self, uid, seed, name):
        """Half a file into upload uid: (url, data, half)."""
        data = self.images.jpeg(seed, 640, 480)
        url = self.t.create_url(len(data), metadata=meta(filename=name, upload=uid))
        half = len(data) // 2
        r = self.t.patch(url, 0, data[:half])
        self.assertEqual((r.status, r.header("Upload-Offset")), (204, str(half)))
        return url, data, half

    def delete(self, url):
        return self.t.c.request("DELETE", url, headers=self.t.h())

    def wait_finished(self, uid, timeout=60):
        """The upload finished. Without the fix it waits --upload-idle (an hour): the
        wait runs out and the test fails with the state it saw."""
        seen = {}

        def done():
            seen["u"] = self.state(uid)
            return seen["u"]["finished_at"] and seen["u"]
        try:
            return harness.wait_until(done, timeout=timeout, interval=0.1,
                                      what=f"upload {uid} finished")
        except AssertionError as e:
            raise AssertionError(f"{e}: last state {seen.get('u')}") from None

    def open_stream(self, uid):
        """An open progress stream of uid (SSE) with its answer head read."""
        s = socket.create_connection(("127.0.0.1", self.server.port), timeout=20)
        cookie = "; ".join(f"{k}={v}" for k, v in self.t.c.cookies.items())
        s.sendall((f"GET /photos/upload-progress/stream?upload={uid} HTTP/1.1\r\n"
                   f"Host: 127.0.0.1:{self.server.port}\r\nCookie: {cookie}\r\n"
                   "Accept: text/event-stream\r\n\r\n").encode())
        status, headers = read_answer(s)
        self.assertEqual(status, 200)
        return s

    def read_event(self, s, pred, timeout=20):
        """The first progress event on stream s whose JSON satisfies pred; fails when none
        has come within timeout seconds."""
        data = b""
        for chunk in received(s, timeout):
            data += chunk
            for line in data.decode("utf-8", "replace").split("\n"):
                try:
                    event = json.loads(line[6:]) if line.startswith("data: ") else None
                except ValueError:
                    event = None                     # not all of it has come yet
                if event and pred(event):
                    return event
        self.fail("no such progress event; the stream sent:\n" + data.decode()[-2000:])

    def read_to_end(self, s, timeout=20):
        """Everything the stream sends until the server ends it; fails when it has not
        ended within timeout seconds (it sends a ping every 15 s while open)."""
        data = b""
        try:
            for chunk in received(s, timeout):
                data += chunk
                if not chunk or data.endswith(b"0\r\n\r\n"):  # closed, or the chunked end
                    return data
        finally:
            s.close()
        self.fail("the progress stream did not end; it sent:\n" + data.decode()[-2000:])


class TestTermination(TermBase):
    def test_three_files_one_terminated_finishes_without_the_idle_wait(self):
        uid = self.open_upload(3)
        self.send(uid, 1, "a.jpg")
        self.send(uid, 2, "b.jpg")
        url, _, _ = self.half(uid, 3, "c.jpg")
        before = self.state(uid)
        self.assertEqual((before["phase"], before["total"]), ("receiving", 2), before)
        stream = self.open_stream(uid)
        self.read_event(stream, lambda p: p["phase"] == "receiving")
        r = self.delete(url)
        self.assertEqual(r.status, 204, r.text)
        # committed before the answer: progress shows it at once, with a new version
        now = self.state(uid)
        self.assertNotEqual(now["phase"], "receiving", now)
        self.assertGreater(now["version"], before["version"])
        self.assertEqual(self.expected(uid), 2)
        # and a page following the stream sees it without waiting
        self.read_event(stream, lambda p: p["phase"] != "receiving")
        stream.close()
        u = self.wait_finished(uid)
        self.assertEqual((u["status"], u["total"], u["uploaded"], u["failed"]),
                         ("completed", 2, 2, 0), u)
        self.assertEqual(sorted(f["file_name"] for f in u["files"]), ["a.jpg", "b.jpg"])
        self.assertRegex(self.server.log(), rf"event=upload\.file_dropped upload={uid} .*deleted=0")

    def test_only_file_terminated_deletes_the_upload_and_ends_its_stream(self):
        uid = self.open_upload(1)
        url, _, _ = self.half(uid, 4, "only.jpg")
        stream = self.open_stream(uid)
        r = self.delete(url)
        self.assertEqual(r.status, 204, r.text)
        # nothing in it and nothing to come: gone at once, as an upload that ends
        # without a file always is
        self.assertEqual(self.t.c.get(f"/api/uploads/{uid}").status, 404)
        self.assertEqual(self.server.query("SELECT count(*) FROM uploads WHERE id = ?", (uid,)),
                         [(0,)])
        # The progress endpoint answers from an upload snapshot while PostgreSQL's change
        # feed is live, kept 250 ms at most (ARCHITECTURE, "Upload snapshots"), and the
        # open stream has just read one: it says 404 once that snapshot is dropped.
        harness.wait_until(
            lambda: self.t.c.get(f"/photos/upload-progress/?upload={uid}").status == 404,
            timeout=5, interval=0.05, what="the progress of the deleted upload to be 404")
        self.assertRegex(self.server.log(), rf"event=upload\.file_dropped upload={uid} .*deleted=1")
        # a page following it learns it: its stream ends (then its read is a 404)
        self.read_to_end(stream)

    def test_unbound_tus_upload_terminated_leaves_no_upload(self):
        """A tus upload without 'upload' metadata opens an upload of its own (expected 1):
        terminated, that upload goes at once instead of after --tus-expire."""
        url = self.t.create_url(5000, metadata=meta(filename="own.jpg"))
        uid = self.upload_id_of(url)
        self.assertEqual(self.t.patch(url, 0, b"x" * 100).status, 204)
        self.assertEqual(self.state(uid)["phase"], "receiving")
        self.assertEqual(self.delete(url).status, 204)
        self.assertEqual(self.t.c.get(f"/api/uploads/{uid}").status, 404)

    def test_double_delete_counts_once(self):
        uid = self.open_upload(3)
        self.send(uid, 5, "a.jpg")
        url_b, _, _ = self.half(uid, 6, "b.jpg")
        url_c, data_c, half_c = self.half(uid, 7, "c.jpg")
        self.assertEqual(self.delete(url_b).status, 204)
        self.assertEqual(self.delete(url_b).status, 404)
        self.assertEqual(self.expected(uid), 2)
        self.assertEqual(self.state(uid)["phase"], "receiving")   # c is still to come
        r = self.t.patch(url_c, half_c, data_c[half_c:])
        self.assertEqual(r.status, 204, r.text)
        u = self.wait_finished(uid)
        self.assertEqual((u["status"], u["total"], u["uploaded"]), ("completed", 2, 2), u)
        self.assertEqual(self.expected(uid), 2)

    def test_delete_of_a_complete_file_keeps_the_file(self):
        """Every byte arrived: the file is a file of the upload. DELETE answers 204 and
        removes the tus resource (HEAD 404, a second DELETE 404); the file stays, is
        processed, and the upload still expects the same number of files."""
        uid = self.open_upload(2)
        url = self.send(uid, 8, "kept.jpg")
        self.assertEqual(self.delete(url).status, 204)
        self.assertEqual(self.t.head(url).status, 404)
        self.assertEqual(self.delete(url).status, 404)
        self.assertEqual(self.expected(uid), 2)
        u = self.state(uid)
        self.assertEqual((u["phase"], u["total"]), ("receiving", 1), u)
        self.assertEqual([f["file_name"] for f in u["files"]], ["kept.jpg"])
        name = url.rsplit("/", 1)[1]
        self.assertEqual([n for n in os.listdir(os.path.join(self.server.data, "tus"))
                          if n.startswith(name)], [])
        self.send(uid, 9, "second.jpg")
        u = self.wait_finished(uid)
        self.assertEqual((u["status"], u["total"], u["uploaded"]), ("completed", 2, 2), u)

    def test_delete_racing_the_last_patch(self):
        """A DELETE while the PATCH with the last bytes is still being read: the
        termination wins (that PATCH ends 409, its bytes are not recorded) and counts
        once; the upload goes on with the file it has."""
        uid = self.open_upload(2)
        self.send(uid, 10, "first.jpg")
        data = self.images.jpeg(11, 640, 480)
        url = self.t.create_url(len(data), metadata=meta(filename="raced.jpg", upload=uid))
        h = self.t.h({"Content-Type": OCTET, "Upload-Offset": "0",
                      "Content-Length": str(len(data))})
        last = self.t.raw("PATCH", url, h, data[:-1000])
        path = os.path.join(self.server.data, "tus", url.rsplit("/", 1)[1] + ".bin")
        harness.wait_until(lambda: os.path.exists(path) and os.path.getsize(path) == len(data) - 1000,
                           timeout=10, what="the PATCH's bytes written")
        self.assertEqual(self.delete(url).status, 204)
        last.sendall(data[-1000:])
        status, _ = read_answer(last)
        last.close()
        self.assertEqual(status, 409)
        self.assertEqual(self.t.head(url).status, 404)
        u = self.wait_finished(uid)
        self.assertEqual((u["status"], u["total"]), ("completed", 1), u)
        self.assertEqual([f["file_name"] for f in u["files"]], ["first.jpg"])
        self.assertEqual(self.expected(uid), 1)

    def test_delete_after_a_restart(self):
        """A restart (SIGKILL) between the creation and the DELETE: the tus upload is
        read back from DATA/tus/ and its termination counts as before."""
        uid = self.open_upload(2)
        self.send(uid, 12, "before.jpg")
        url, _, _ = self.half(uid, 13, "cut.jpg")
        self.server.kill()
        self.server.start()
        self.t = Tus(self.server)
        self.assertEqual(self.state(uid)["phase"], "receiving")
        self.assertEqual(self.delete(url).status, 204)
        self.assertEqual(self.expected(uid), 1)
        u = self.wait_finished(uid)
        self.assertEqual((u["status"], u["total"], u["uploaded"]), ("completed", 1, 1), u)


class TestRefusedCreation(TermBase):
    ARGS = TermBase.ARGS + ["--max-file-size", "1MB"]

    def test_creation_over_the_limit_is_a_failed_file_of_its_upload(self):
        uid = self.open_upload(2)
        self.send(uid, 14, "small.jpg")
        r = self.t.create(2 * 1024 * 1024, metadata=meta(filename="huge.jpg", upload=uid))
        self.assertEqual(r.status, 413, r.text)
        u = self.wait_finished(uid)
        self.assertEqual((u["status"], u["total"], u["uploaded"], u["failed"]),
                         ("completed", 2, 1, 1), u)
        bad = [f for f in u["files"] if f["file_name"] == "huge.jpg"]
        self.assertEqual(len(bad), 1, u["files"])
        self.assertEqual((bad[0]["state"], bad[0]["stage"]), ("failed", "receive"))
        self.assertIn("larger than 1 MB", bad[0]["error"])

    def test_creation_over_the_limit_into_another_users_upload_records_nothing(self):
        harness_user = ("carol", "carol tus pw")
        self.server.add_user(*harness_user)
        other = Tus(self.server, *harness_user)
        r = other.c.json("POST", "/api/uploads", {"expected": 1})
        uid = r.json()["upload_id"]
        r = self.t.create(2 * 1024 * 1024, metadata=meta(filename="x.jpg", upload=uid))
        self.assertEqual(r.status, 413)
        self.assertEqual(self.server.query("SELECT total FROM uploads WHERE id = ?", (uid,)),
                         [(0,)])


class EndedBase(TermBase):
    """A tus file that can never complete is a failed file of its upload at once."""

    def progress(self, uid):
        """The upload as GET /photos/upload-progress/?upload=ID&files=1 shows it."""
        r = self.t.c.get(f"/photos/upload-progress/?upload={uid}&files=1")
        self.assertEqual(r.status, 200, r.text)
        return r.json()

    def failed_file(self, uid, name):
        """The progress once upload uid finished (before --upload-idle, an hour: without
        the fix the wait runs out), and its one failed file of that name."""
        self.wait_finished(uid)
        p = self.progress(uid)
        self.assertIsNotNone(p["finished_at"], p)
        self.assertNotEqual(p["phase"], "receiving", p)
        bad = [f for f in p["files"] if f["file_name"] == name]
        self.assertEqual(len(bad), 1, p["files"])
        self.assertEqual((bad[0]["state"], bad[0]["stage"], bad[0]["retryable"]),
                         ("failed", "receive", False), bad[0])
        return p, bad[0]

    def assert_gone(self, url):
        """The tus upload ended: HEAD, PATCH and DELETE answer 404, as after a termination."""
        self.assertEqual(self.t.head(url).status, 404)
        self.assertEqual(self.t.patch(url, 0, b"x").status, 404)
        self.assertEqual(self.delete(url).status, 404)
        name = url.rsplit("/", 1)[1]
        self.assertEqual([n for n in os.listdir(os.path.join(self.server.data, "tus"))
                          if n.startswith(name)], [])


class TestDeferredTooLarge(EndedBase):
    ARGS = TermBase.ARGS + ["--max-file-size", "1MB"]

    def create_deferred(self, uid, name):
        r = self.t.create(None, metadata=meta(filename=name, upload=uid))
        self.assertEqual(r.status, 201, r.text)
        url = r.header("Location")
        self.assertEqual(self.t.patch(url, 0, b"\xff\xd8\xff\xe0" * 256).status, 204)
        return url

    def test_declared_length_over_the_limit_fails_the_file_at_once(self):
        uid = self.open_upload(2)
        self.send(uid, 20, "small.jpg")
        url = self.create_deferred(uid, "huge.jpg")
        r = self.t.patch(url, 1024, b"y" * 100, extra={"Upload-Length": str(2 * 1024 * 1024)})
        self.assertEqual(r.status, 413, r.text)
        p, bad = self.failed_file(uid, "huge.jpg")
        self.assertEqual(bad["error"], "the file is 2 MB, larger than 1 MB")
        self.assertEqual(r.text.strip(), bad["error"])       # the 413 says the same
        self.assertEqual((p["status"], p["total"], p["uploaded"], p["failed"]),
                         ("completed", 2, 1, 1), p)
        self.assert_gone(url)
        self.assertEqual(self.progress(uid)["failed"], 1)    # recorded once

    def test_bytes_past_the_limit_fail_the_file_at_once(self):
        uid = self.open_upload(1)
        url = self.create_deferred(uid, "endless.jpg")
        r = self.t.patch(url, 1024, b"z" * (1024 * 1024))
        self.assertEqual(r.status, 413, r.text)
        p, bad = self.failed_file(uid, "endless.jpg")
        self.assertEqual(bad["error"], "the file is larger than 1 MB: more than that was sent")
        self.assertEqual(r.text.strip(), bad["error"])       # the 413 says the same
        self.assertEqual((p["status"], p["total"], p["failed"]), ("failed", 1, 1), p)
        self.assert_gone(url)
        self.assertEqual(self.progress(uid)["failed"], 1)


class TestExpiredPartial(EndedBase):
    # 3 s: the PATCHes after each creation must come within it on a loaded machine.
    ARGS = ["--batch-delay", "0.1", "--workers", "1", "--upload-idle", "3600",
            "--tus-expire", "3"]

    def test_expired_partial_file_is_a_failed_file_with_the_reason(self):
        """Of three files, one complete, one cancelled (DELETE) and one left half sent,
        only the half is a failed file once its tus upload expires."""
        uid = self.open_upload(3)
        self.send(uid, 21, "whole.jpg")
        url, data, half = self.half(uid, 22, "half.jpg")
        cancelled, _, _ = self.half(uid, 23, "cancelled.jpg")
        self.assertEqual(self.delete(cancelled).status, 204)
        p, bad = self.failed_file(uid, "half.jpg")
        self.assertRegex(bad["error"], r"^the upload stopped at [0-9.]+ KB of [0-9.]+ KB and was "
                                       r"not resumed within 3 s; send the file again$")
        self.assertEqual((p["status"], p["total"], p["uploaded"], p["failed"]),
                         ("completed", 2, 1, 1), p)
        self.assert_gone(url)
        # the complete file's tus upload has expired too (before or with the half's):
        # it is no failed file, nor is the cancelled one
        harness.wait_until(lambda: self.server.log().count("event=tus.expired") >= 2,
                           timeout=20, what="both tus uploads expired")
        log = self.server.log()
        self.assertEqual(log.count("event=file.failed"), 1, log)
        # The page offers no retry (retryable false); a retry sent anyway is refused
        # clearly and changes nothing, however often.
        for _ in range(2):
            r = self.t.c.json("POST", f"/photos/uploads/{uid}/files/{bad['id']}/retry")
            self.assertEqual(r.status, 409, r.text)
            self.assertIn("upload it again", r.json()["error"])
        after = self.progress(uid)
        self.assertEqual((after["status"], after["total"], after["failed"], after["finished_at"]),
                         (p["status"], 2, 1, p["finished_at"]), after)
        self.assertEqual([f["state"] for f in after["files"] if f["id"] == bad["id"]],
                         ["failed"])

if __name__ == "__main__":
    unittest.main()
