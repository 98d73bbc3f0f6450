"""Issue 10, item 4: --media-url (serving through a CDN, presigned URLs for originals).

- With --blobs s3:// on the run's RADOS Gateway and --media-url: a photo's thumbnail and
  preview answer 302 to MEDIA_URL/PREFIX/KEY (the rule: the media URL is the public base of
  the bucket's root, so the store's prefix is part of the path), and that object is there in
  the bucket (a signed GET). The original answers 302 to a presigned GET on the gateway that
  works without any credentials: 200, the uploaded bytes, the user's file name in
  Content-Disposition; the same URL with one character of the signature changed: 403.
- Another user's photo: 404 for all three, with no Location and no key in the answer; no
  session: the login redirect, never the media URL.
- A local blob store with --media-url: thumbnails redirect, originals stream (200); the
  Content-Security-Policy's img-src names the media URL's origin.
"""
import http.client
import os
import sys
import urllib.parse
import unittest

import harness
import photos
from harness import Server, wait_until

sys.path.insert(0, os.path.join(harness.ROOT, "tests"))
import rgwserver  # noqa: E402

ALICE, BOB, PW = "alice", "bob", "media url pw"
MEDIA = "https://cdn.example/photos"


def fetch(url, headers=None):
    """GET an absolute http:// URL as a stranger would (no cookie, no credential)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("GET", u.path + ("?" + u.query if u.query else ""), headers=headers or {})
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        conn.close()


class MediaCase(unittest.TestCase):
    def start(self, args, env=None):
        self.imgs = photos.Images()
        self.addCleanup(self.imgs.cleanup)
        srv = Server(users={ALICE: PW, BOB: PW},
                     args=["--workers", "1", "--batch-delay", "0.05"] + args)
        if env:
            srv.env = dict(os.environ, **env)
        self.addCleanup(srv.cleanup)
        srv.start()
        self.srv = srv
        return srv

    def upload_one(self, c, name="Holiday 1 é.jpg"):
        data = self.imgs.jpeg(3, 640, 480)
        parts = [photos.Part("csrfmiddlewaretoken", value=c.cookies["csrftoken"]),
                 photos.data_part(name, data)]
        ctype, length, body = photos.multipart(parts)
        r = c.request("POST", "/photos/upload/", body=b"".join(body),
                      headers={"Content-Type": ctype, "Content-Length": str(length),
                               "Accept": "application/json"})
        self.assertEqual(r.status, 202, r.text)
        uid = r.json()["upload_id"]

        def done():
            u = c.get(f"/api/uploads/{uid}", headers={"Accept": "application/json"}).json()
            return u if u["finished_at"] else None
        final = wait_until(done, timeout=90, interval=0.1, what=f"upload {uid}")
        self.assertEqual([f["state"] for f in final["files"]], ["done"],
                         f"{final}\n{self.srv.log()[-3000:]}")
        photo = c.get("/api/photos", headers={"Accept": "application/json"}).json()["photos"][0]
        return photo, data

    def login(self, user):
        c = self.srv.client()
        self.assertEqual(c.login(user, PW).status, 303)
        return c


class TestS3(MediaCase):
    def setUp(self):
        url, env = harness.s3_blobs(self)
        u = urllib.parse.urlsplit(url)
        q = dict(urllib.parse.parse_qsl(u.query))
        self.bucket, self.prefix = u.netloc, u.path.strip("/")
        self.endpoint, self.region = q["endpoint"], q.get("region", "us-east-1")
        self.keys = (env["SHOEBOX_S3_ACCESS_KEY"], env["SHOEBOX_S3_SECRET_KEY"])
        # a trailing '/' on the option is dropped
        self.start(["--blobs", url, "--media-url", MEDIA + "/"], env)

    def signed_get(self, key):
        """GET BUCKET/PREFIX/KEY with the store's own keys (what the CDN would reach)."""
        path = f"/{self.bucket}/{self.prefix}/{key}"
        host = urllib.parse.urlsplit(self.endpoint).netloc
        headers, _ = rgwserver.sigv4_headers("GET", host, path, {}, b"", *self.keys,
                                             region=self.region)
        return fetch(self.endpoint + path, headers)

    def test_thumbnails_redirect_originals_presigned(self):
        c = self.login(ALICE)
        photo, data = self.upload_one(c)
        sha = photo["sha256"]
        for url, key in ((photo["thumbnail_url"], f"t/{sha[:2]}/{sha}.jpg"),
                         (photo["preview_url"], f"p/{sha[:2]}/{sha}.jpg")):
            r = c.get(url)
            self.assertEqual(r.status, 302, url)
            self.assertEqual(r.header("location"), f"{MEDIA}/{self.prefix}/{key}")
            self.assertIn("immutable", r.header("cache-control"))
            self.assertIn("private", r.header("cache-control"))
            status, _, body = self.signed_get(key)
            self.assertEqual(status, 200, key)
            self.assertEqual(body[:2], b"\xff\xd8")

        r = c.get(photo["original_url"])
        self.assertEqual(r.status, 302)
        self.assertEqual(r.header("cache-control"), "no-store")
        loc = r.header("location")
        u = urllib.parse.urlsplit(loc)
        self.assertEqual(f"{u.scheme}://{u.netloc}", self.endpoint)
        self.assertEqual(u.path, f"/{self.bucket}/{self.prefix}/o/{sha[:2]}/{sha}")
        q = dict(urllib.parse.parse_qsl(u.query))
        self.assertEqual(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256")
        self.assertEqual(q["X-Amz-Expires"], "300")
        self.assertEqual(q["X-Amz-SignedHeaders"], "host")
        self.assertTrue(q["X-Amz-Credential"].startswith(self.keys[0] + "/"))
        self.assertNotIn(self.keys[1], loc)

        status, headers, body = fetch(loc)
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(body, data)
        self.assertEqual(headers.get("content-type"), "image/jpeg")
        self.assertIn("filename*=UTF-8''Holiday%201%20%C3%A9.jpg",
                      headers.get("content-disposition", ""))

        sig = q["X-Amz-Signature"]
        bad = sig[:-1] + ("0" if sig[-1] != "0" else "1")
        status, _, body = fetch(loc.replace(sig, bad))
        self.assertEqual(status, 403, body[:300])
        self.assertIn(b"SignatureDoesNotMatch", body)

        # The ownership check comes first: a stranger gets no URL.
        bob = self.login(BOB)
        for url in (photo["thumbnail_url"], photo["preview_url"], photo["original_url"]):
            r = bob.get(url)
            self.assertEqual(r.status, 404, url)
            self.assertIsNone(r.header("location"))
            self.assertNotIn(sha.encode(), r.body)
            self.assertNotIn(b"X-Amz", r.body)
        anon = self.srv.client()
        for url in (photo["thumbnail_url"], photo["original_url"]):
            r = anon.get(url)
            loc = r.header("location") or ""
            self.assertFalse(loc.startswith(MEDIA) or loc.startswith(self.endpoint), loc)
            self.assertNotEqual(r.status, 200)


class TestLocal(MediaCase):
    def test_local_store_redirects_thumbnails_and_streams_originals(self):
        self.start(["--media-url", MEDIA])
        c = self.login(ALICE)
        photo, data = self.upload_one(c, "plain.jpg")
        sha = photo["sha256"]
        r = c.get(photo["thumbnail_url"])
        self.assertEqual(r.status, 302)
        self.assertEqual(r.header("location"), f"{MEDIA}/t/{sha[:2]}/{sha}.jpg")
        # the pages' CSP lets images come from the media origin (a redirect's target is checked)
        csp = c.get(f"/photos/{photo['id']}/").header("content-security-policy")
        self.assertIn("img-src 'self' data: blob: https://cdn.example;", csp)
        r = c.get(photo["original_url"])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, data)
        self.assertIn("plain.jpg", r.header("content-disposition"))


if __name__ == "__main__":
    unittest.main()
