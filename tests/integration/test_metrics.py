"""Issue 10, item 5: GET /metrics for an operator.

The real server with --metrics-listen on a second loopback port: Prometheus's own
`promtool check metrics` accepts what it serves, and the counters move by exactly what an
upload did (files by outcome, counted in the worker processes through the shared page;
bytes; uploads; requests by route and status), the processing histogram counts each
file, a crashed worker and an expired lease are counted. Without the option there is no
second listener, and the public port never answers /metrics.
"""
import os
import re
import shutil
import signal
import subprocess
import unittest
import urllib.error
import urllib.request

import harness
import photos

from test_pipeline import upload

PROMTOOL = shutil.which("promtool")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, frozenset of (label, value)): float} of a scrape."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def key(name, **labels):
    return (name, frozenset(labels.items()))


def listening_sockets(pid):
    """Ports pid listens on (TCP, v4 and v6), from /proc."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def children(pid):
    """Child pids of pid (any of its threads)."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as f:
            out += [int(p) for p in f.read().split()]
    return out


class MetricsCase(unittest.TestCase):
    extra_args = []

    def setUp(self):
        self.mport = harness.free_port()
        self.srv = harness.Server(users={"alice": "pw-alice"},
                                  args=["--batch-delay", "0", "--metrics-listen",
                                        f"127.0.0.1:{self.mport}"] + self.extra_args)
        self.srv.start()
        self.c = self.srv.client()
        self.assertEqual(self.c.login("alice", "pw-alice").status, 303)
        self.images = photos.Images()

    def tearDown(self):
        self.images.cleanup()
        self.srv.cleanup()

    def scrape_text(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.mport}/metrics", timeout=10) as r:
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
            return r.read().decode()

    def scrape(self):
        return parse(self.scrape_text())

    def moved(self, before, after, k):
        return after.get(k, 0) - before.get(k, 0)

    def wait_moved(self, before, expect, timeout=60):
        """Scrape until every key in expect moved by at least its amount; the last scrape.
        (A worker counts just after its commit, and the server counts a request once it
        is completed: both may trail what the client has seen by a moment.)"""
        def enough():
            now = self.scrape()
            return now if all(self.moved(before, now, k) >= v for k, v in expect.items()) else None
        return harness.wait_until(enough, timeout=timeout, interval=0.1, what=f"metrics {expect}")

    def promtool_ok(self, text):
        proc = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        # Lint findings (naming, missing HELP) are printed even when it passes.
        self.assertEqual((proc.stdout + proc.stderr).strip(), "")

    def send(self, parts):
        r = upload(self.c, parts)
        self.assertEqual(r.status, 202, r.text)
        return r.json()["upload_id"]

    def wait_finished(self, uid):
        """Poll the upload until it finished; returns (its JSON, the number of GETs sent)."""
        polls = [0]

        def done():
            polls[0] += 1
            r = self.c.get(f"/api/uploads/{uid}")
            self.assertEqual(r.status, 200, r.text)
            return r.json() if r.json()["finished_at"] else None
        j = harness.wait_until(done, timeout=120, interval=0.1, what=f"upload {uid}")
        return j, polls[0]


@unittest.skipUnless(PROMTOOL, "promtool not installed (Debian package prometheus)")
class TestCounters(MetricsCase):
    # 200x150 photos pass, a 640x480 one is over the pixel limit: refused in the worker
    # process (at "limits", after its header), so that outcome crosses the shared page.
    extra_args = ["--max-pixels", "100000", "--workers", "2"]

    def test_counters_move_with_an_upload(self):
        before_text = self.scrape_text()
        self.promtool_ok(before_text)
        before = parse(before_text)

        good = [self.images.jpeg(i, w=200, h=150) for i in range(1, 4)]
        bad = self.images.jpeg(9, w=640, h=480)
        parts = [photos.data_part(f"ok{i}.jpg", d) for i, d in enumerate(good)]
        parts.append(photos.data_part("big.jpg", bad))
        uid = self.send(parts)
        result, polls = self.wait_finished(uid)
        self.assertEqual((result["uploaded"], result["failed"]), (3, 1))

        files = "shoebox_files_total"
        get_upload = key("shoebox_http_requests_total", method="GET", route="/api/uploads/{id}",
                         code="200")
        post = key("shoebox_http_requests_total", method="POST", route="/photos/upload/",
                   code="202")
        total = key("shoebox_file_processing_seconds_count", stage="total")
        self.wait_moved(before, {key(files, outcome="done"): 3,
                                         key(files, outcome="failed"): 1,
                                         get_upload: polls, post: 1, total: 4})
        after_text = self.scrape_text()
        after = parse(after_text)
        self.promtool_ok(after_text)
        m = lambda k: self.moved(before, after, k)  # noqa: E731
        self.assertEqual(m(key(files, outcome="done")), 3)
        self.assertEqual(m(key(files, outcome="failed")), 1)
        self.assertEqual(m(key(files, outcome="duplicate")), 0)
        self.assertEqual(m(key("shoebox_received_files_total")), 4)
        self.assertEqual(m(key("shoebox_received_bytes_total")), sum(map(len, good)) + len(bad))
        self.assertEqual(m(key("shoebox_uploads_total")), 1)
        self.assertEqual(m(post), 1)
        self.assertEqual(m(get_upload), polls)
        # The histogram: one observation per outcome, cumulative, +Inf equal to _count.
        self.assertEqual(m(total), 4)
        buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in after.items()
                          if k[0] == "shoebox_file_processing_seconds_bucket"
                          and dict(k[1])["stage"] == "total"))
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts))
        self.assertEqual(buckets[-1], (float("inf"), after[total]))
        for state in ("received", "queued", "processing"):
            self.assertEqual(after[key("shoebox_queue_files", state=state)], 0)

        # The same content again: a duplicate, in a second upload.
        uid2 = self.send([photos.data_part("again.jpg", good[0])])
        self.wait_finished(uid2)
        again = self.wait_moved(after, {key(files, outcome="duplicate"): 1})
        self.assertEqual(self.moved(after, again, key(files, outcome="duplicate")), 1)
        self.assertEqual(self.moved(after, again, key(files, outcome="done")), 0)
        self.assertEqual(self.moved(after, again, key("shoebox_uploads_total")), 1)

    def test_rejected_at_intake_counts_as_failed(self):
        before = self.scrape()
        uid = self.send([photos.data_part("notes.jpg", b"just some text, not a photo\n" * 10)])
        self.wait_finished(uid)
        after = self.scrape()
        self.assertEqual(self.moved(before, after, key("shoebox_files_total", outcome="failed")), 1)
        self.assertEqual(self.moved(before, after, key("shoebox_received_files_total")), 0)

    def test_only_get_metrics_on_the_metrics_port(self):
        self.assertEqual(self.c.get("/metrics").status, 404)   # never on the public port
        for method, path, status in (("GET", "/", 404), ("POST", "/metrics", 405),
                                     ("HEAD", "/metrics", 200)):
            req = urllib.request.Request(f"http://127.0.0.1:{self.mport}{path}", method=method,
                                         data=b"x" if method == "POST" else None)
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    got = r.status
            except urllib.error.HTTPError as e:
                got = e.code
            self.assertEqual(got, status, f"{method} {path}")


class TestWorkers(MetricsCase):
    extra_args = ["--workers", "1", "--lease", "1", "--faults", "decode_crash@boom,decode_hang@hang"]

    def test_worker_death_is_counted(self):
        before = self.scrape()
        uid = self.send([photos.data_part("boom.jpg", self.images.jpeg(1))])
        self.wait_finished(uid)
        # Crashed, retried, crashed again: two deaths, and the file failed by the supervisor.
        after = self.wait_moved(before, {key("shoebox_worker_deaths_total"): 2})
        self.assertEqual(self.moved(before, after, key("shoebox_worker_deaths_total")), 2)

    def test_expired_lease_is_counted(self):
        before = self.scrape()
        self.send([photos.data_part("hang.jpg", self.images.jpeg(2))])
        harness.wait_until(lambda: self.srv.query(
            "SELECT id FROM upload_files WHERE state = 'processing'"), timeout=30,
            what="the file in a worker")
        # A stopped worker renews nothing: its lease (1 s) runs out and the node takes
        # the file back.
        workers = children(self.srv.proc.pid)
        self.assertEqual(len(workers), 1)
        os.kill(workers[0], signal.SIGSTOP)
        try:
            after = self.wait_moved(before, {key("shoebox_leases_expired_total"): 1}, timeout=30)
        finally:
            # The server without the stop grace the hanging file would take (so it
            # starts no other worker), then the stopped worker, which would keep its
            # death signal (SIGTERM) pending forever.
            self.srv.kill()
            os.kill(workers[0], signal.SIGKILL)
        self.assertGreaterEqual(self.moved(before, after, key("shoebox_leases_expired_total")), 1)


@unittest.skipUnless(PROMTOOL, "promtool not installed (Debian package prometheus)")
class TestWorkerHost(MetricsCase):
    """A `shoebox worker` started by hand (as on a worker host) serves its own /metrics:
    the outcomes it recorded are there, not on the web node's."""
    extra_args = ["--workers", "0"]

    def test_worker_serves_its_own_metrics(self):
        wport = harness.free_port()
        log = open(os.path.join(self.srv.tmp, "worker.log"), "ab")
        db = ["--db", self.srv.db_url] if self.srv.db_url else []
        worker = subprocess.Popen([harness.BIN, "worker", "--processes", "0",
                                   "--data", self.srv.data,
                                   "--metrics-listen", f"127.0.0.1:{wport}"] + db,
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{wport}/metrics"

            def scrape_worker():
                try:
                    with urllib.request.urlopen(url, timeout=10) as r:
                        return r.read().decode()
                except OSError:
                    return None
            harness.wait_until(scrape_worker, timeout=30, what="the worker's /metrics")
            uid = self.send([photos.data_part("one.jpg", self.images.jpeg(1))])
            self.wait_finished(uid)
            done = key("shoebox_files_total", outcome="done")
            text = harness.wait_until(
                lambda: (t := scrape_worker()) and parse(t).get(done) == 1 and t,
                timeout=30, what="the worker's count")
            self.promtool_ok(text)
            self.assertIn('shoebox_queue_files{state="queued"} 0', text)
            self.assertEqual(self.scrape()[done], 0)   # the web node processed nothing
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            log.close()


@unittest.skipUnless(PROMTOOL, "promtool not installed (Debian package prometheus)")
class TestObjectStore(MetricsCase):
    """With --blobs s3:// the object-store counters move: the hand-off puts each original,
    the worker gets it and puts a thumbnail and a preview, the page reads a thumbnail."""

    def setUp(self):
        url, env = harness.s3_blobs(self)
        os.environ.update(env)
        self.addCleanup(lambda: [os.environ.pop(k, None) for k in env])
        self.extra_args = ["--blobs", url]
        super().setUp()

    def test_object_store_counters_move_with_an_upload(self):
        before = self.scrape()
        parts = [photos.data_part(f"s{i}.jpg", self.images.jpeg(i, w=200, h=150))
                 for i in range(3)]
        result, _ = self.wait_finished(self.send(parts))
        self.assertEqual(result["uploaded"], 3)
        thumb = self.c.get(result["files"][0]["thumbnail_url"])
        self.assertEqual(thumb.status, 200)
        req = "shoebox_object_store_requests_total"
        after = self.wait_moved(before, {key(req, op="put"): 9, key(req, op="get"): 4})
        self.assertEqual(self.moved(before, after, key("shoebox_object_store_errors_total",
                                                       op="put")), 0)
        hist = key("shoebox_object_store_request_duration_seconds_count", op="put")
        self.assertGreaterEqual(self.moved(before, after, hist), 9)
        self.promtool_ok(self.scrape_text())


class TestOff(unittest.TestCase):
    def test_no_listener_by_default(self):
        srv = harness.Server(users={"alice": "pw-alice"})
        try:
            srv.start()
            # Only the public port: no second daemon.
            harness.wait_until(lambda: listening_sockets(srv.proc.pid), what="the listener")
            self.assertEqual(listening_sockets(srv.proc.pid), {srv.port})
            self.assertEqual(srv.client().get("/metrics").status, 404)
        finally:
            srv.cleanup()

    def test_with_the_option_a_second_listener(self):
        port = harness.free_port()
        srv = harness.Server(args=["--metrics-listen", f"127.0.0.1:{port}"])
        try:
            srv.start()
            self.assertEqual(listening_sockets(srv.proc.pid), {srv.port, port})
        finally:
            srv.cleanup()


if __name__ == "__main__":
    unittest.main()
