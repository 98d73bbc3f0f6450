"""Issue 9, faults: PostgreSQL restarted (fast, then immediate) in the middle of an upload.

Three pages send their uploads to one `serve` with two workers: two as
web/js/upload/send.js does (POST /api/uploads, then each file over tus, resumed from
HEAD's offset after a broken request), one with multipart requests of up to 10 files into
an upload opened first (test_crash.Page; a failed request sent again), while PostgreSQL is
restarted with `pg_ctl restart -m fast` and then `-m immediate`. Afterwards every upload
finished with exactly the files sent, each processed once (one photo per file and per
content, counters equal to the rows), nothing left leased or spooled, and the server's
log says what happened: the connection was lost, opened again, LISTEN re-established.
Also: PostgreSQL down longer than a reconnect waits: a request fails 503 "try again" (not
202, not 401) and, sent again once the database is back, is taken; every file once.
Each test has its own PostgreSQL (pgserver.start): the run's shared one is never restarted.
"""
import base64
import hashlib
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import unittest

import harness
import photos
from harness import wait_until
from test_crash import Page

sys.path.insert(0, os.path.join(harness.ROOT, "tests"))
import pgserver  # noqa: E402

USER, PW = "ann", "pw-restart-1"


def _open_upload(port, cookies, expected, deadline):
    """POST /api/uploads {"expected": n} as the page does (sent again on no answer or a
    5xx/408/429): the upload id. An answer lost after the upload was made leaves an
    empty upload behind, never a file."""
    body = json.dumps({"expected": expected}).encode()
    while time.monotonic() < deadline:
        status, data = _request(port, cookies, "POST", "/api/uploads", body,
                                {"Content-Type": "application/json"})
        if status in (200, 201):
            return json.loads(data)["upload_id"]
        if status is not None and status < 500 and status not in (408, 429):
            raise AssertionError(f"upload refused: {status} {data[:200]!r}")
        time.sleep(0.1)
    raise AssertionError("the upload was never opened")


def _request(port, cookies, method, path, body=b"", headers=None, pause=0.0):
    """(status, body) or (None, b"") when the connection failed; body streamed in 32 KB
    pieces with pause between them (a slow link: a restart lands inside requests)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path)
        h = {"Content-Length": str(len(body)), "X-CSRFToken": cookies["csrftoken"],
             "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
        h.update(headers or {})
        for k, v in h.items():
            conn.putheader(k, v)
        conn.endheaders()
        for i in range(0, len(body), 32768):
            conn.send(body[i:i + 32768])
            if pause:
                time.sleep(pause)
        r = conn.getresponse()
        return r.status, r.read()
    except OSError:
        return None, b""
    finally:
        conn.close()


class FormPage(Page):
    """test_crash.Page (multipart requests of up to 10 files, each sent again until it is
    answered 202) into an upload opened first with POST /api/uploads, as the page opens
    its upload: a request sent again goes into the same upload (a first request that
    made the upload itself could not be sent again into it: the page never learns the id
    of an upload whose answer was lost)."""
    CHUNK_PAUSE = 0.02

    def run(self):
        try:
            self.upload_id = _open_upload(self.port, self.cookies, len(self.parts),
                                          time.monotonic() + self.DEADLINE)
        except Exception as e:  # reported by the test
            self.error = e
            return
        super().run()


class TusPage(threading.Thread):
    """What web/js/upload/send.js does: POST /api/uploads, then each file as a tus upload
    (creation with Upload-Metadata filename and upload, then PATCH); a broken request is
    resumed from the offset HEAD reports, a failed creation is sent again."""
    DEADLINE = 120

    def __init__(self, port, cookies, parts):
        super().__init__(daemon=True)
        self.port, self.cookies, self.parts = port, dict(cookies), parts
        self.upload_id, self.error, self.resends = None, None, 0

    def tus(self, method, path, body=b"", headers=None):
        h = {"Tus-Resumable": "1.0.0"}
        h.update(headers or {})
        return _request(self.port, self.cookies, method, path, body, h,
                        pause=0.02 if method == "PATCH" else 0.0)

    def again(self, status, what):
        if status is not None and status < 500 and status not in (408, 409, 423, 429):
            raise AssertionError(f"{what}: refused with {status}")
        self.resends += 1
        time.sleep(0.1)

    def send_file(self, part, deadline):
        meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in (
            ("filename", part.filename), ("filetype", "image/jpeg"),
            ("upload", str(self.upload_id))))
        url = None
        while url is None and time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                conn.request("POST", "/photos/tus/", headers={
                    "Tus-Resumable": "1.0.0", "Upload-Length": str(len(part.data)),
                    "Upload-Metadata": meta, "X-CSRFToken": self.cookies["csrftoken"],
                    "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())})
                r = conn.getresponse()
                r.read()
                status = r.status
                url = r.getheader("Location") if status == 201 else None
            except OSError:
                status = None
            finally:
                conn.close()
            if url is None:
                self.again(status, f"creation of {part.filename}")
        offset = 0
        while time.monotonic() < deadline:
            status, _ = self.tus("PATCH", url, part.data[offset:], {
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": str(offset)})
            if status == 204:
                return
            self.again(status, f"PATCH of {part.filename}")
            head = None
            while head is None and time.monotonic() < deadline:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                try:
                    conn.request("HEAD", url, headers={
                        "Tus-Resumable": "1.0.0",
                        "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())})
                    r = conn.getresponse()
                    r.read()
                    if r.status == 200:
                        head = int(r.getheader("Upload-Offset"))
                    else:
                        self.again(r.status, f"HEAD of {part.filename}")
                except OSError:
                    self.again(None, f"HEAD of {part.filename}")
                finally:
                    conn.close()
            offset = head if head is not None else offset
            if offset == len(part.data):
                return
        raise AssertionError(f"{part.filename} was never sent")

    def run(self):
        try:
            deadline = time.monotonic() + self.DEADLINE
            self.upload_id = _open_upload(self.port, self.cookies, len(self.parts), deadline)
            for part in self.parts:
                self.send_file(part, deadline)
        except Exception as e:  # reported by the test
            self.error = e


class PgBase(unittest.TestCase):
    """Its own PostgreSQL (self.pg), a database on it, a `serve` (not started) and a user."""

    def setUp(self):
        if not harness.pg_base_url() or not pgserver.available():
            raise unittest.SkipTest("no PostgreSQL on this machine")
        self.pg = pgserver.start()
        self.addCleanup(self.pg.stop)
        self.db = self.pg.create_db("midupload")
        # The default --lease (120 s), longer than the wait below: a file a restart left
        # leased to a live worker that lost track of it (a claim or outcome whose commit or
        # answer was lost) is given back by that worker, not by lease expiry.
        self.srv = harness.Server(args=["--db", self.db, "--workers", "2", "--batch-size", "4",
                                        "--batch-delay", "0.05", "--upload-idle", "5"])
        self.addCleanup(self.srv.cleanup)
        self.images = photos.Images()
        self.addCleanup(self.images.cleanup)
        r = subprocess.run([harness.BIN, "user", "add", USER, "--password-stdin", "--data",
                            self.srv.data, "--db", self.db], input=PW + "\n",
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)

    def rows(self, sql):
        return harness.query(self.db, sql)

    def login(self):
        srv = self.srv.start()
        c = srv.client()
        self.assertEqual(c.login(USER, PW).status, 303)
        return srv, c


class TestRestartMidUpload(PgBase):
    def processed(self):
        return self.rows("SELECT COALESCE(SUM(processed), 0) FROM uploads")[0][0]

    def recorded(self):
        return self.rows("SELECT COUNT(*) FROM upload_files")[0][0]

    def test_fast_then_immediate_restart_while_pages_send(self):
        srv, c = self.login()
        pages = [kind(srv.port, c.cookies,
                      [photos.data_part(f"m{n}-{i:02d}.jpg",
                                        self.images.jpeg(100 * n + i + 1, 1024, 768))
                       for i in range(30)])
                 for n, kind in enumerate((TusPage, TusPage, FormPage))]
        for p in pages:
            p.start()
        # fast: once the first files are recorded and being processed, requests in flight
        wait_until(lambda: self.processed() >= 2, timeout=60, what="the first files processed")
        before_fast = self.recorded()
        self.pg.restart("fast")
        # immediate: once work went on after the first restart, pages still sending
        wait_until(lambda: self.processed() >= 20, timeout=90,
                   what="processing to go on after the fast restart")
        before_immediate = self.recorded()
        self.pg.restart("immediate")
        for p in pages:
            p.join(timeout=120)
            self.assertFalse(p.is_alive(), "a page is still sending")
            self.assertIsNone(p.error, p.error)
        total = sum(len(p.parts) for p in pages)
        self.assertLess(before_fast, total, "every file was recorded before the fast restart")
        self.assertLess(before_immediate, total,
                        "every file was recorded before the immediate restart")
        self.check_exactly_once(c, pages, total)
        log = srv.log()
        # Each process (serve, each worker) tells each outage once: lost, then open again.
        self.assertIn("event=db.lost", log)
        self.assertIn("event=db.reconnected", log)
        self.assertLess(log.index("event=db.lost"), log.index("event=db.reconnected"))
        self.assertGreaterEqual(log.count("event=db.lost"), 2, "two restarts, not one lost")
        self.assertIn("event=feed.reopened", log)  # LISTEN again after each restart
        self.assertNotIn(self.pg.password, log)
        print(f"restart mid-upload: {total} files, {sum(p.resends for p in pages)} requests "
              f"sent again, {log.count('event=db.reconnected')} reconnects", file=sys.stderr)

    def check_exactly_once(self, c, pages, total):
        def finished():
            rows = self.rows("SELECT COUNT(*) FROM uploads WHERE finished_at IS NULL "
                             "AND total > 0")
            return rows[0][0] == 0 and self.processed() == total
        try:
            wait_until(finished, timeout=60, interval=0.1, what="every upload to finish")
        except AssertionError as e:
            tail = [ln for ln in self.srv.log().splitlines()
                    if "level=warn" in ln or "level=error" in ln]
            state = self.rows("SELECT id, total, processed, current_batch, open_requests, "
                              "finished_at FROM uploads")
            files = self.rows("SELECT id, upload_id, name, state, batch_no, attempts, lease_owner "
                              "FROM upload_files WHERE state <> 'done'")
            raise AssertionError(f"{e}: {state}\n{files}\n" + "\n".join(tail[-80:])) from None
        for p in pages:
            u = c.get(f"/api/uploads/{p.upload_id}", headers={"Accept": "application/json"})
            self.assertEqual(u.status, 200, u.text)
            u = u.json()
            names = sorted(f["file_name"] for f in u["files"])
            self.assertEqual(names, sorted(q.filename for q in p.parts),
                             f"upload {p.upload_id}: files differ from those sent")
            self.assertEqual([f["state"] for f in u["files"]], ["done"] * len(p.parts), u)
            self.assertEqual((u["total"], u["processed"], u["uploaded"], u["duplicates"],
                              u["failed"]), (len(p.parts),) * 3 + (0, 0), u)
        # No file in an upload the pages do not know (an upload opened twice, when the
        # answer to the first POST /api/uploads was lost, stays empty).
        self.assertEqual(sorted(r[0] for r in self.rows("SELECT id FROM uploads WHERE total > 0")),
                         sorted(p.upload_id for p in pages))
        # One photo per file, per content; the store's counters match its rows.
        self.assertEqual(self.rows("SELECT COUNT(*), COUNT(DISTINCT file_id), "
                                   "COUNT(DISTINCT sha256) FROM photos"),
                         [(total, total, total)])
        sent = {hashlib.sha256(q.data).hexdigest() for p in pages for q in p.parts}
        self.assertEqual({r[0] for r in self.rows("SELECT sha256 FROM photos")}, sent)
        self.assertEqual(self.rows(
            "SELECT COUNT(*) FROM uploads u WHERE processed <> (SELECT COUNT(*) FROM "
            "upload_files f WHERE f.upload_id = u.id AND f.state = 'done')"), [(0,)])
        # Spool bytes of done files are gone; no file left processing or leased.
        self.assertEqual(self.rows("SELECT COUNT(*) FROM upload_files WHERE spool <> '' "
                                   "OR lease_owner <> ''"), [(0,)])


class TestDatabaseDown(PgBase):
    def post(self, c, uid, parts):
        ctype, length, body = photos.multipart(parts)
        return _request(self.srv.port, c.cookies, "POST", f"/photos/upload/?upload={uid}",
                        b"".join(body), {"Content-Type": ctype, "Accept": "application/json"})

    def test_request_while_the_database_is_down_fails_and_is_sent_again(self):
        """PostgreSQL down longer than a restart (past the 5 s a reconnect waits): a request
        is answered 503 "try again", never 202 and never 401 (its session could not be
        read); sent again once the database is back it is taken, and every file is
        recorded and processed once."""
        srv, c = self.login()
        uid = _open_upload(srv.port, c.cookies, 4, time.monotonic() + 30)
        parts = [photos.data_part(f"d{i}.jpg", self.images.jpeg(i + 1, 320, 240))
                 for i in range(4)]
        self.assertEqual(self.post(c, uid, parts[:2])[0], 202)
        self.pg.pause()
        status, body = self.post(c, uid, parts[2:])
        self.assertEqual(status, 503, body)
        self.assertIn(b"try again", body)
        r = c.get(f"/api/uploads/{uid}", headers={"Accept": "application/json"})
        self.assertEqual(r.status, 503, r.text)
        self.pg.resume()
        self.assertEqual(self.post(c, uid, parts[2:])[0], 202)

        def finished():
            u = c.get(f"/api/uploads/{uid}", headers={"Accept": "application/json"}).json()
            return u if u["finished_at"] else None
        u = wait_until(finished, timeout=60, interval=0.1, what="the upload to finish")
        self.assertEqual((u["total"], u["processed"], u["uploaded"]), (4, 4, 4), u)
        self.assertEqual(sorted(f["file_name"] for f in u["files"]),
                         sorted(p.filename for p in parts))
        self.assertEqual(self.rows("SELECT COUNT(*), COUNT(DISTINCT sha256) FROM photos"),
                         [(4, 4)])
        log = srv.log()
        self.assertIn("event=db.lost", log)
        self.assertIn("event=db.reconnected", log)
        self.assertNotIn(self.pg.password, log)


if __name__ == "__main__":
    unittest.main()
