"""Issue 11: tus 1.0.0 at /photos/tus/ against the real server (protocol suite).

Core (OPTIONS, HEAD, PATCH, Tus-Resumable on every answer, 409, 412, 415),
creation, creation-with-upload, creation-defer-length, expiration, checksum
(sha1, sha256, md5; 460; 400), termination; POST /api/uploads; auth (401,
403, another user's upload is 404); durable offsets (SIGKILL between two
PATCH requests, a PATCH cut off mid-body); two PATCHes at once; expiry sweep.
Images are made by the test (photos.Images); everything talks to 127.0.0.1.
"""
import base64
import hashlib
import os
import socket
import sqlite3
import time
import unittest

import harness
import photos

USER, PASSWORD = "alice", "tus test pw"
OTHER, OTHER_PW = "bob", "other tus pw"
V = {"Tus-Resumable": "1.0.0"}
OCTET = "application/offset+octet-stream"


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def meta(**kw):
    return ",".join(f"{k} {b64(str(v))}" for k, v in kw.items())


class Tus:
    """A logged-in client speaking tus through harness.Client."""

    def __init__(self, server, user=USER, password=PASSWORD):
        self.c = server.client()
        r = self.c.login(user, password)
        assert r.status == 303, r.status
        self.port = server.port

    def h(self, extra=None, csrf=True):
        h = dict(V)
        if csrf:
            h["X-CSRFToken"] = self.c.cookies.get("csrftoken", "")
        h.update(extra or {})
        return h

    def create(self, length, metadata=None, body=None, extra=None):
        h = {"Upload-Length": str(length)} if length is not None else {"Upload-Defer-Length": "1"}
        if metadata:
            h["Upload-Metadata"] = metadata
        if body is not None:
            h["Content-Type"] = OCTET
        h.update(extra or {})
        return self.c.request("POST", "/photos/tus/", body=body, headers=self.h(h))

    def create_url(self, length, **kw):
        r = self.create(length, **kw)
        assert r.status == 201, (r.status, r.text)
        return r.header("Location")

    def head(self, url, extra=None):
        return self.c.request("HEAD", url, headers=self.h(extra, csrf=False))

    def patch(self, url, offset, data, extra=None):
        h = {"Content-Type": OCTET, "Upload-Offset": str(offset)}
        h.update(extra or {})
        return self.c.request("PATCH", url, body=data, headers=self.h(h))

    def raw(self, method, url, headers, body=b""):
        """An open socket that has sent the request head and body (for cut-offs)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        cookie = "; ".join(f"{k}={v}" for k, v in self.c.cookies.items())
        lines = [f"{method} {url} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", f"Cookie: {cookie}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return s


def read_answer(sock):
    """Status and headers (lower-case names) of one answer read from sock."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers


class TusBase(unittest.TestCase):
    ARGS = ["--batch-delay", "0.1", "--workers", "1"]

    @classmethod
    def setUpClass(cls):
        cls.images = photos.Images()
        cls.server = harness.Server(users={USER: PASSWORD, OTHER: OTHER_PW}, args=cls.ARGS)
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.cleanup()
        cls.images.cleanup()

    def setUp(self):
        self.t = Tus(self.server)

    def upload_state(self, upload_id):
        r = self.t.c.get(f"/api/uploads/{upload_id}")
        self.assertEqual(r.status, 200, r.text)
        return r.json()

    def wait_done(self, upload_id, n=1, timeout=60):
        def done():
            u = self.upload_state(upload_id)
            return u["status"] in ("completed", "failed") and u["processed"] >= n and u
        return harness.wait_until(done, timeout=timeout, what=f"upload {upload_id} finished")

    def photo_sha(self, f):
        r = self.t.c.get(f"/api/photos/{f['photo_id']}")
        self.assertEqual(r.status, 200, r.text)
        return r.json()["sha256"]

    def upload_id_of(self, url):
        r = self.t.head(url)
        self.assertEqual(r.status, 200)
        for pair in r.header("Upload-Metadata").split(","):
            k, _, v = pair.partition(" ")
            if k == "upload":
                return int(base64.b64decode(v))
        self.fail("no upload in Upload-Metadata")


class TestCore(TusBase):
    def test_options_without_login(self):
        c = self.server.client()
        for path in ("/photos/tus/", "/photos/tus/0123456789abcdef0123456789abcdef"):
            r = c.request("OPTIONS", path)
            self.assertEqual(r.status, 204)
            self.assertEqual(r.header("Tus-Resumable"), "1.0.0")
            self.assertEqual(r.header("Tus-Version"), "1.0.0")
            ext = r.header("Tus-Extension").split(",")
            for e in ("creation", "creation-with-upload", "creation-defer-length", "expiration",
                      "checksum", "termination"):
                self.assertIn(e, ext)
            self.assertEqual(r.header("Tus-Max-Size"), str(100 * 1024 * 1024))
            self.assertEqual(sorted(r.header("Tus-Checksum-Algorithm").split(",")),
                             ["md5", "sha1", "sha256"])

    def test_whole_file_in_two_patches_becomes_a_photo(self):
        data = self.images.jpeg(1)
        url = self.t.create_url(len(data), metadata=meta(filename="one.jpg", filetype="image/jpeg"))
        self.assertRegex(url, r"^/photos/tus/[0-9a-f]{32}$")
        r = self.t.head(url)
        self.assertEqual((r.status, r.header("Upload-Offset"), r.header("Upload-Length")),
                         (200, "0", str(len(data))))
        self.assertEqual(r.header("Cache-Control"), "no-store")
        self.assertIsNotNone(r.header("Upload-Expires"))
        half = len(data) // 2
        r = self.t.patch(url, 0, data[:half])
        self.assertEqual(r.status, 204, r.text)
        self.assertEqual(r.header("Upload-Offset"), str(half))
        self.assertEqual(r.header("Tus-Resumable"), "1.0.0")
        self.assertEqual(self.t.head(url).header("Upload-Offset"), str(half))
        r = self.t.patch(url, half, data[half:])
        self.assertEqual((r.status, r.header("Upload-Offset")), (204, str(len(data))))
        uid = self.upload_id_of(url)
        u = self.wait_done(uid)
        self.assertEqual((u["uploaded"], u["failed"]), (1, 0), u)
        f = u["files"][0]
        self.assertEqual(f["file_name"], "one.jpg")
        self.assertEqual(self.photo_sha(f), hashlib.sha256(data).hexdigest())
        # HEAD of a finished upload still answers its offset
        r = self.t.head(url)
        self.assertEqual((r.status, r.header("Upload-Offset")), (200, str(len(data))))
        # nothing of it left in DATA/tus
        left = [n for n in os.listdir(os.path.join(self.server.data, "tus")) if n.endswith(".bin")
                and n.startswith(url.rsplit("/", 1)[1])]
        self.assertEqual(left, [])

    def test_offset_mismatch_is_409(self):
        url = self.t.create_url(100)
        r = self.t.patch(url, 10, b"x" * 10)
        self.assertEqual(r.status, 409)
        self.assertEqual(r.header("Upload-Offset"), "0")
        self.assertEqual(r.header("Tus-Resumable"), "1.0.0")
        self.assertEqual(self.t.patch(url, 0, b"x" * 10).status, 204)
        self.assertEqual(self.t.patch(url, 0, b"x" * 10).status, 409)

    def test_unknown_version_is_412(self):
        url = self.t.create_url(100)
        for v in ("0.2.2", None):
            h = self.t.h({"Content-Type": OCTET, "Upload-Offset": "0"})
            if v:
                h["Tus-Resumable"] = v
            else:
                del h["Tus-Resumable"]
            r = self.t.c.request("PATCH", url, body=b"abc", headers=h)
            self.assertEqual(r.status, 412)
            self.assertEqual(r.header("Tus-Version"), "1.0.0")
            self.assertEqual(r.header("Tus-Resumable"), "1.0.0")
        self.assertEqual(self.t.head(url).header("Upload-Offset"), "0")

    def test_wrong_content_type_is_415(self):
        url = self.t.create_url(100)
        r = self.t.patch(url, 0, b"abc", extra={"Content-Type": "application/octet-stream"})
        self.assertEqual(r.status, 415)
        self.assertEqual(self.t.head(url).header("Upload-Offset"), "0")

    def test_missing_or_bad_offset_is_400(self):
        url = self.t.create_url(100)
        for off in (None, "-1", "abc"):
            h = self.t.h({"Content-Type": OCTET})
            if off is not None:
                h["Upload-Offset"] = off
            self.assertEqual(self.t.c.request("PATCH", url, body=b"a", headers=h).status, 400)

    def test_past_length_is_413_and_keeps_the_bytes_before(self):
        url = self.t.create_url(10)
        r = self.t.patch(url, 0, b"x" * 11)
        self.assertEqual(r.status, 413)
        self.assertEqual(self.t.head(url).header("Upload-Offset"), "0")

    def test_unknown_upload_is_404_and_405(self):
        r = self.t.head("/photos/tus/0123456789abcdef0123456789abcdef")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.header("Tus-Resumable"), "1.0.0")
        self.assertEqual(self.t.head("/photos/tus/../etc").status, 404)
        r = self.t.c.request("GET", "/photos/tus/0123456789abcdef0123456789abcdef")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("Tus-Resumable"), "1.0.0")


class TestCreation(TusBase):
    ARGS = TusBase.ARGS + ["--max-file-size", "1MB"]

    def test_creation_needs_a_length(self):
        r = self.t.c.request("POST", "/photos/tus/", headers=self.t.h())
        self.assertEqual(r.status, 400)
        r = self.t.create(10, extra={"Upload-Defer-Length": "1"})
        self.assertEqual(r.status, 400)
        r = self.t.create(None, extra={"Upload-Defer-Length": "2"})
        self.assertEqual(r.status, 400)
        r = self.t.create("-5")
        self.assertEqual(r.status, 400)

    def test_over_max_file_size_is_413_at_creation(self):
        r = self.t.create(1024 * 1024 + 1)
        self.assertEqual(r.status, 413)
        self.assertEqual(r.header("Tus-Resumable"), "1.0.0")
        self.assertEqual(self.t.create(1024 * 1024).status, 201)

    def test_creation_with_upload(self):
        data = self.images.jpeg(2)
        r = self.t.create(len(data), metadata=meta(filename="cwu.jpg"), body=data[:1000])
        self.assertEqual(r.status, 201, r.text)
        self.assertEqual(r.header("Upload-Offset"), "1000")
        self.assertIsNotNone(r.header("Upload-Expires"))
        url = r.header("Location")
        r = self.t.patch(url, 1000, data[1000:])
        self.assertEqual(r.status, 204)
        u = self.wait_done(self.upload_id_of(url))
        self.assertEqual(u["uploaded"], 1)

    def test_empty_file_is_recorded_at_creation(self):
        url = self.t.create_url(0, metadata=meta(filename="empty.jpg"))
        r = self.t.head(url)
        self.assertEqual((r.status, r.header("Upload-Offset")), (200, "0"))
        u = self.wait_done(self.upload_id_of(url))
        self.assertEqual(u["failed"], 1)
        self.assertIn("empty file", u["files"][0]["error"])

    def test_creation_with_upload_wrong_type_is_415(self):
        r = self.t.create(10, body=b"abc", extra={"Content-Type": "text/plain"})
        self.assertEqual(r.status, 415)

    def test_defer_length(self):
        data = self.images.jpeg(3)
        url = self.t.create_url(None, metadata=meta(filename="d.jpg"))
        r = self.t.head(url)
        self.assertEqual(r.header("Upload-Defer-Length"), "1")
        self.assertIsNone(r.header("Upload-Length"))
        self.assertEqual(self.t.patch(url, 0, data[:500]).status, 204)
        r = self.t.patch(url, 500, data[500:], extra={"Upload-Length": str(len(data))})
        self.assertEqual((r.status, r.header("Upload-Offset")), (204, str(len(data))))
        self.assertEqual(self.t.head(url).header("Upload-Length"), str(len(data)))
        self.assertEqual(self.wait_done(self.upload_id_of(url))["uploaded"], 1)

    def test_defer_length_cannot_change(self):
        url = self.t.create_url(None)
        self.assertEqual(self.t.patch(url, 0, b"a", extra={"Upload-Length": "5"}).status, 204)
        self.assertEqual(self.t.patch(url, 1, b"b", extra={"Upload-Length": "6"}).status, 400)
        self.assertEqual(self.t.head(url).header("Upload-Length"), "5")

    def test_deferred_upload_over_max_size_is_413(self):
        url = self.t.create_url(None)
        r = self.t.patch(url, 0, b"x" * (1024 * 1024 + 1))
        self.assertEqual(r.status, 413)

    def test_api_uploads_ties_files_to_one_upload(self):
        r = self.t.c.json("POST", "/api/uploads", {"expected": 2})
        self.assertEqual(r.status, 201, r.text)
        j = r.json()
        uid = j["upload_id"]
        self.assertEqual(j["progress_url"], f"/photos/upload-progress/?upload={uid}")
        for i in (4, 5):
            data = self.images.jpeg(i)
            url = self.t.create_url(len(data), metadata=meta(filename=f"f{i}.jpg", upload=uid))
            self.assertEqual(self.upload_id_of(url), uid)
            self.assertEqual(self.t.patch(url, 0, data).status, 204)
            # progress counts the file the moment it completes
            self.assertGreaterEqual(self.upload_state(uid)["total"], i - 3)
        u = self.wait_done(uid, n=2)
        self.assertEqual((u["uploaded"], u["failed"]), (2, 0))

    def test_api_uploads_rejects_bad_bodies(self):
        self.assertEqual(self.t.c.json("POST", "/api/uploads", {"expected": -1}).status, 400)
        self.assertEqual(self.t.c.json("POST", "/api/uploads", {"expected": "x"}).status, 400)
        r = self.t.c.request("POST", "/api/uploads", body=b"{nope",
                             headers={"X-CSRFToken": self.t.c.cookies["csrftoken"]})
        self.assertEqual(r.status, 400)
        # without the CSRF header
        r = self.t.c.request("POST", "/api/uploads", body=b'{"expected": 1}')
        self.assertEqual(r.status, 403)

    def test_upload_of_another_user_in_metadata_is_404(self):
        other = Tus(self.server, OTHER, OTHER_PW)
        uid = other.c.json("POST", "/api/uploads", {"expected": 1}).json()["upload_id"]
        r = self.t.create(10, metadata=meta(upload=uid))
        self.assertEqual(r.status, 404)

    def test_unsupported_file_is_recorded_failed(self):
        data = b"%PDF-1.4 not a photo" * 50
        url = self.t.create_url(len(data), metadata=meta(filename="doc.pdf"))
        self.assertEqual(self.t.patch(url, 0, data).status, 204)
        u = self.wait_done(self.upload_id_of(url))
        self.assertEqual(u["failed"], 1)
        self.assertIn("unsupported format", u["files"][0]["error"])


class TestChecksumAndTermination(TusBase):
    def test_checksums(self):
        data = b"0123456789" * 100
        for alg in ("sha1", "sha256", "md5"):
            url = self.t.create_url(len(data))
            good = b64(hashlib.new(alg, data[:400]).digest())
            bad = b64(hashlib.new(alg, b"other").digest())
            r = self.t.patch(url, 0, data[:400], extra={"Upload-Checksum": f"{alg} {bad}"})
            self.assertEqual(r.status, 460, alg)
            self.assertEqual(r.header("Tus-Resumable"), "1.0.0")
            self.assertEqual(self.t.head(url).header("Upload-Offset"), "0", alg)
            r = self.t.patch(url, 0, data[:400], extra={"Upload-Checksum": f"{alg} {good}"})
            self.assertEqual((r.status, r.header("Upload-Offset")), (204, "400"), alg)

    def test_unknown_checksum_algorithm_is_400(self):
        url = self.t.create_url(10)
        for v in ("crc32 AAAA", "sha1", "sha1 !!notbase64!!"):
            r = self.t.patch(url, 0, b"abc", extra={"Upload-Checksum": v})
            self.assertEqual(r.status, 400, v)
        self.assertEqual(self.t.head(url).header("Upload-Offset"), "0")

    def test_mismatch_keeps_earlier_bytes_and_the_hash(self):
        data = self.images.jpeg(6)
        url = self.t.create_url(len(data), metadata=meta(filename="ck.jpg"))
        self.assertEqual(self.t.patch(url, 0, data[:3000]).status, 204)
        bad = b64(hashlib.sha1(b"nope").digest())
        r = self.t.patch(url, 3000, data[3000:], extra={"Upload-Checksum": f"sha1 {bad}"})
        self.assertEqual((r.status, r.header("Upload-Offset")), (460, "3000"))
        good = b64(hashlib.sha1(data[3000:]).digest())
        r = self.t.patch(url, 3000, data[3000:], extra={"Upload-Checksum": f"sha1 {good}"})
        self.assertEqual(r.status, 204)
        u = self.wait_done(self.upload_id_of(url))
        self.assertEqual(self.photo_sha(u["files"][0]), hashlib.sha256(data).hexdigest())

    def test_termination(self):
        url = self.t.create_url(100)
        self.assertEqual(self.t.patch(url, 0, b"x" * 50).status, 204)
        r = self.t.c.request("DELETE", url, headers=self.t.h())
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("Tus-Resumable"), "1.0.0")
        self.assertEqual(self.t.head(url).status, 404)
        self.assertEqual(self.t.patch(url, 50, b"x").status, 404)
        name = url.rsplit("/", 1)[1]
        self.assertEqual([n for n in os.listdir(os.path.join(self.server.data, "tus"))
                          if n.startswith(name)], [])


class TestAuth(TusBase):
    def test_not_logged_in_is_401(self):
        c = self.server.client()
        r = c.request("POST", "/photos/tus/", headers=dict(V, **{"Upload-Length": "10"}))
        self.assertEqual(r.status, 401)
        self.assertEqual(r.header("Tus-Resumable"), "1.0.0")
        url = self.t.create_url(10)
        self.assertEqual(c.request("HEAD", url, headers=V).status, 401)

    def test_unsafe_methods_need_csrf(self):
        r = self.t.c.request("POST", "/photos/tus/", headers=self.t.h({"Upload-Length": "10"},
                                                                        csrf=False))
        self.assertEqual(r.status, 403)
        url = self.t.create_url(10)
        h = self.t.h({"Content-Type": OCTET, "Upload-Offset": "0"}, csrf=False)
        self.assertEqual(self.t.c.request("PATCH", url, body=b"abc", headers=h).status, 403)
        self.assertEqual(self.t.c.request("DELETE", url, headers=self.t.h(csrf=False)).status, 403)
        self.assertEqual(self.t.head(url).header("Upload-Offset"), "0")

    def test_another_users_upload_is_404(self):
        url = self.t.create_url(10)
        other = Tus(self.server, OTHER, OTHER_PW)
        self.assertEqual(other.head(url).status, 404)
        self.assertEqual(other.patch(url, 0, b"abc").status, 404)
        self.assertEqual(other.c.request("DELETE", url, headers=other.h()).status, 404)
        self.assertEqual(self.t.head(url).header("Upload-Offset"), "0")


class TestDurability(unittest.TestCase):
    """SIGKILL between two PATCH requests; a PATCH cut off mid-body; two at once."""

    def setUp(self):
        self.images = photos.Images()
        self.server = harness.Server(users={USER: PASSWORD},
                                     args=["--batch-delay", "0.1", "--workers", "1"])
        self.server.start()
        self.t = Tus(self.server)

    def tearDown(self):
        self.server.cleanup()
        self.images.cleanup()

    def test_bytes_survive_sigkill_between_patches(self):
        data = self.images.jpeg(7, 1600, 1200)
        self.assertGreater(len(data), 100000)
        url = self.t.create_url(len(data), metadata=meta(filename="crash.jpg"))
        half = len(data) // 2
        r = self.t.patch(url, 0, data[:half])
        self.assertEqual((r.status, r.header("Upload-Offset")), (204, str(half)))
        self.server.kill()          # SIGKILL: no shutdown code runs
        self.server.start()
        self.t = Tus(self.server)   # sessions survive, log in again anyway
        r = self.t.head(url)
        self.assertEqual((r.status, r.header("Upload-Offset")), (200, str(half)))
        r = self.t.patch(url, half, data[half:])
        self.assertEqual((r.status, r.header("Upload-Offset")), (204, str(len(data))))
        r = self.t.c.get("/api/uploads")
        uid = int(base64.b64decode(dict(p.split(" ") for p in self.t.head(url).header(
            "Upload-Metadata").split(","))["upload"]))
        u = TusBase.wait_done(self, uid)
        self.assertEqual(u["uploaded"], 1, u)
        self.assertEqual(self.photo_sha(u["files"][0]), hashlib.sha256(data).hexdigest())

    upload_state = TusBase.upload_state
    photo_sha = TusBase.photo_sha

    def test_cut_off_patch_keeps_what_arrived(self):
        url = self.t.create_url(1000000)
        h = self.t.h({"Content-Type": OCTET, "Upload-Offset": "0", "Content-Length": "1000000"})
        s = self.t.raw("PATCH", url, h, b"y" * 300000)
        path = os.path.join(self.server.data, "tus", url.rsplit("/", 1)[1] + ".bin")
        # no HEAD meanwhile (HEAD would take the open PATCH over): watch the file
        harness.wait_until(lambda: os.path.getsize(path) == 300000, timeout=10,
                           what="300000 bytes written")
        s.close()
        harness.wait_until(lambda: "tus.broken_off" in self.server.log(), timeout=10,
                           what="the cut-off PATCH ended")
        self.server.kill()
        self.server.start()
        self.t = Tus(self.server)
        self.assertEqual(self.t.head(url).header("Upload-Offset"), "300000")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"y" * 300000)

    def test_two_patches_at_once(self):
        """The second PATCH takes over: the first's bytes so far count, its later
        bytes are refused (409), the file ends whole and right."""
        data = self.images.jpeg(8, 1600, 1200)
        url = self.t.create_url(len(data), metadata=meta(filename="two.jpg"))
        h = self.t.h({"Content-Type": OCTET, "Upload-Offset": "0",
                      "Content-Length": str(len(data))})
        first = self.t.raw("PATCH", url, h, data[:20000])
        # no HEAD meanwhile (a HEAD would take the upload over itself): watch the file
        path = os.path.join(self.server.data, "tus", url.rsplit("/", 1)[1] + ".bin")
        harness.wait_until(lambda: os.path.getsize(path) == 20000, timeout=10,
                           what="first PATCH's bytes")
        r = self.t.patch(url, 20000, data[20000:])
        self.assertEqual((r.status, r.header("Upload-Offset")), (204, str(len(data))))
        first.sendall(data[20000:])
        status, headers = read_answer(first)
        first.close()
        self.assertEqual(status, 409)
        self.assertEqual(headers.get("tus-resumable"), "1.0.0")
        self.assertEqual(self.t.head(url).header("Upload-Offset"), str(len(data)))
        uid = int(base64.b64decode(dict(p.split(" ") for p in self.t.head(url).header(
            "Upload-Metadata").split(","))["upload"]))
        u = TusBase.wait_done(self, uid)
        self.assertEqual(self.photo_sha(u["files"][0]), hashlib.sha256(data).hexdigest())

    def test_head_answers_the_offset_the_next_patch_starts_at(self):
        """A HEAD while a PATCH is still writing (its client thinks it broke) takes the
        upload over after a short wait: the old PATCH's later bytes are refused (409),
        and a PATCH from the offset HEAD answered goes through. Before, HEAD committed
        the bytes so far but let the old PATCH write on, so the next PATCH from that
        offset met a 409 and the client sent its body again."""
        data = self.images.jpeg(9, 1600, 1200)
        url = self.t.create_url(len(data), metadata=meta(filename="head.jpg"))
        h = self.t.h({"Content-Type": OCTET, "Upload-Offset": "0",
                      "Content-Length": str(len(data))})
        old = self.t.raw("PATCH", url, h, data[:30000])
        path = os.path.join(self.server.data, "tus", url.rsplit("/", 1)[1] + ".bin")
        harness.wait_until(lambda: os.path.getsize(path) == 30000, timeout=10,
                           what="30000 bytes written")
        r = self.t.head(url)
        self.assertEqual((r.status, r.header("Upload-Offset")), (200, "30000"))
        old.sendall(data[30000:])            # the old PATCH goes on: refused now
        status, _ = read_answer(old)
        old.close()
        self.assertEqual(status, 409)
        self.assertEqual(os.path.getsize(path), 30000)
        r = self.t.patch(url, 30000, data[30000:])
        self.assertEqual((r.status, r.header("Upload-Offset")), (204, str(len(data))))
        self.assertIn("event=tus.head_takeover", self.server.log())
        uid = self.upload_id_of(url)
        u = TusBase.wait_done(self, uid)
        self.assertEqual(self.photo_sha(u["files"][0]), hashlib.sha256(data).hexdigest())

    upload_id_of = TusBase.upload_id_of


    def test_completion_info_lost_in_a_crash_is_404_then_sent_again_once(self):
        """Completion writes the info ("file N") without an fsync, after the recording
        removed <id>.bin: a crash may leave the info of before (here: the creation's,
        offset 0) with the bytes gone. That is no upload (404, so tus clients create it
        again), not an offset whose PATCH can never be stored (503 each time), and the
        file sent again is recorded once."""
        r = self.t.c.json("POST", "/api/uploads", {"expected": 1})
        self.assertEqual(r.status, 201, r.text)
        uid = r.json()["upload_id"]
        data = self.images.jpeg(8, 400, 300)
        md = meta(filename="lost.jpg", filetype="image/jpeg", upload=uid)
        url = self.t.create_url(len(data), metadata=md)
        info = os.path.join(self.server.data, "tus", url.rsplit("/", 1)[1] + ".info")
        with open(info, "rb") as f:
            before = f.read()
        self.assertIn(b"offset 0\n", before)
        r = self.t.patch(url, 0, data)
        self.assertEqual((r.status, r.header("Upload-Offset")), (204, str(len(data))))
        self.server.kill()
        self.assertFalse(os.path.exists(info[:-5] + ".bin"), "the bytes left DATA/tus")
        with open(info, "wb") as f:   # the completion's info write lost
            f.write(before)
        self.server.start()
        self.t = Tus(self.server)
        self.assertEqual(self.t.head(url).status, 404)
        url2 = self.t.create_url(len(data), metadata=md)
        r = self.t.patch(url2, 0, data)
        self.assertEqual((r.status, r.header("Upload-Offset")), (204, str(len(data))))
        u = TusBase.wait_done(self, uid)
        self.assertEqual((u["total"], u["uploaded"]), (1, 1), u)
        self.assertEqual(self.photo_sha(u["files"][0]), hashlib.sha256(data).hexdigest())


    def test_bytes_received_counts_every_byte_through_a_stop(self):
        """Byte counts are written at most every 250 ms per upload (gathered between,
        written by the sweeper thread): files sent back to back are all counted,
        and what was gathered is written when the server stops (SIGTERM)."""
        r = self.t.c.json("POST", "/api/uploads", {"expected": 4})
        self.assertEqual(r.status, 201, r.text)
        uid = r.json()["upload_id"]
        total = 0
        for i in range(4):
            data = self.images.jpeg(20 + i, 300, 200)
            url = self.t.create_url(len(data), metadata=meta(filename=f"b{i}.jpg", upload=uid))
            self.assertEqual(self.t.patch(url, 0, data).status, 204)
            total += len(data)

        def received():
            r = self.t.c.get(f"/photos/upload-progress/?upload={uid}",
                             headers={"Accept": "application/json"})
            return r.json()["bytes_received"]
        self.assertLessEqual(received(), total)
        self.assertEqual(self.server.stop(), 0)
        self.server.start()
        self.t = Tus(self.server)
        self.assertEqual(received(), total)


class TestEmptyUpload(TusBase):
    """An upload opened with POST /api/uploads that has no file yet is not finished
    by --upload-idle (it would show as "failed" with nothing in it): a tus upload
    pointing to it may still complete. Once every such tus upload has expired it is
    deleted."""
    # The tus uploads live 6 s: the test's requests between 1 s (--upload-idle) and the
    # expiry get 3.5 s on a loaded machine (with 3 s, a 0.6 s stall had the late PATCH
    # answered 410 Gone).
    TUS_EXPIRE = 6
    ARGS = TusBase.ARGS + ["--upload-idle", "1", "--tus-expire", str(TUS_EXPIRE)]

    def open_upload(self, expected):
        r = self.t.c.json("POST", "/api/uploads", {"expected": expected})
        self.assertEqual(r.status, 201, r.text)
        return r.json()["upload_id"]

    def test_a_file_completing_after_the_idle_time_counts(self):
        uid = self.open_upload(1)
        data = self.images.jpeg(21)
        url = self.t.create_url(len(data), metadata=meta(filename="late.jpg", upload=uid))
        time.sleep(2.5)                       # idle > --upload-idle, tus upload alive
        u = self.upload_state(uid)
        self.assertEqual((u["phase"], u["total"], u["finished_at"]), ("receiving", 0, None), u)
        self.assertEqual(self.t.patch(url, 0, data).status, 204)
        u = self.wait_done(uid, n=1)
        self.assertEqual((u["status"], u["total"], u["uploaded"], u["failed"]),
                         ("completed", 1, 1, 0), u)

    def test_an_upload_no_file_reaches_goes_after_the_tus_expiry(self):
        before = time.monotonic()     # the upload, and so its expiry, starts after this
        uid = self.open_upload(2)
        began = time.monotonic()
        harness.wait_until(lambda: time.monotonic() - began > 2, timeout=5, what="idle")
        u = self.upload_state(uid)
        self.assertEqual((u["phase"], u["total"], u["finished_at"]), ("receiving", 0, None), u)
        harness.wait_until(lambda: self.t.c.get(f"/api/uploads/{uid}").status == 404,
                           timeout=30, what="the empty upload deleted")
        self.assertGreater(time.monotonic() - before, self.TUS_EXPIRE)  # not before the tus expiry
        self.assertIn("upload.empty_dropped", self.server.log())
        listed = self.t.c.get("/api/uploads?limit=500").json()["uploads"]
        self.assertNotIn(uid, [x["upload_id"] for x in listed])


class TestLateFile(TusBase):
    """A tus file that completes after --upload-idle finished its upload (with the files
    it had) reopens the upload: counted, processed, and the upload finishes again."""
    ARGS = TusBase.ARGS + ["--upload-idle", "1", "--tus-expire", "30"]

    def test_a_late_file_reopens_a_finished_upload(self):
        r = self.t.c.json("POST", "/api/uploads", {"expected": 2})
        self.assertEqual(r.status, 201, r.text)
        uid = r.json()["upload_id"]
        first, late = self.images.jpeg(31), self.images.jpeg(32)
        url1 = self.t.create_url(len(first), metadata=meta(filename="first.jpg", upload=uid))
        url2 = self.t.create_url(len(late), metadata=meta(filename="late.jpg", upload=uid))
        self.assertEqual(self.t.patch(url1, 0, first).status, 204)
        u = self.wait_done(uid, n=1)              # idle: goes on with the one file it has
        self.assertEqual((u["status"], u["total"], u["uploaded"]), ("completed", 1, 1), u)
        self.assertEqual(self.t.patch(url2, 0, late).status, 204)
        u = harness.wait_until(lambda: (lambda v: v["processed"] == 2 and v["finished_at"] and v)(
            self.upload_state(uid)), timeout=60, what="the late file processed")
        self.assertEqual((u["status"], u["total"], u["uploaded"], u["failed"]),
                         ("completed", 2, 2, 0), u)
        self.assertEqual(sorted(f["file_name"] for f in u["files"]), ["first.jpg", "late.jpg"])


class TestExpiry(unittest.TestCase):
    def test_expired_partial_upload_is_removed(self):
        # 3 s: the PATCH after the creation, and the look at the directory after the
        # PATCH, each must come within the expiry (1 s left a loaded machine too little).
        server = harness.Server(users={USER: PASSWORD}, args=["--tus-expire", "3"])
        try:
            server.start()
            t = Tus(server)
            url = t.create_url(100)
            r = t.patch(url, 0, b"z" * 40)
            self.assertEqual(r.status, 204)
            exp = r.header("Upload-Expires")
            self.assertRegex(exp, r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$")
            name = url.rsplit("/", 1)[1]
            tusdir = os.path.join(server.data, "tus")
            self.assertIn(name + ".bin", os.listdir(tusdir))
            harness.wait_until(lambda: not [n for n in os.listdir(tusdir) if n.startswith(name)],
                               timeout=15, what="expired upload removed")
            self.assertIn(t.head(url).status, (404, 410))
            self.assertIn("tus.expired", server.log())
        finally:
            server.cleanup()

    def test_info_that_cannot_load_is_removed_once_expired(self):
        """An info left by a crash that no longer loads (empty; or not complete with
        its bytes gone) is removed by the sweeper once older than the expiry."""
        server = harness.Server(users={USER: PASSWORD}, args=["--tus-expire", "1"])
        try:
            server.start()
            tusdir = os.path.join(server.data, "tus")
            with open(os.path.join(tusdir, "node")) as f:
                node = f.read().strip()
            names = [node + "%024x" % i + ".info" for i in (1, 2)]
            with open(os.path.join(tusdir, names[0]), "wb"):
                pass                                        # empty
            with open(os.path.join(tusdir, names[1]), "w") as f:   # its .bin is gone
                f.write("tus 1\nlength 10\noffset 0\nupload 1\nuser 1\ncreated 0\n"
                        "expires %d\nfile 0\nsha %s\n" % (int(time.time() * 1000) + 86400000,
                                                            "0" * 2 * 112))
            for n in names:
                os.utime(os.path.join(tusdir, n), (time.time() - 60, time.time() - 60))
            harness.wait_until(lambda: not set(names) & set(os.listdir(tusdir)), timeout=15,
                               what="the infos that cannot load removed")
        finally:
            server.cleanup()


if __name__ == "__main__":
    unittest.main()
