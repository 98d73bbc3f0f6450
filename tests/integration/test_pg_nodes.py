"""Issue 9, items 3-5: several `shoebox serve` nodes on one PostgreSQL and one data directory.

- Two nodes: a session made on node B works on node A; an SSE stream on node A follows an
  upload sent to node B live (events in order, the last one the final counts); the workers
  of both nodes take its batches (each node's log names the files its workers finished);
  every file is processed exactly once and the counts are exact.
- A node SIGKILLed while its workers hold leases: a node started meanwhile does not take
  those live leases back (only expired ones); once they expire (--lease 2) it finishes
  those files, nothing lost, nothing counted twice.
- Four nodes with two workers each claiming from one queue: every file processed exactly
  once (FOR UPDATE SKIP LOCKED, compare-and-set batches).
- `--workers 0` is a web-only node: it starts no worker.
Skips only when SHOEBOX_TEST_PG is unset (no PostgreSQL installed; `make test` installs it).
"""
import collections
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import photos  # noqa: E402
from harness import wait_until  # noqa: E402
from test_crash import _alive, _children  # noqa: E402
from test_progress import parse_sse  # noqa: E402

PW = "pw-nodes-1"
STREAM = "/photos/upload-progress/stream"
DONE_RE = re.compile(r"event=file\.done upload=(\d+) batch=(\d+) file=(\d+)")


def shoebox(*args, stdin="", timeout=60):
    return subprocess.run([harness.BIN, *args], capture_output=True, text=True,
                          timeout=timeout, input=stdin)


class Nodes(unittest.TestCase):
    """Helpers: nodes sharing one database (self.db) and one data directory."""

    def setUp(self):
        self.db = harness.pg_database(self)
        self.images = photos.Images()
        self.addCleanup(self.images.cleanup)
        self.data = None
        self.nodes = []

    def node(self, *args, start=True):
        srv = harness.Server(args=["--db", self.db, *args])
        self.addCleanup(srv.cleanup)
        if self.data is None:
            self.data = srv.data
            r = shoebox("user", "add", "alice", "--password-stdin", "--data", self.data,
                        "--db", self.db, stdin=PW + "\n")
            self.assertEqual(r.returncode, 0, r.stderr)
        else:
            srv.data = self.data  # one data directory for every node
        self.nodes.append(srv)
        return srv.start() if start else srv

    def client_of(self, srv, cookies=None):
        c = srv.client()
        if cookies is None:
            self.assertEqual(c.login("alice", PW).status, 303)
        else:
            c.cookies = dict(cookies)
        return c

    def upload(self, c, files, upload_id=None, expected=None):
        parts = [photos.Part("csrfmiddlewaretoken", value=c.cookies["csrftoken"])]
        if upload_id:
            parts.append(photos.Part("upload", value=str(upload_id)))
        if expected:
            parts.append(photos.Part("expected", value=str(expected)))
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

    def wait_finished(self, c, uid, timeout=90):
        def done():
            u = self.state(c, uid)
            return u if u["finished_at"] else None
        try:
            return wait_until(done, timeout=timeout, interval=0.1, what=f"upload {uid}")
        except AssertionError as e:
            logs = "\n".join(f"--- node {i}\n" + "\n".join(
                [ln for ln in n.log().splitlines() if "event=request" not in ln][-40:])
                for i, n in enumerate(self.nodes))
            raise AssertionError(f"{e}; {self.state(c, uid)}\n{logs}") from None

    def done_by_node(self, uid):
        """For each node, the file ids its workers finished in upload uid (from its log)."""
        out = []
        for n in self.nodes:
            out.append([int(m.group(3)) for m in DONE_RE.finditer(n.log())
                        if int(m.group(1)) == uid])
        return out

    def db_rows(self, sql):
        return [ln.split("|") for ln in harness.psql(self.db, sql).splitlines() if ln]

    def assert_exactly_once(self, c, uid, n):
        final = self.wait_finished(c, uid)
        self.assertEqual((final["total"], final["processed"], final["uploaded"],
                          final["failed"], final["duplicates"]), (n, n, n, 0, 0), final)
        self.assertEqual(sorted(f["state"] for f in final["files"]), ["done"] * n)
        # Each file finished once, by one worker of one node (no outcome written twice).
        done = [f for per in self.done_by_node(uid) for f in per]
        dup = [f for f, k in collections.Counter(done).items() if k > 1]
        self.assertEqual(dup, [], "files finished twice")
        self.assertEqual(sorted(done), sorted(f["id"] for f in final["files"]))
        # The database agrees: one photo per file, each file attempted once.
        rows = self.db_rows(f"SELECT count(*), count(DISTINCT file_id) FROM photos "
                            f"WHERE upload_id = {uid}")
        self.assertEqual(rows, [[str(n), str(n)]])
        return final


class TestTwoNodes(Nodes):
    def test_sse_on_a_follows_upload_sent_to_b_and_both_nodes_work(self):
        common = ["--workers", "2", "--batch-size", "2", "--batch-delay", "0.05"]
        a = self.node(*common)
        b = self.node(*common)
        cb = self.client_of(b)
        ca = self.client_of(a, cb.cookies)  # the session made on B, used on A
        self.assertEqual(ca.get("/photos/").status, 200)
        n = 24
        files = [(f"n{i}.jpg", self.images.jpeg(i + 1, 1600, 1200)) for i in range(n)]
        # Keep the upload open (expected n, 2 sent) until the stream is connected on A.
        uid = self.upload(cb, files[:2], expected=n)
        conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
        self.addCleanup(conn.close)
        cookie = "; ".join(f"{k}={v}" for k, v in ca.cookies.items())
        conn.request("GET", f"{STREAM}?upload={uid}", headers={"Cookie": cookie})
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        first = r.readline()
        self.assertTrue(first.startswith(b"event: progress"), first)
        self.upload(cb, files[2:], upload_id=uid)
        rest = r.read()  # until node A ends the stream (the upload finished)
        events = parse_sse((first + rest).decode())
        datas = [json.loads(e["data"]) for e in events]
        versions = [int(e["id"]) for e in events]
        self.assertEqual(versions, sorted(set(versions)), "ids strictly increasing")
        self.assertGreaterEqual(len(events), 3, "live events, not only the first and last")
        for x, y in zip(datas, datas[1:]):
            self.assertGreaterEqual(y["processed"], x["processed"])
        self.assertTrue(any(0 < d["processed"] < n for d in datas),
                        "an event in the middle of processing")
        last = datas[-1]
        self.assertEqual(last["status"], "completed")
        self.assertEqual((last["total"], last["processed"], last["uploaded"]), (n, n, n))
        self.assert_exactly_once(cb, uid, n)
        per_node = self.done_by_node(uid)
        print(f"two nodes: {n} files, finished per node {list(map(len, per_node))}, "
              f"{len(events)} SSE events on node A", file=sys.stderr)
        self.assertTrue(all(per_node), f"files finished per node: {list(map(len, per_node))}")
        # Batches were opened once each, in order, by whichever scheduler won.
        batches = [int(m.group(1)) for n_ in self.nodes for m in re.finditer(
            rf"event=batch\.start upload={uid} batch=(\d+)", n_.log())]
        self.assertEqual(sorted(batches), list(range(1, n // 2 + 1)))

    def test_web_only_node_starts_no_worker(self):
        web = self.node("--workers", "0")
        self.assertIn("workers=0", web.log())
        self.assertEqual(_children(web.proc.pid), [])
        worker_node = self.node("--workers", "1", "--batch-size", "2")
        c = self.client_of(web)
        uid = self.upload(c, [(f"w{i}.jpg", self.images.jpeg(i + 1)) for i in range(4)])
        self.assert_exactly_once(c, uid, 4)
        per_node = self.done_by_node(uid)
        self.assertEqual(len(per_node[0]), 0)
        self.assertEqual(len(per_node[1]), 4)
        self.assertIsNotNone(worker_node)


class TestNodeKilled(Nodes):
    def test_killed_nodes_leases_are_taken_back_after_they_expire(self):
        a = self.node("--workers", "2", "--lease", "2", "--batch-size", "4",
                      "--faults", "decode_hang@slow")
        c = self.client_of(a)
        files = [(f"slow-{i}.jpg", self.images.jpeg(i + 1)) for i in range(2)]
        files += [(f"fine-{i}.jpg", self.images.jpeg(i + 10)) for i in range(2)]
        uid = self.upload(c, files)

        def leased():
            rows = self.db_rows("SELECT name, lease_owner FROM upload_files "
                                "WHERE state = 'processing' AND name LIKE 'slow%' ORDER BY name")
            return rows if len(rows) == 2 else None
        held = wait_until(leased, timeout=30, what="A's workers holding both slow files")
        a_workers = _children(a.proc.pid)
        self.assertEqual(sorted(int(o.rsplit("/", 1)[1]) for _, o in held), sorted(a_workers))
        # A second node starting now leaves A's live leases alone (its start-up sweep
        # takes back only expired ones) and A's files stay A's.
        b = self.node("--workers", "2", "--lease", "2")
        time.sleep(0.5)
        self.assertEqual(leased(), held)
        self.assertNotIn("event=sweep.requeued", b.log())
        # SIGKILL node A, server and workers (the machine died): their leases are left
        # in the database, and no one on A releases them.
        a.kill()
        for w in a_workers:
            os.kill(w, signal.SIGKILL)
        wait_until(lambda: not any(_alive(w) for w in a_workers), timeout=10,
                   what="A's workers to exit")
        self.assertEqual(leased(), held)
        cb = self.client_of(b, c.cookies)
        final = self.assert_exactly_once(cb, uid, 4)
        by_name = {f["file_name"]: f for f in final["files"]}
        self.assertEqual([by_name[f"slow-{i}.jpg"]["attempts"] for i in range(2)], [2, 2])
        self.assertIn("event=lease.expired", b.log())
        slow_ids = {by_name[f"slow-{i}.jpg"]["id"] for i in range(2)}
        self.assertEqual(slow_ids & set(self.done_by_node(uid)[1]), slow_ids,
                         "node B finished the killed node's files")

    def test_killed_nodes_open_request_closes_with_it(self):
        """A node killed while a request is sending files into an upload: its request was
        its own, so when its heartbeat stops another node closes it and the upload goes
        on with the file that arrived (without this it would wait for the request forever)."""
        a = self.node("--workers", "0")
        b = self.node("--workers", "1")
        c = self.client_of(a)
        first, second = self.images.jpeg(1), self.images.jpeg(2)
        parts = [photos.Part("csrfmiddlewaretoken", value=c.cookies["csrftoken"]),
                 photos.data_part("one.jpg", first), photos.data_part("two.jpg", second)]
        ctype, length, body = photos.multipart(parts)
        body = b"".join(body)
        cut = body.index(second) + 100  # the first file complete, the second cut short
        sock = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        self.addCleanup(sock.close)
        cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
        sock.sendall((f"POST /photos/upload/ HTTP/1.1\r\nHost: 127.0.0.1:{a.port}\r\n"
                      f"Cookie: {cookie}\r\nContent-Type: {ctype}\r\n"
                      f"Content-Length: {length}\r\nAccept: application/json\r\n\r\n"
                      ).encode() + body[:cut])
        row = wait_until(lambda: [r for r in self.db_rows(
            "SELECT id, total, open_requests FROM uploads") if r[1] == "1"], timeout=20,
            what="the first file recorded")[0]
        uid = int(row[0])
        self.assertEqual(row[2], "1")
        a_workers = _children(a.proc.pid)
        a.kill()
        self.assertEqual(a_workers, [])
        cb = self.client_of(b, c.cookies)
        final = self.wait_finished(cb, uid, timeout=60)
        self.assertEqual((final["total"], final["processed"], final["uploaded"]), (1, 1, 1))
        self.assertIn("event=node.expired", b.log())


class TestFourNodes(Nodes):
    def test_four_nodes_two_workers_each_process_every_file_once(self):
        nodes = [self.node("--workers", "2", "--batch-size", "3", "--batch-delay", "0")
                 for _ in range(4)]
        c = self.client_of(nodes[0])
        n = 30
        uid = self.upload(c, [(f"q{i}.jpg", self.images.jpeg(i + 1, 800, 600))
                              for i in range(n)])
        self.assert_exactly_once(c, uid, n)
        # No file was claimed twice (SKIP LOCKED: a claim never takes a leased file, and
        # no lease ran out here), and each was recorded once: the store's own word.
        self.assertEqual(self.db_rows(f"SELECT attempts, count(*) FROM upload_files "
                                      f"WHERE upload_id = {uid} GROUP BY attempts"),
                         [["1", str(n)]])
        self.assertEqual(self.db_rows(f"SELECT count(*), count(DISTINCT sha256) FROM photos "
                                      f"WHERE upload_id = {uid}"), [[str(n), str(n)]])
        batches = [int(m.group(1)) for s in nodes for m in re.finditer(
            rf"event=batch\.start upload={uid} batch=(\d+)", s.log())]
        self.assertEqual(sorted(batches), list(range(1, n // 3 + 1)),
                         "each batch opened once by one of the schedulers")
        per_node = self.done_by_node(uid)
        print(f"four nodes: {n} files, finished per node {list(map(len, per_node))}",
              file=sys.stderr)
        self.assertGreaterEqual(sum(1 for p in per_node if p), 2,
                                f"files per node: {list(map(len, per_node))}")


if __name__ == "__main__":
    unittest.main()
