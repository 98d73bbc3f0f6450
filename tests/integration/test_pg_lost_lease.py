"""Issue 9: a file leased to a live worker that lost track of it comes back at once, not
after its lease.

What test_pg_restart saw once in 7 runs (a file "processing" under a live worker's lease,
attempts 1, past the test's wait) is a row the worker no longer knows it holds:
  - a claim that committed while its answer was cut off with the connection (the worker
    logged claim_failed and went on), or
  - an outcome PostgreSQL lost in the immediate restart (workers commit without waiting for
    the disk, synchronous_commit off): the row went back to its claim, the worker had
    moved on to other files.
Nothing renews such a lease, yet it held the file until it expired (120 s by default).
A worker between files now gives back whatever is still leased to it (store
file_unclaim), so the file is processed within about a second.

The test makes that row directly, as the lost claim leaves it (state processing, the
worker's owner, attempts + 1, a lease an hour long), while the one worker is busy with a
slow file, and waits far less than the lease: without the worker's look the file stays
processing for the hour.
"""
import re
import subprocess
import time
import unittest

import harness
import photos
from test_pipeline import upload

USER, PW = "ann", "pw-lost-1"
HOUR_MS = 3600 * 1000


class TestLostLease(unittest.TestCase):
    def setUp(self):
        self.db = harness.pg_database(self)
        self.srv = harness.Server(args=["--db", self.db, "--workers", "1", "--batch-size", "8",
                                        "--batch-delay", "0", "--faults",
                                        "worker:decode_slow@slow"])
        self.addCleanup(self.srv.cleanup)
        r = subprocess.run([harness.BIN, "user", "add", USER, "--password-stdin", "--data",
                            self.srv.data, "--db", self.db], input=PW + "\n",
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.images = photos.Images()
        self.addCleanup(self.images.cleanup)

    def rows(self, sql, params=()):
        return harness.query(self.db, sql, params)

    def test_file_leased_to_a_live_worker_that_lost_it_comes_back(self):
        srv = self.srv.start()
        c = srv.client()
        self.assertEqual(c.login(USER, PW).status, 303)
        parts = [photos.data_part("a-slow.jpg", self.images.jpeg(1, 320, 240)),
                 photos.data_part("b.jpg", self.images.jpeg(2, 320, 240)),
                 photos.data_part("c.jpg", self.images.jpeg(3, 320, 240))]
        r = upload(c, parts)
        self.assertEqual(r.status, 202, r.text)
        uid = r.json()["upload_id"]

        # The one worker decodes a-slow.jpg (4 s); b.jpg waits in the queue.
        def slow_held():
            got = self.rows("SELECT lease_owner FROM upload_files WHERE name = 'a-slow.jpg' "
                            "AND state = 'processing'")
            return got[0][0] if got else None
        owner = harness.wait_until(slow_held, timeout=30, what="a-slow.jpg to be claimed")
        self.assertEqual(self.rows("SELECT state FROM upload_files WHERE name = 'b.jpg'"),
                         [("queued",)])
        # b.jpg as a claim leaves it whose answer the worker never got (what file_claim
        # writes): processing under this worker's owner, attempts + 1, leased an hour.
        now = int(time.time() * 1000)
        harness.psql(self.db, "UPDATE upload_files SET state = 'processing', "
                              f"lease_owner = '{owner}', lease_until = {now + HOUR_MS}, "
                              f"attempts = attempts + 1, updated_at = {now} "
                              "WHERE name = 'b.jpg'")

        # Far within the hour: a-slow.jpg's 4 s, then the worker's look between files.
        def finished():
            u = c.get(f"/api/uploads/{uid}", headers={"Accept": "application/json"}).json()
            return u if u["finished_at"] else None
        try:
            u = harness.wait_until(finished, timeout=40, interval=0.1,
                                   what="the upload to finish")
        except AssertionError as e:
            state = self.rows("SELECT name, state, attempts, lease_owner, lease_until "
                              "FROM upload_files ORDER BY id")
            raise AssertionError(f"{e}: {state}") from None
        self.assertEqual((u["total"], u["processed"], u["uploaded"], u["failed"]), (3, 3, 3, 0),
                         u)
        self.assertEqual(sorted(f["state"] for f in u["files"]), ["done"] * 3, u)
        # Given back, b.jpg's lost claim did not count as an attempt; processed once.
        self.assertEqual(self.rows("SELECT attempts, lease_owner FROM upload_files "
                                   "WHERE name = 'b.jpg'"), [(1, "")])
        self.assertEqual(self.rows("SELECT COUNT(*), COUNT(DISTINCT sha256) FROM photos"),
                         [(3, 3)])
        log = srv.log()
        self.assertIn("event=lease.given_back", log)
        self.assertIn("files=1", log[log.index("event=lease.given_back"):])
        # The worker gave it back after it finished a-slow.jpg, not while holding it.
        slow_done = re.search(r"event=file\.done[^\n]*a-slow\.jpg", log)
        self.assertIsNotNone(slow_done, log)
        self.assertLess(slow_done.start(), log.index("event=lease.given_back"))


if __name__ == "__main__":
    unittest.main()
