"""Issue 9: Shoebox on PostgreSQL (src/store/sql_pg.c) against the run's throwaway server.

`shoebox serve --db postgres://...` takes an upload of generated photos and processes it
to exact counts; `shoebox migrate` twice at once on a fresh database both succeed (the
advisory lock); the URL's password appears in no log, error or worker command line.
Skips only when SHOEBOX_TEST_PG is unset (no PostgreSQL installed; `make test` installs it).
"""
import os
import re
import subprocess
import sys
import unittest

import harness
import photos
from test_pipeline import upload, wait_finished

sys.path.insert(0, os.path.join(harness.ROOT, "tests"))
import pgserver  # noqa: E402


def url_password(url):
    return re.match(r"postgres://[^:/@]+:([^@]+)@", url).group(1)


def shoebox(*args, stdin="", timeout=60):
    return subprocess.run([harness.BIN, *args], capture_output=True, text=True,
                          timeout=timeout, input=stdin)


def children_cmdlines(pid):
    """The command lines of pid's child processes (the workers of serve)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != pid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                out.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, ValueError, IndexError):
            pass
    return out


class TestServeOnPostgres(unittest.TestCase):
    def setUp(self):
        self.db = harness.pg_database(self)
        self.password = url_password(self.db)
        self.srv = harness.Server(args=["--db", self.db, "--workers", "2",
                                        "--batch-size", "2", "--batch-delay", "0.05"])
        self.addCleanup(self.srv.cleanup)
        self.images = photos.Images()
        self.addCleanup(self.images.cleanup)

    def test_upload_is_processed_to_exact_counts(self):
        r = shoebox("user", "add", "alice", "--password-stdin", "--data", self.srv.data,
                    "--db", self.db, stdin="pw-alice-1\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.srv.start()
        c = self.srv.client()
        self.assertEqual(c.login("alice", "pw-alice-1").status, 303)
        a, b = self.images.jpeg(1, 320, 240), self.images.jpeg(2, 320, 240)
        parts = [photos.data_part(f"p{i}.jpg", self.images.jpeg(10 + i, 320, 240))
                 for i in range(4)]
        parts += [photos.data_part("a.jpg", a), photos.data_part("b.jpg", b),
                  photos.data_part("a-again.jpg", a)]
        r = upload(c, parts)
        self.assertEqual(r.status, 202, r.text)
        done = wait_finished(c, r.json()["upload_id"], timeout=120)
        self.assertEqual(done["total"], 7)
        self.assertEqual(done["processed"], 7)
        self.assertEqual(done["uploaded"], 6)
        self.assertEqual(done["duplicates"], 1)
        self.assertEqual(done["failed"], 0)
        states = sorted(f["state"] for f in done["files"])
        self.assertEqual(states, ["done"] * 6 + ["duplicate"])
        self.assertEqual(c.get("/api/photos").json()["total"], 6)
        # the rows really are in PostgreSQL
        self.assertEqual(harness.psql(self.db, "SELECT count(*) FROM photos").strip(), "6")
        self.assertEqual(harness.psql(
            self.db, "SELECT count(*) FROM upload_files WHERE state = 'done'").strip(), "6")
        # the workers got the URL through the environment, not their command line
        cmdlines = children_cmdlines(self.srv.proc.pid)
        self.assertTrue(any(" worker " in cl + " " for cl in cmdlines), cmdlines)
        for cl in cmdlines:
            self.assertNotIn(self.password, cl)
        self.assertEqual(self.srv.stop(), 0)
        log = self.srv.log()
        self.assertNotIn(self.password, log)
        self.assertRegex(log, r'event=listening .*db="?postgres://shoebox:\*\*\*@127\.0\.0\.1')


class TestServerRestart(unittest.TestCase):
    """PostgreSQL restarted (fast, then immediate) under a running `serve`: the next
    upload is taken and processed, and the log says the connection came back. Its own
    server (pgserver.start), so the run's shared one is never restarted."""

    def setUp(self):
        if not harness.pg_base_url() or not pgserver.available():
            raise unittest.SkipTest("no PostgreSQL on this machine")
        self.pg = pgserver.start()
        self.addCleanup(self.pg.stop)
        # over the unix socket: the URL form with host=DIR
        self.pg.create_db("restart")
        self.db = self.pg.socket_url("restart")
        self.srv = harness.Server(args=["--workers", "1", "--batch-delay", "0.05"])
        self.addCleanup(self.srv.cleanup)
        self.images = photos.Images()
        self.addCleanup(self.images.cleanup)

    def send_and_finish(self, c, first):
        parts = [photos.data_part(f"r{first + i}.jpg", self.images.jpeg(first + i, 160, 120))
                 for i in range(3)]
        r = upload(c, parts)
        self.assertEqual(r.status, 202, r.text)
        done = wait_finished(c, r.json()["upload_id"], timeout=120)
        self.assertEqual((done["total"], done["processed"], done["uploaded"], done["failed"]),
                         (3, 3, 3, 0), done)

    def test_fast_and_immediate_restart(self):
        env_db = dict(os.environ, SHOEBOX_DB=self.db)
        r = subprocess.run([harness.BIN, "user", "add", "ann", "--password-stdin", "--data",
                            self.srv.data], input="pw-ann-1\n", capture_output=True,
                           text=True, timeout=60, env=env_db)
        self.assertEqual(r.returncode, 0, r.stderr)
        os.environ["SHOEBOX_DB"] = self.db  # serve and its workers get it from here
        try:
            self.srv.start()
        finally:
            del os.environ["SHOEBOX_DB"]
        c = self.srv.client()
        self.assertEqual(c.login("ann", "pw-ann-1").status, 303)
        self.send_and_finish(c, 1)
        self.pg.restart("fast")
        self.send_and_finish(c, 10)
        self.pg.restart("immediate")
        self.send_and_finish(c, 20)
        self.assertEqual(c.get("/api/photos").json()["total"], 9)
        harness.wait_until(lambda: "event=db.reconnected" in self.srv.log(), timeout=10,
                           what="a reconnect in the log")
        self.assertNotIn(self.pg.password, self.srv.log())


class TestMigrate(unittest.TestCase):
    def test_two_at_once_on_a_fresh_database(self):
        db = harness.pg_database(self)
        tmp = harness.Server()  # only for a data directory
        self.addCleanup(tmp.cleanup)
        procs = [subprocess.Popen([harness.BIN, "migrate", "--data", tmp.data, "--db", db],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL) for _ in range(2)]
        outs = [p.communicate(timeout=60) for p in procs]
        for p, (out, err) in zip(procs, outs):
            self.assertEqual(p.returncode, 0, err)
        versions = {re.search(r"version (\d+)", out).group(1) for out, _ in outs}
        self.assertEqual(len(versions), 1, outs)
        version = versions.pop()
        self.assertEqual(harness.psql(db, "SELECT version FROM schema_version").strip(), version)
        # and again: nothing to do, same version
        r = shoebox("migrate", "--data", tmp.data, "--db", db)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"version {version}", r.stdout)

    def test_wrong_password_is_not_printed(self):
        db = harness.pg_database(self)
        tmp = harness.Server()
        self.addCleanup(tmp.cleanup)
        bad = re.sub(r"(postgres://[^:/@]+:)[^@]+@", r"\1Secret-Wrong-9@", db)
        r = shoebox("migrate", "--data", tmp.data, "--db", bad)
        self.assertEqual(r.returncode, 1)
        self.assertIn("password authentication failed", r.stderr)
        self.assertNotIn("Secret-Wrong-9", r.stderr + r.stdout)


if __name__ == "__main__":
    unittest.main()
