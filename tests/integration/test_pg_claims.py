"""Issue 9: eight workers claiming and finishing files of ONE upload on PostgreSQL never
deadlock.

A claim locks its file row and then the upload row (the counters); with FOR UPDATE SKIP
LOCKED it may also keep a lock on a row it looked at and skipped (claimed meanwhile by
another worker: PostgreSQL keeps the lock of a row whose recheck failed). file_finish used
to lock the upload first and the file after, so a finish waiting for such a row while a
claim waited for the upload was a deadlock (SQLSTATE 40P01: a failed claim, a failed
outcome, a second decode). The finish now locks the file row first, like the claim.

Runs build/bench_claims (bench/bench_claims.c: N processes, each claiming with the real
store library and recording a failed outcome, retrying and counting transient errors) on
300 QUEUED rows made directly in a fresh database. Skips only without SHOEBOX_TEST_PG.
"""
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import harness

FILES, WORKERS = 300, 8
BENCH = os.path.join(os.path.dirname(harness.BIN), "bench_claims")


class TestClaimsDontDeadlock(unittest.TestCase):
    def test_eight_workers_on_one_upload(self):
        db = harness.pg_database(self)
        data = tempfile.mkdtemp(prefix="shoebox-claims-")
        self.addCleanup(shutil.rmtree, data, True)
        r = subprocess.run([harness.BIN, "user", "add", "bench", "--password-stdin",
                            "--data", data, "--db", db], input="bench-pw-1\n", text=True,
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        uid = harness.query(db, "SELECT id FROM users WHERE name = 'bench'")[0][0]
        now = int(time.time() * 1000)
        harness.psql(db, f"""
            INSERT INTO uploads (id, user_id, created_at, updated_at, expected, total,
                                 queued_files, current_batch, batch_size)
            VALUES (1, {uid}, {now}, {now}, {FILES}, {FILES}, {FILES}, 1, {FILES});
            INSERT INTO upload_files (upload_id, user_id, seq, state, name, size, batch_no,
                                      available_at, queued_at, created_at, updated_at)
            SELECT 1, {uid}, s, 'queued', 'f' || s || '.jpg', 1000, 1, 0, {now} + s,
                   {now}, {now} FROM generate_series(1, {FILES}) AS s""")
        p = subprocess.run([BENCH, db, str(WORKERS)], capture_output=True, text=True,
                           timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr[-3000:])
        got = dict(kv.split("=") for kv in p.stdout.split())
        self.assertEqual((got["claims"], got["finished"]), (str(FILES), str(FILES)), got)
        self.assertNotIn("deadlock", p.stderr, p.stderr[-3000:])
        self.assertEqual(got["retries"], "0", p.stderr[-3000:])
        # Every file claimed once and counted once.
        self.assertEqual(harness.query(db, "SELECT processed, failed, finished_at > 0 "
                                           "FROM uploads WHERE id = 1"),
                         [(FILES, FILES, "t")])
        self.assertEqual(harness.query(db, "SELECT COUNT(*), MIN(attempts), MAX(attempts) "
                                           "FROM upload_files WHERE state = 'failed'"),
                         [(FILES, 1, 1)])


if __name__ == "__main__":
    unittest.main()
