"""tests/pgserver.py, the throwaway PostgreSQL the tests run against: it starts, takes
password logins over TCP and trusted ones over its unix socket, makes and drops databases,
survives fast and immediate restarts on the same port, and leaves no process and no
directory behind, not even when the Python process that started it is SIGKILLed. Also
harness.pg_database() on the run's server (SHOEBOX_TEST_PG)."""
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import harness

sys.path.insert(0, os.path.join(harness.ROOT, "tests"))
import pgserver  # noqa: E402

NEEDS_PG = unittest.skipUnless(pgserver.available(), "PostgreSQL server binaries not installed")


PSQL = os.path.join(pgserver.find_bindir() or "/usr/bin", "psql")


def psql(url, sql):
    return harness.psql(url, sql).strip()


def processes_in(path):
    """pids of live processes whose working directory is under path (postgres and all
    its backends chdir to the data directory)."""
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{p}/cwd")
            with open(f"/proc/{p}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if cwd.startswith(path + "/") and state != "Z":
            found.append(int(p))
    return found


def gone(srv_dir, pid):
    return not os.path.exists(srv_dir) and not pgserver._alive(pid) and not processes_in(srv_dir)


@NEEDS_PG
class TestPgServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        began = time.monotonic()
        cls.pg = pgserver.start()
        cls.start_seconds = time.monotonic() - began

    @classmethod
    def tearDownClass(cls):
        cls.pg.stop()

    def test_start_is_quick(self):
        # the template cluster is made once per machine (initdb); a start copies it
        self.assertLess(self.start_seconds, 15.0)
        self.assertTrue(self.pg.ready())
        self.assertEqual(self.pg.env()["SHOEBOX_TEST_PG"], self.pg.base_url())
        self.assertRegex(self.pg.base_url(), r"^postgres://shoebox:[0-9a-f]{32}@127\.0\.0\.1:\d+$")

    def test_tcp_with_password(self):
        out = psql(self.pg.url("postgres"), "SELECT current_user, inet_server_port(), "
                   "current_setting('fsync'), current_setting('max_connections')")
        self.assertEqual(out, f"shoebox|{self.pg.port}|off|{pgserver.MAX_CONNECTIONS}")
        self.assertEqual(psql(self.pg.url(), "SHOW dynamic_shared_memory_type"), "mmap")
        # the password is stored as SCRAM and TCP asks for scram-sha-256
        self.assertEqual(self.pg.psql("SELECT left(rolpassword, 13) FROM pg_authid "
                                      "WHERE rolname = 'shoebox'").strip(), "SCRAM-SHA-256")
        rules = self.pg.psql("SELECT type, auth_method FROM pg_hba_file_rules ORDER BY line_number")
        self.assertEqual(rules.split(), ["local|trust", "host|scram-sha-256"])

    def test_tcp_refuses_wrong_password_and_superuser(self):
        bad = self.pg.url("postgres").replace(self.pg.password, "0" * 32)
        with self.assertRaisesRegex(AssertionError, "password authentication failed"):
            psql(bad, "SELECT 1")
        su = f"postgres://postgres@127.0.0.1:{self.pg.port}/postgres"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        proc = subprocess.run([PSQL, "-X", "-w", "-d", su, "-c", "SELECT 1"], env=env,
                              capture_output=True, text=True, timeout=30)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("password", proc.stderr)

    def test_unix_socket(self):
        url = self.pg.socket_url("postgres")
        self.assertIn("?host=", url)
        self.assertEqual(psql(url, "SELECT current_user, inet_server_addr() IS NULL"),
                         "shoebox|t")
        self.assertEqual(self.pg.psql("SHOW unix_socket_directories").strip(), self.pg.dir)
        self.assertTrue(os.path.exists(os.path.join(self.pg.dir, f".s.PGSQL.{self.pg.port}")))

    def test_create_and_drop_database(self):
        url = self.pg.create_db("it_pgserver_db")
        self.assertEqual(url, self.pg.url("it_pgserver_db"))
        psql(url, "CREATE TABLE t (id int); INSERT INTO t VALUES (7)")
        self.assertEqual(psql(url, "SELECT current_database(), id FROM t"), "it_pgserver_db|7")
        self.assertEqual(psql(self.pg.socket_url("it_pgserver_db"), "SELECT id FROM t"), "7")
        with self.assertRaises(ValueError):
            self.pg.create_db("Robert'); DROP TABLE students;--")
        self.pg.drop_db("it_pgserver_db")
        with self.assertRaisesRegex(AssertionError, "does not exist"):
            psql(url, "SELECT 1")
        self.pg.drop_db("it_pgserver_db")  # dropping twice is fine

    def test_restart_fast_and_immediate(self):
        url = self.pg.create_db("it_pgserver_restart")
        self.addCleanup(self.pg.drop_db, "it_pgserver_restart")
        psql(url, "CREATE TABLE t (id int)")
        for i, mode in enumerate(("fast", "immediate")):
            pid = self.pg.pid()
            psql(url, f"INSERT INTO t VALUES ({i})")
            began = time.monotonic()
            self.pg.restart(mode)
            elapsed = time.monotonic() - began
            self.assertNotEqual(self.pg.pid(), pid, mode)
            self.assertFalse(pgserver._alive(pid), mode)
            # same port and password, and committed rows survive (immediate: crash recovery)
            self.assertEqual(psql(url, "SELECT count(*) FROM t"), str(i + 1), mode)
            self.assertLess(elapsed, 30.0, mode)
        self.assertIn("database system was interrupted", self.pg.log())
        with self.assertRaises(ValueError):
            self.pg.restart("sideways")


@NEEDS_PG
class TestPgServerLifeCycle(unittest.TestCase):
    def test_stop_leaves_no_process_and_no_directory(self):
        pg = pgserver.start()
        url = pg.create_db("busy")
        # an open session: its backend must go too
        holder = subprocess.Popen([PSQL, "-X", "-d", url, "-c", "SELECT pg_sleep(60)"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (holder.kill(), holder.wait()))
        harness.wait_until(lambda: len(processes_in(pg.dir)) >= 2, what="postgres processes")
        pid = pg.pid()
        began = time.monotonic()
        pg.stop()
        self.assertLess(time.monotonic() - began, 15.0)
        self.assertTrue(gone(pg.dir, pid))
        pg.stop()  # twice is harmless

    def test_given_directory_and_cli(self):
        parent = tempfile.mkdtemp(prefix="shoebox-it-pgcli-", dir=pgserver.tmp_parent())
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", parent]))
        d = os.path.join(parent, "pg")
        script = os.path.join(harness.ROOT, "tests", "pgserver.py")
        if os.geteuid() == 0:  # root: the postgres user must be able to reach DIR
            out = subprocess.run([sys.executable, script, "start", d], capture_output=True,
                                 text=True, timeout=120)
            self.assertEqual(out.returncode, 1)
            self.assertIn("cannot reach it", out.stderr)
            os.rmdir(d)
        os.chmod(parent, 0o755)
        out = subprocess.run([sys.executable, script, "start", d], capture_output=True,
                             text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        base = out.stdout.strip()
        self.assertRegex(base, r"^postgres://shoebox:[0-9a-f]+@127\.0\.0\.1:\d+$")
        # the command has exited; the server keeps running until `stop DIR`
        self.assertEqual(psql(base + "/postgres", "SELECT 1"), "1")
        url = subprocess.run([sys.executable, script, "url", d, "x"], capture_output=True,
                             text=True).stdout.strip()
        self.assertEqual(url, base + "/x")
        pid = pgserver.attach(d).pid()
        again = subprocess.run([sys.executable, script, "start", d], capture_output=True,
                               text=True, timeout=120)
        self.assertEqual(again.returncode, 1)
        self.assertIn("not empty", again.stderr)
        stop = subprocess.run([sys.executable, script, "stop", d], capture_output=True,
                              text=True, timeout=120)
        self.assertEqual(stop.returncode, 0, stop.stderr)
        self.assertTrue(gone(d, pid))

    def test_killed_owner_leaves_nothing(self):
        # a test run that dies hard (SIGKILL: no atexit, no finally): the watchdog cleans up
        code = ("import os, signal, sys; sys.path.insert(0, sys.argv[1]); import pgserver; "
                "pg = pgserver.start(); pg.create_db('x'); print(pg.dir, pg.pid(), flush=True); "
                "os.kill(os.getpid(), signal.SIGKILL)")
        proc = subprocess.run([sys.executable, "-c", code, os.path.join(harness.ROOT, "tests")],
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, -signal.SIGKILL, proc.stderr)
        d, pid = proc.stdout.split()
        harness.wait_until(lambda: gone(d, int(pid)), timeout=20, what="postgres gone")


class TestHarnessDatabase(unittest.TestCase):
    def test_pg_database(self):
        url = harness.pg_database(self)  # SkipTest without SHOEBOX_TEST_PG
        self.assertTrue(url.startswith(os.environ["SHOEBOX_TEST_PG"] + "/sbt_"))
        self.assertNotEqual(url, harness.pg_database(self))
        psql(url, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
        self.assertEqual(psql(url, "SELECT current_database() = "
                               f"'{url.rsplit('/', 1)[1]}', count(*) FROM t"), "t|1")
        harness.pg_drop_database(url)
        with self.assertRaisesRegex(AssertionError, "does not exist"):
            psql(url, "SELECT 1")


if __name__ == "__main__":
    unittest.main()
