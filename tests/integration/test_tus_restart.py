"""Issue 11: a tus file sent into an upload opened by POST /api/uploads stays in
that upload through a server restart (SIGKILL) mid-file.

The restart sweep deleted every upload without a file and without an open
request, including one whose tus files were still partial; the completing
file then went into a new upload of its own (the page showed "2 of 3"). Now
the sweep keeps an upload a tus entry points to or one younger than
--upload-idle, and a file whose upload is really gone is refused with a
clear 410 instead of being re-homed. SQLite only: the sweep runs on a
one-server data dir (a shared store never drops uploads at start).
"""
import os
import sqlite3
import unittest

import harness
import photos
from test_tus import USER, PASSWORD, Tus, TusBase, meta


class TestTusRestart(unittest.TestCase):
    ARGS = ["--batch-delay", "0.1", "--workers", "1"]

    def setUp(self):
        self.images = photos.Images()
        self.server = harness.Server(users={USER: PASSWORD}, args=self.ARGS)
        self.server.start()
        self.t = Tus(self.server)

    def tearDown(self):
        self.server.cleanup()
        self.images.cleanup()

    upload_state = TusBase.upload_state
    upload_id_of = TusBase.upload_id_of

    def write_db(self, sql, params=()):
        """A write on the stopped server's SQLite file (the test's stand-in for time
        passing or for an upload removed while the server was down)."""
        self.assertIsNone(self.server.proc)
        conn = sqlite3.connect(self.server.db, timeout=10)
        try:
            conn.execute(sql, params)
            conn.commit()
        finally:
            conn.close()

    def upload_ids(self):
        return sorted(r[0] for r in self.server.query("SELECT id FROM uploads"))

    def open_upload(self, expected):
        r = self.t.c.json("POST", "/api/uploads", {"expected": expected})
        self.assertEqual(r.status, 201, r.text)
        return r.json()["upload_id"]

    def half_sent(self, uid, seed):
        data = self.images.jpeg(seed, 1600, 1200)
        url = self.t.create_url(len(data), metadata=meta(filename=f"r{seed}.jpg", upload=uid))
        half = len(data) // 2
        r = self.t.patch(url, 0, data[:half])
        self.assertEqual((r.status, r.header("Upload-Offset")), (204, str(half)))
        return url, data, half

    def kill_and_start(self, between=None):
        self.server.kill()          # SIGKILL: no shutdown code runs
        if between:
            between()
        self.server.start()
        self.t = Tus(self.server)

    def test_partial_file_stays_in_its_upload_through_sigkill(self):
        uid = self.open_upload(2)
        url, data, half = self.half_sent(uid, 21)
        self.kill_and_start()
        self.assertEqual(self.upload_ids(), [uid], "the restart dropped the upload")
        r = self.t.patch(url, half, data[half:])
        self.assertEqual((r.status, r.header("Upload-Offset")), (204, str(len(data))))
        self.assertEqual(self.upload_id_of(url), uid)
        self.assertEqual(self.upload_ids(), [uid], "the file went into another upload")
        self.assertEqual(self.upload_state(uid)["total"], 1)

    def test_old_upload_a_tus_entry_points_to_is_kept(self):
        uid = self.open_upload(3)
        url, data, half = self.half_sent(uid, 22)
        # the upload last changed two hours ago: older than --upload-idle (900 s)
        self.kill_and_start(lambda: self.write_db(
            "UPDATE uploads SET updated_at = updated_at - 7200000 WHERE id = ?", (uid,)))
        self.assertEqual(self.upload_ids(), [uid])
        r = self.t.patch(url, half, data[half:])
        self.assertEqual(r.status, 204, r.text)
        self.assertEqual(self.upload_id_of(url), uid)

    def test_young_empty_upload_is_kept_old_one_dropped(self):
        young = self.open_upload(2)
        old = self.open_upload(2)
        self.kill_and_start(lambda: self.write_db(
            "UPDATE uploads SET updated_at = updated_at - 7200000 WHERE id = ?", (old,)))
        self.assertEqual(self.upload_ids(), [young])

    def test_file_of_a_gone_upload_is_refused_not_rehomed(self):
        uid = self.open_upload(1)
        url, data, half = self.half_sent(uid, 23)
        self.kill_and_start(lambda: self.write_db("DELETE FROM uploads WHERE id = ?", (uid,)))
        r = self.t.patch(url, half, data[half:])
        self.assertEqual(r.status, 410, r.text)
        self.assertIn(f"upload {uid} is gone", r.text)
        self.assertEqual(self.upload_ids(), [], "the file was put into a new upload")
        r = self.t.head(url)
        self.assertEqual(r.status, 410)
        self.assertIn("tus.upload_gone", self.server.log())
        self.assertTrue(os.path.isdir(os.path.join(self.server.data, "tus")))


if __name__ == "__main__":
    unittest.main()
