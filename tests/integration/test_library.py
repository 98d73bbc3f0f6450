"""Issue 13: a big library pages like a small one (gallery and /api/photos).

The user's photo count is kept in users.photo_count by the rules that insert and delete
photos (and filled by migration 4); pages are read by keyset cursors (before=/after=,
the next and prev links) or, for a numbered page or offset=, walked to from the nearer
end of the list. Checked here against a plain ordered list of the rows: a library of a
few hundred rows made directly in the database (with ties in sort time and creation time,
inserted in shuffled order so ids do not follow the list order), on SQLite and, with
SHOEBOX_TEST_DB=pg, on PostgreSQL.
"""
import html
import random
import re
import sqlite3
import unittest

import harness
import photos
from test_pipeline import upload, wait_finished

N = 300          # alice's library
GALLERY_PAGE = 48
TILE = re.compile(r'<li class="tile[^"]*"><a class="tile-link" href="/photos/(\d+)/">')


def step_link(page_html, label):
    m = re.search(r'<a class="page-step" href="([^"]+)">' + re.escape(label), page_html)
    return html.unescape(m.group(1)) if m else None


class LibraryCase(unittest.TestCase):
    def setUp(self):
        self.srv = harness.Server(users={"alice": "pw-alice", "bob": "pw-bob"},
                                  args=["--batch-delay", "0"])
        self.srv.start()
        self.c = self.srv.client()
        self.assertEqual(self.c.login("alice", "pw-alice").status, 303)
        self.alice = self.user_id("alice")

    def tearDown(self):
        self.srv.cleanup()

    # --- the database, written directly (the bench's way of making a library) ---
    def user_id(self, name):
        return self.srv.query("SELECT id FROM users WHERE name = ?", (name,))[0][0]

    def execute(self, sql, params=()):
        if self.srv.db_url:
            harness.query(self.srv.db_url, sql, params)
            return
        db = sqlite3.connect(self.srv.db, timeout=30)
        try:
            with db:
                db.execute(sql, params)
        finally:
            db.close()

    def add_rows(self, user, rows):
        """rows: (name, sort_at, created_at); the kept count goes up with them, as the
        store's rules do it."""
        values, params = [], []
        for name, sort_at, created in rows:
            sha = f"{user:04d}{name}".encode().hex()[:64].ljust(64, "0")
            values.append("(?, ?, 'jpeg', 1000, ?, ?, ?, ?)")
            params += [user, name, sha, f"o/{sha}", created, sort_at]
        self.execute("INSERT INTO photos (user_id, name, format, size, sha256, blob_key, "
                     "created_at, sort_at) VALUES " + ", ".join(values), params)
        self.execute("UPDATE users SET photo_count = photo_count + ? WHERE id = ?",
                     (len(rows), user))

    def make_library(self, n=N, user=None, tag="p"):
        """n rows: 20 sort times x 3 creation times, so groups of n/60 tie on both."""
        rows = [(f"{tag}{i:04d}.jpg", f"2020-01-{1 + i % 20:02d}T10:00:00",
                 1_700_000_000_000 + (i % 3) * 1000) for i in range(n)]
        random.Random(13).shuffle(rows)
        self.add_rows(user or self.alice, rows)

    def ordered(self, user=None):
        """The plain ordered list: newest first by sort time, creation time, then id."""
        rows = self.srv.query("SELECT id, sort_at, created_at FROM photos WHERE user_id = ?",
                              (user or self.alice,))
        return [r[0] for r in sorted(rows, key=lambda r: (r[1], r[2], r[0]), reverse=True)]

    def api(self, path, status=200):
        r = self.c.get(path, headers={"Accept": "application/json"})
        self.assertEqual(r.status, status, r.text)
        return r.json()

    def gallery(self, path):
        r = self.c.get(path)
        self.assertEqual(r.status, 200, r.text)
        return r.text, [int(i) for i in TILE.findall(r.text)]

    def kept(self, user=None):
        return self.srv.query("SELECT photo_count FROM users WHERE id = ?",
                              (user or self.alice,))[0][0]


class TestPaging(LibraryCase):
    def setUp(self):
        super().setUp()
        self.make_library()
        self.make_library(10, user=self.user_id("bob"), tag="b")
        self.want = self.ordered()
        self.assertEqual(len(self.want), N)

    def test_ties_are_ordered_by_id(self):
        rows = {r[0]: (r[1], r[2]) for r in self.srv.query(
            "SELECT id, sort_at, created_at FROM photos WHERE user_id = ?", (self.alice,))}
        got = [p["id"] for p in self.api("/api/photos?limit=500")["photos"]]
        self.assertEqual(got, self.want)
        tied = [i for i, j in zip(got, got[1:]) if rows[i] == rows[j]]
        self.assertGreater(len(tied), 100)   # the library really has ties...
        for i, j in zip(got, got[1:]):       # ...and they go by id, descending
            if rows[i] == rows[j]:
                self.assertGreater(i, j)

    def test_offsets_at_both_ends_and_across_the_middle(self):
        for limit in (50, 7):
            for off in list(range(0, N + 1, limit)) + [1, N // 2 - 3, N // 2, N - limit,
                                                       N - 1, N + 5]:
                j = self.api(f"/api/photos?limit={limit}&offset={off}")
                self.assertEqual(j["total"], N)
                self.assertEqual(j["offset"], off)
                self.assertEqual([p["id"] for p in j["photos"]], self.want[off:off + limit],
                                 f"limit {limit} offset {off}")

    def test_next_and_prev_walk_the_whole_list(self):
        j = self.api("/api/photos?limit=40")
        self.assertIsNone(j["prev"])
        got = [p["id"] for p in j["photos"]]
        while j["next"]:
            self.assertIn("before=", j["next"])
            j = self.api(j["next"])
            self.assertIsNone(j["offset"])
            got += [p["id"] for p in j["photos"]]
        self.assertEqual(got, self.want)
        # and back from the last offset
        j = self.api(f"/api/photos?limit=40&offset={N - 40}")
        self.assertIsNone(j["next"])
        back = [p["id"] for p in j["photos"]]
        while j["prev"]:
            self.assertIn("after=", j["prev"])
            j = self.api(j["prev"])
            back = [p["id"] for p in j["photos"]] + back
        self.assertEqual(back, self.want)

    def test_upload_filter_pages_alike(self):
        up = self.srv.query("SELECT id FROM uploads WHERE user_id = ?", (self.alice,))
        self.assertEqual(up, [])   # rows made in the database belong to no upload
        self.execute("UPDATE photos SET upload_id = 77 WHERE user_id = ? AND name LIKE 'p00%'",
                     (self.alice,))
        ids = {r[0] for r in self.srv.query(
            "SELECT id FROM photos WHERE upload_id = 77 AND user_id = ?", (self.alice,))}
        want = [i for i in self.want if i in ids]
        self.assertEqual(len(want), 100)
        for off in (0, 30, 60, 90, 99):
            j = self.api(f"/api/photos?upload=77&limit=30&offset={off}")
            self.assertEqual(j["total"], 100)
            self.assertEqual([p["id"] for p in j["photos"]], want[off:off + 30])
        j, got = self.api("/api/photos?upload=77&limit=30"), []
        got = [p["id"] for p in j["photos"]]
        while j["next"]:
            self.assertIn("upload=77", j["next"])
            j = self.api(j["next"])
            got += [p["id"] for p in j["photos"]]
        self.assertEqual(got, want)

    def test_gallery_numbered_pages_and_step_links(self):
        pages = -(-N // GALLERY_PAGE)
        for page in range(1, pages + 1):
            text, tiles = self.gallery(f"/photos/?page={page}")
            lo = (page - 1) * GALLERY_PAGE
            self.assertEqual(tiles, self.want[lo:lo + GALLERY_PAGE], f"page {page}")
            self.assertIn(f"{N} photos · page {page} of {pages}", text)
            self.assertIn(f'aria-current="page">{page}</span>', text)
        # Older from page 1 to the end, Newer back: the same photos, page numbers shown
        text, got = self.gallery("/photos/")
        self.assertIsNone(step_link(text, "&larr; Newer"))
        page = 1
        while (link := step_link(text, "Older")):
            self.assertIn("before=", link)
            page += 1
            text, tiles = self.gallery(link)
            self.assertIn(f"page {page} of {pages}", text)
            got += tiles
        self.assertEqual(got, self.want)
        self.assertEqual(page, pages)
        back = []
        while (link := step_link(text, "&larr; Newer")):
            back = tiles + back
            page -= 1
            text, tiles = self.gallery(link)
            self.assertIn(f"page {page} of {pages}", text)
        back = tiles + back
        self.assertEqual(back, self.want)
        self.assertEqual(page, 1)

    def test_cursor_survives_photos_added_meanwhile(self):
        j = self.api("/api/photos?limit=50")
        text, _ = self.gallery("/photos/")
        # 30 newer photos and 5 older than the page's end arrive
        self.add_rows(self.alice, [(f"new{i}.jpg", "2030-01-01T00:00:00", 1) for i in range(30)]
                      + [(f"old{i}.jpg", "2000-01-01T00:00:00", 1) for i in range(5)])
        now = self.ordered()
        self.assertEqual(len(now), N + 35)
        nxt = self.api(j["next"])
        self.assertEqual(nxt["total"], N + 35)
        self.assertEqual([p["id"] for p in nxt["photos"]], self.want[50:100])
        # the gallery's Older link goes on where page 1 ended, too
        _, tiles = self.gallery(step_link(text, "Older"))
        self.assertEqual(tiles, self.want[GALLERY_PAGE:2 * GALLERY_PAGE])
        # and the API's prev from there leads to the new photos, then ends
        prev = self.api(nxt["prev"])
        self.assertEqual([p["id"] for p in prev["photos"]], self.want[:50])
        prev = self.api(prev["prev"])
        self.assertEqual([p["id"] for p in prev["photos"]], now[:30])
        self.assertIsNone(prev["prev"])
        # a cursor whose photo is gone still names its place
        gone = self.want[49]
        self.assertEqual(self.c.json("DELETE", f"/api/photos/{gone}").status, 200)
        self.assertEqual([p["id"] for p in self.api(j["next"])["photos"]], self.want[50:100])

    def test_bad_cursor_is_400(self):
        j = self.api("/api/photos?limit=5")
        cursor = j["next"].split("before=", 1)[1]
        for q in ("before=nonsense", "after=2020-01-01T10:00:00_12", "before=_1_2",
                  "before=2020-01-01T10:00:00_x_5", "before=2020_1_0", "after=",
                  "before=2020-01-01T10:00:00_-1_5"):
            r = self.c.get("/api/photos?" + q, headers={"Accept": "application/json"})
            self.assertEqual(r.status, 400, q)
            self.assertIn("bad cursor", r.json()["error"], q)
            r = self.c.get("/photos/?page=2&" + q)
            self.assertEqual(r.status, 400, q)
            self.assertIn("bad cursor", r.text, q)
        r = self.c.get(f"/api/photos?before={cursor}&after={cursor}",
                       headers={"Accept": "application/json"})
        self.assertEqual(r.status, 400)
        self.assertIn("not both", r.json()["error"])
        r = self.c.get(f"/api/photos?before={cursor}&offset=5",
                       headers={"Accept": "application/json"})
        self.assertEqual(r.status, 400)
        self.assertIn("not both", r.json()["error"])

    def test_other_users_library_is_not_seen(self):
        bob = harness.Client(self.srv.port)
        self.assertEqual(bob.login("bob", "pw-bob").status, 303)
        j = bob.get("/api/photos?limit=100", headers={"Accept": "application/json"}).json()
        self.assertEqual(j["total"], 10)
        self.assertEqual([p["id"] for p in j["photos"]], self.ordered(self.user_id("bob")))
        # alice's cursor in bob's hands lists bob's photos, never alice's
        nxt = self.api("/api/photos?limit=5")["next"]
        j = bob.get(nxt, headers={"Accept": "application/json"}).json()
        self.assertTrue(set(p["id"] for p in j["photos"]) <= set(self.ordered(self.user_id("bob"))))


class TestKeptCount(LibraryCase):
    def test_count_is_exact_across_uploads_duplicates_deletes_and_failures(self):
        images = photos.Images()
        self.addCleanup(images.cleanup)
        a, b, c = images.jpeg(1), images.jpeg(2), images.jpeg(3)

        def send(parts):
            r = upload(self.c, parts)
            self.assertEqual(r.status, 202, r.text)
            return wait_finished(self.c, r.json()["upload_id"])

        first = send([photos.data_part("a.jpg", a), photos.data_part("b.jpg", b),
                      photos.data_part("a-again.jpg", a), photos.data_part("c.jpg", c),
                      photos.data_part("broken.jpg", b"\xff\xd8\xff not a jpeg at all")])
        self.assertEqual((first["uploaded"], first["duplicates"], first["failed"]), (3, 1, 1))
        self.check_count(3)
        second = send([photos.data_part("b-renamed.jpg", b)])
        self.assertEqual(second["duplicates"], 1)
        self.check_count(3)
        # bob's copy of the same content is his, counted for him
        bob = harness.Client(self.srv.port)
        self.assertEqual(bob.login("bob", "pw-bob").status, 303)
        r = upload(bob, [photos.data_part("a.jpg", a)])
        wait_finished(bob, r.json()["upload_id"])
        self.assertEqual(self.kept(self.user_id("bob")), 1)
        self.check_count(3)
        pid = self.api("/api/photos")["photos"][0]["id"]
        self.assertEqual(self.c.json("DELETE", f"/api/photos/{pid}").status, 200)
        self.check_count(2)
        self.assertEqual(self.c.json("DELETE", f"/api/photos/{pid}").status, 404)
        self.check_count(2)
        # bob cannot delete alice's photo: her count stays
        other = self.api("/api/photos")["photos"][0]["id"]
        self.assertEqual(bob.json("DELETE", f"/api/photos/{other}").status, 404)
        self.check_count(2)
        self.assertEqual(self.kept(self.user_id("bob")), 1)

    def check_count(self, n):
        real = self.srv.query("SELECT count(*) FROM photos WHERE user_id = ?", (self.alice,))
        self.assertEqual(real[0][0], n)
        self.assertEqual(self.kept(), n)
        self.assertEqual(self.api("/api/photos")["total"], n)
        self.assertIn(f"{n} photos", self.gallery("/photos/")[0])

    def test_migration_fills_the_count_of_an_older_database(self):
        self.make_library(120)
        self.make_library(7, user=self.user_id("bob"), tag="b")
        self.srv.stop()
        # back to schema version 3: no kept count
        if self.srv.db_url:
            self.execute("ALTER TABLE users DROP COLUMN photo_count")
            self.execute("UPDATE schema_version SET version = 3")
        else:
            db = sqlite3.connect(self.srv.db)
            db.execute("ALTER TABLE users DROP COLUMN photo_count")
            db.execute("PRAGMA user_version = 3")
            db.commit()
            db.close()
        self.srv.start()
        self.c = self.srv.client()
        self.assertEqual(self.c.login("alice", "pw-alice").status, 303)
        self.assertEqual(self.kept(), 120)
        self.assertEqual(self.kept(self.user_id("bob")), 7)
        j = self.api("/api/photos?limit=10&offset=115")
        self.assertEqual(j["total"], 120)
        self.assertEqual([p["id"] for p in j["photos"]], self.ordered()[115:])


if __name__ == "__main__":
    unittest.main()
