"""The test helpers' own promises that the rest of the suite leans on when jobs run side by
side: a port from harness.free_port() (Python) or freePort() (tests/e2e/lib.mjs) is not
handed to another process before the test's server binds it; a job tests/run.py kills for
its time takes the processes it started along; a test's database is dropped at its
cleanup even while autovacuum is working in it.

Shown in a private network namespace (unshare -n, root only; skipped elsewhere) whose
ephemeral range has ten ports: after free_port(), other sockets' bind(("", 0)) and
connect() take every port the kernel will give, as a busy run's other jobs do one at a
time, and the port must not be among them; a server that sets SO_REUSEADDR then binds it.
A port that was merely bound and closed is the first one taken."""
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import unittest

import harness
from throwaway import alive  # noqa: E402 (harness put tests/ on the path)

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
LIB_MJS = os.path.join(TESTS, "e2e", "lib.mjs")

# Runs inside the namespace; argv[1] is "python" or "node" (whose helper gives the port).
SCRIPT = r"""
import json, socket, subprocess, sys
sys.path.insert(0, sys.argv[2])
import harness
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
    f.write("40000 40009")
if sys.argv[1] == "python":
    port = harness.free_port()
else:
    js = ("const { freePort } = await import(process.argv[1]); "
          "console.log(await freePort());")
    port = int(subprocess.run(["node", "--input-type=module", "-e", js, "file://" + sys.argv[3]],
                              capture_output=True, text=True, check=True, timeout=30).stdout)
target = socket.socket()                 # where the connect()s go: on 127.0.0.1 too, as
target.bind(("127.0.0.1", 0))            # a port on another address would not clash
target.listen(64)
held = [target]
for i in range(24):                      # more than the range holds
    s = socket.socket()
    try:
        s.connect(target.getsockname()) if i % 2 else s.bind(("127.0.0.1", 0))
        held.append(s)
    except OSError:
        s.close()
taken = sorted(s.getsockname()[1] for s in held)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    server.bind(("127.0.0.1", port))
    server.listen(1)
    bound = True
except OSError:
    bound = False
print(json.dumps({"port": port, "taken": taken, "bound": bound}))
"""


def in_namespace(which):
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        raise unittest.SkipTest("needs root, unshare and ip (a private network namespace)")
    if which == "node" and not shutil.which("node"):
        raise unittest.SkipTest("node is not installed")
    r = subprocess.run(["unshare", "-n", sys.executable, "-c", SCRIPT, which, HERE, LIB_MJS],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0 and "unshare failed" in r.stderr:
        raise unittest.SkipTest("cannot make a network namespace here: " + r.stderr.strip())
    if r.returncode != 0:
        raise AssertionError(f"namespace script failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout)


class FreePort(unittest.TestCase):
    def check(self, which):
        got = in_namespace(which)
        self.assertGreaterEqual(len(got["taken"]), 8, f"the range was not used up: {got}")
        self.assertNotIn(got["port"], got["taken"],
                         f"free_port()'s port went to another socket: {got}")
        self.assertTrue(got["bound"], f"a SO_REUSEADDR server could not bind it: {got}")

    def test_python_free_port_is_kept_until_a_server_binds_it(self):
        self.check("python")

    def test_node_free_port_is_kept_until_a_server_binds_it(self):
        self.check("node")


class RunChildTimeout(unittest.TestCase):
    def test_a_job_killed_for_its_time_takes_its_processes_along(self):
        """A job past its time (run.py run_child) that started a server: the server goes
        too, at once. (Killing only the job left the server running beside the next jobs,
        holding the job's output pipe, so run_child waited for it as well.)"""
        if TESTS not in sys.path:
            sys.path.insert(0, TESTS)
        import run
        job = ("import subprocess, sys, time\n"
               "p = subprocess.Popen(['sleep', '30'])\n"     # its server, on the job's stdout
               "print(p.pid, flush=True)\n"
               "time.sleep(30)\n")
        got = {}
        t = threading.Thread(target=lambda: got.update(
            r=run.run_child([sys.executable, "-c", job], dict(os.environ), timeout=1)))
        began = time.monotonic()
        t.start()
        t.join(timeout=15)
        self.assertIn("r", got, "run_child still waiting 15 s after the job's 1 s timeout")
        self.assertIn("killed after 1 s", got["r"].stderr)
        pid = int(got["r"].stdout.split()[0])
        gone = harness.wait_until(lambda: not alive(pid), timeout=5, what="the job's server to end")
        self.assertTrue(gone)
        self.assertLess(time.monotonic() - began, 15)


class PgDropWhileAutovacuum(unittest.TestCase):
    def test_the_test_role_drops_a_database_autovacuum_is_working_in(self):
        """pg_drop_database()'s DROP ... WITH (FORCE), as the tests' role, while an
        autovacuum worker is in the database: without the role's pg_signal_backend
        (tests/pgserver.py) PostgreSQL 15 refuses to end the worker and the cleanup fails,
        as it once did on CI. Autovacuum is slowed here so that its worker stays."""
        if TESTS not in sys.path:
            sys.path.insert(0, TESTS)
        import pgserver
        if not pgserver.available():
            raise unittest.SkipTest("PostgreSQL is not installed")
        pg = pgserver.start()
        self.addCleanup(pg.stop)
        for setting in ("autovacuum_naptime = 1", "autovacuum_vacuum_cost_delay = 100",
                        "autovacuum_vacuum_cost_limit = 1"):
            pg.psql("ALTER SYSTEM SET " + setting)
        pg.psql("SELECT pg_reload_conf()")
        url = pg.create_db("sbt_autovacuum")
        harness.psql(url, "CREATE TABLE t (a int); INSERT INTO t SELECT generate_series(1, 50000);"
                          " UPDATE t SET a = a + 1")
        harness.wait_until(lambda: pg.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
            " AND datname = 'sbt_autovacuum'").strip() != "0",
            timeout=60, interval=0.2, what="an autovacuum worker in the database")
        harness.psql(pg.url("postgres"), 'DROP DATABASE "sbt_autovacuum" WITH (FORCE)')
        self.assertEqual(pg.psql(
            "SELECT count(*) FROM pg_database WHERE datname = 'sbt_autovacuum'").strip(), "0")


if __name__ == "__main__":
    unittest.main()
