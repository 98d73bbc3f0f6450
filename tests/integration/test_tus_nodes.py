"""Issue 11, item 2: a tus resume that reaches another web node.

Two `shoebox serve` nodes on one PostgreSQL and one shared `--blobs` directory, each
with its own `--data` (so each its own DATA/tus/). The rule (docs/ARCHITECTURE.md, "tus:
concurrency, expiry, several nodes"): an upload's id starts with the tag of the node that
holds its partial bytes (DATA/tus/node), and the load balancer routes /photos/tus/<id> by
it. A request that reaches another node anyway gets 404 naming the holding node -- never
a 500, a 409 or a wrong offset -- and the client starts that file again there: the file
ends recorded exactly once in its Shoebox upload, processed, with the right bytes, also
when the first node had already completed it; the partial bytes left on the first node
expire.
Skips only when SHOEBOX_TEST_PG is unset (no PostgreSQL installed; `make test` installs it).
"""
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness
import photos
from harness import wait_until
from test_tus import OCTET, Tus, meta

USER, PW = "alice", "tus nodes pw"


class TwoNodes(unittest.TestCase):
    def setUp(self):
        self.db = harness.pg_database(self)
        self.images = photos.Images()
        self.addCleanup(self.images.cleanup)
        self.tmp = tempfile.mkdtemp(prefix="shoebox-tusnodes-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        blobs = os.path.join(self.tmp, "blobs")
        common = ["--db", self.db, "--blobs", blobs, "--batch-delay", "0.1"]
        # A expires abandoned partial uploads fast; B's workers process the files.
        self.a = harness.Server(args=common + ["--workers", "0", "--tus-expire", "4"])
        self.b = harness.Server(args=common + ["--workers", "1"])
        for s in (self.a, self.b):
            self.addCleanup(s.cleanup)
        r = subprocess.run([harness.BIN, "user", "add", USER, "--password-stdin", "--data",
                            self.a.data, "--db", self.db], input=PW + "\n",
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotEqual(self.a.data, self.b.data)
        self.a.start()
        self.b.start()
        self.ta = Tus(self.a, USER, PW)
        self.tb = Tus(self.b, USER, PW)

    def node_of(self, srv):
        with open(os.path.join(srv.data, "tus", "node")) as f:
            return f.read().strip()

    def open_upload(self, t, expected):
        r = t.c.request("POST", "/api/uploads", body=f'{{"expected": {expected}}}'.encode(),
                        headers={"Content-Type": "application/json",
                                 "X-CSRFToken": t.c.cookies["csrftoken"]})
        self.assertEqual(r.status, 201, r.text)
        return r.json()["upload_id"]

    def create(self, t, uid, name, data):
        url = t.create_url(len(data), metadata=meta(filename=name, filetype="image/jpeg",
                                                    upload=uid))
        self.assertRegex(url, r"^/photos/tus/[0-9a-f]{32}$")
        return url

    def wait_processed(self, uid, n):
        def done():
            r = self.tb.c.get(f"/api/uploads/{uid}")
            self.assertEqual(r.status, 200, r.text)
            u = r.json()
            return u if u["finished_at"] and u["processed"] >= n else None
        try:
            return wait_until(done, timeout=90, interval=0.1, what=f"upload {uid}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.a.log()[-3000:]}\n{self.b.log()[-3000:]}") from None

    def assert_recorded_once(self, uid, name, data):
        u = self.wait_processed(uid, 1)
        self.assertEqual([f["file_name"] for f in u["files"]], [name], u)
        self.assertEqual((u["uploaded"], u["failed"]), (1, 0), u)
        f = u["files"][0]
        r = self.tb.c.get(f"/api/photos/{f['photo_id']}")
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json()["sha256"], hashlib.sha256(data).hexdigest())
        rows = harness.query(self.db, "SELECT count(*) FROM upload_files WHERE upload_id = ?", (uid,))
        self.assertEqual(rows[0][0], 1)

    def test_ids_name_their_node(self):
        na, nb = self.node_of(self.a), self.node_of(self.b)
        self.assertRegex(na, r"^[0-9a-f]{8}$")
        self.assertNotEqual(na, nb)
        uid = self.open_upload(self.ta, 2)
        data = self.images.jpeg(1)
        self.assertTrue(self.create(self.ta, uid, "a.jpg", data).startswith("/photos/tus/" + na))
        self.assertTrue(self.create(self.tb, uid, "b.jpg", data).startswith("/photos/tus/" + nb))
        # the tag survives a restart (the same data directory is the same node)
        self.a.stop()
        self.a.start()
        self.assertEqual(self.node_of(self.a), na)
        ta = Tus(self.a, USER, PW)
        self.assertTrue(self.create(ta, uid, "c.jpg", data).startswith("/photos/tus/" + na))

    def test_half_sent_on_a_resumed_on_b_is_404_then_sent_again_once(self):
        data = self.images.jpeg(2, 900, 700)
        half = len(data) // 2
        uid = self.open_upload(self.ta, 1)
        url = self.create(self.ta, uid, "half.jpg", data)
        r = self.ta.patch(url, 0, data[:half])
        self.assertEqual((r.status, r.header("Upload-Offset")), (204, str(half)))
        na, nb = self.node_of(self.a), self.node_of(self.b)
        # B does not hold it: 404 naming A, for HEAD, PATCH (at the right offset) and DELETE
        r = self.tb.head(url)
        self.assertEqual(r.status, 404)
        self.assertEqual(r.header("Tus-Resumable"), "1.0.0")
        self.assertIsNone(r.header("Upload-Offset"))
        r = self.tb.c.request("PATCH", url, body=data[half:], headers=self.tb.h(
            {"Content-Type": OCTET, "Upload-Offset": str(half)}))
        self.assertEqual(r.status, 404, r.text)
        self.assertIn(f"held by web node {na}, not this one ({nb})", r.text)
        self.assertIsNone(r.header("Upload-Offset"))
        r = self.tb.c.request("DELETE", url, headers=self.tb.h())
        self.assertEqual(r.status, 404)
        self.assertRegex(self.b.log(), rf"event=tus\.other_node id={url[-32:]} node={na}")
        # nothing reached the upload from B's refusals; A still holds the half
        self.assertEqual(self.ta.head(url).header("Upload-Offset"), str(half))
        # the client starts the file again on B: recorded once, the right bytes
        url2 = self.create(self.tb, uid, "half.jpg", data)
        r = self.tb.patch(url2, 0, data)
        self.assertEqual((r.status, r.header("Upload-Offset")), (204, str(len(data))))
        self.assert_recorded_once(uid, "half.jpg", data)
        # A's abandoned half expires (--tus-expire 4) and its bytes are removed
        tus_a = os.path.join(self.a.data, "tus")
        wait_until(lambda: not any(n.startswith(url[-32:]) for n in os.listdir(tus_a)),
                   timeout=30, interval=0.2, what="A's partial upload expired")
        self.assertEqual(self.ta.head(url).status, 404)
        u = self.wait_processed(uid, 1)
        self.assertEqual(len(u["files"]), 1, u)

    def test_completed_on_a_then_sent_again_on_b_is_recorded_once(self):
        # A completes the file but its answer is lost: the client asks B, gets 404, and
        # sends the whole file again there.
        data = self.images.jpeg(3, 640, 480)
        uid = self.open_upload(self.ta, 1)
        url = self.create(self.ta, uid, "twice.jpg", data)
        r = self.ta.patch(url, 0, data)
        self.assertEqual((r.status, r.header("Upload-Offset")), (204, str(len(data))))
        self.assertEqual(self.tb.head(url).status, 404)
        url2 = self.create(self.tb, uid, "twice.jpg", data)
        r = self.tb.patch(url2, 0, data)
        self.assertEqual((r.status, r.header("Upload-Offset")), (204, str(len(data))))
        self.assert_recorded_once(uid, "twice.jpg", data)
        self.assertEqual(len(re.findall(r"event=tus\.complete ", self.a.log() + self.b.log())),
                         2)

    def test_terminated_on_its_node_counts_once_and_both_nodes_see_it(self):
        """A DELETE that reaches the other node is 404 and lowers nothing; on the node that
        holds the tus upload it counts once, and the upload goes on with the file it has,
        as either node shows."""
        uid = self.open_upload(self.ta, 2)
        full = self.images.jpeg(4, 640, 480)
        url_full = self.create(self.tb, uid, "full.jpg", full)
        self.assertEqual(self.tb.patch(url_full, 0, full).status, 204)
        part = self.images.jpeg(5, 640, 480)
        url = self.create(self.ta, uid, "cancelled.jpg", part)
        self.assertEqual(self.ta.patch(url, 0, part[:len(part) // 2]).status, 204)

        def expected():
            return harness.query(self.db, "SELECT expected FROM uploads WHERE id = ?", (uid,))[0][0]
        self.assertEqual(self.tb.c.request("DELETE", url, headers=self.tb.h()).status, 404)
        self.assertEqual(expected(), 2)
        self.assertEqual(self.ta.c.request("DELETE", url, headers=self.ta.h()).status, 204)
        self.assertEqual(self.ta.c.request("DELETE", url, headers=self.ta.h()).status, 404)
        self.assertEqual(expected(), 1)
        u = self.wait_processed(uid, 1)                       # read through B
        self.assertEqual((u["status"], u["total"], u["uploaded"]), ("completed", 1, 1), u)
        r = self.ta.c.get(f"/api/uploads/{uid}")
        self.assertEqual((r.status, r.json()["status"]), (200, "completed"))


if __name__ == "__main__":
    unittest.main()
