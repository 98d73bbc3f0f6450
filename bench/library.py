#!/usr/bin/env python3
"""bench/library: does a big library slow Shoebox down? (issue 13)

Two servers (SQLite, `--batch-delay 0`), one with an empty library and one whose user
already has BENCH_LIBRARY (100,000) photos, made as rows directly in the database (no
images behind them: only the queries are measured). For each, in BENCH_ROUNDS (3)
interleaved rounds:
  - the gallery's first and last page (GET /photos/, /photos/?page=LAST, 48 tiles a
    page), median of 20 each;
  - the API's first and last offset (GET /api/photos?limit=50, &offset=N-50), median
    of 20 each;
  - the API's middle offset (offset=N/2, which still walks half the library's index)
    and the page after it by its cursor (its `next` link, before=: one range scan),
    median of 20 each;
  - a 200-photo upload (BENCH_COUNT, 1600x1200 JPEGs made once with Pillow) from the
    request to the last file done (../shared/bench/upload_bench.py), photos/s.
The goal: the 100,000-photo library within 10 % of the empty one on every figure that
is not already under a few milliseconds. Writes build/bench/library.json
(BENCH_LIBRARY_UPLOAD=0: the page timings only, no uploads, build/bench/library-pages.json).
"""
import hashlib
import http.client
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ingest import OUT, Server, upload  # noqa: E402

LIBRARY = int(os.environ.get("BENCH_LIBRARY", "100000"))
COUNT = int(os.environ.get("BENCH_COUNT", "200"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
UPLOAD = os.environ.get("BENCH_LIBRARY_UPLOAD", "1") != "0"   # 0: the page timings only
CORPUS = os.environ.get("SHOEBOX_LIBRARY_CORPUS", "/tmp/shoebox-library-corpus")
PAGE = 48   # GALLERY_PAGE_SIZE


def ensure_corpus():
    """BENCH_COUNT distinct 1600x1200 JPEGs (coloured noise, made once with vips)."""
    folder = os.path.join(CORPUS, str(COUNT))
    if os.path.isdir(folder) and len(os.listdir(folder)) >= COUNT:
        return folder
    os.makedirs(folder, exist_ok=True)
    rnd = random.Random(13)
    tmp = os.path.join(folder, "noise.v")
    for i in range(COUNT):
        gain = " ".join(f"{rnd.uniform(0.4, 1.2):.2f}" for _ in range(3))
        subprocess.run(["vips", "gaussnoise", tmp, "1600", "1200", "--mean", "128",
                        "--sigma", str(30 + i % 40), "--seed", str(i)], check=True)
        subprocess.run(["vips", "linear", tmp, os.path.join(folder, f"lib{i:04d}.jpg[Q=88]"),
                        gain, "0 0 0", "--uchar"], check=True)
    os.remove(tmp)
    return folder


def fill(server, n):
    """n photo rows for the bench user, straight into the database (one transaction)."""
    db = sqlite3.connect(os.path.join(server.dir, "shoebox.db"), timeout=60)
    uid = db.execute("SELECT id FROM users WHERE name = 'bench'").fetchone()[0]
    now = int(time.time() * 1000)
    rows = []
    for i in range(n):
        sha = hashlib.sha256(f"library-{i}".encode()).hexdigest()
        day = time.gmtime(1262304000 + i * 3600)
        rows.append((uid, f"IMG_{i:06d}.jpg", "jpeg", 3_000_000, sha, 4000, 3000,
                     time.strftime("%Y-%m-%dT%H:%M:%S", day), f"o/{sha[:2]}/{sha}", now,
                     time.strftime("%Y-%m-%dT%H:%M:%S", day)))
    with db:
        # the kept count (users.photo_count), as the store's rules keep it
        db.execute("UPDATE users SET photo_count = photo_count + ? WHERE id = ?", (n, uid))
        db.executemany("INSERT INTO photos (user_id, name, format, size, sha256, width, height, "
                       "taken_at, blob_key, created_at, sort_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.close()


def login(server):
    u = urllib.parse.urlsplit(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("GET", "/login")
    r = conn.getresponse()
    r.read()
    csrf = next(c.split(";")[0].split("=", 1)[1] for k, c in r.getheaders()
                if k.lower() == "set-cookie" and c.startswith("csrftoken="))
    body = urllib.parse.urlencode({"username": "bench", "password": "bench",
                                   "csrfmiddlewaretoken": csrf})
    conn.request("POST", "/login", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={csrf}"})
    r = conn.getresponse()
    r.read()
    sid = next(c.split(";")[0] for k, c in r.getheaders()
               if k.lower() == "set-cookie" and c.startswith("sessionid="))
    return conn, f"csrftoken={csrf}; {sid}"


def timed_get(conn, cookie, path, n=20):
    ms = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("GET", path, headers={"Cookie": cookie, "Accept": "application/json"})
        r = conn.getresponse()
        body = r.read()
        ms.append((time.perf_counter() - t0) * 1000)
        if r.status != 200:
            raise RuntimeError(f"GET {path}: {r.status} {body[:200]!r}")
    return statistics.median(ms), body


def measure(label, n_library, folder):
    server = Server()
    try:
        if n_library:
            fill(server, n_library)
        conn, cookie = login(server)
        first_ms, _ = timed_get(conn, cookie, "/photos/")
        api_first_ms, _ = timed_get(conn, cookie, "/api/photos?limit=50")
        last_page = max(1, -(-n_library // PAGE))
        page_ms, body = timed_get(conn, cookie, f"/photos/?page={last_page}")
        tiles = body.count(b'<li class="tile')
        off = max(0, n_library - 50)
        api_ms, body = timed_get(conn, cookie, f"/api/photos?limit=50&offset={off}")
        got = len(json.loads(body)["photos"])
        mid_ms, body = timed_get(conn, cookie, f"/api/photos?limit=50&offset={n_library // 2}")
        nxt = json.loads(body)["next"] or "/api/photos?limit=50"
        cur_ms, body = timed_get(conn, cookie, nxt)
        cur_got = len(json.loads(body)["photos"])
        conn.close()
        r = upload(server, folder, f"library-{label}")[0] if UPLOAD else {}
    finally:
        server.stop()
    return {"library": n_library, "gallery_first_page_ms": round(first_ms, 2),
            "gallery_last_page_ms": round(page_ms, 2), "api_first_offset_ms": round(api_first_ms, 2),
            "gallery_tiles": tiles, "api_last_offset_ms": round(api_ms, 2), "api_photos": got,
            "api_middle_offset_ms": round(mid_ms, 2), "api_middle_cursor_ms": round(cur_ms, 2),
            "api_cursor_photos": cur_got,
            "upload_photos_per_s": r.get("photos_per_s"), "upload_wall_s": r.get("wall_s"),
            "uploaded": r.get("uploaded"), "failed": r.get("failed")}


def main():
    os.makedirs(OUT, exist_ok=True)
    folder = ensure_corpus()
    rounds = []
    for i in range(ROUNDS):
        for label, n in (("empty", 0), ("full", LIBRARY)):
            res = measure(label, n, folder)
            res["round"] = i + 1
            res["load_avg"] = [round(x, 1) for x in os.getloadavg()]
            rounds.append(res)
            print(json.dumps(res), flush=True)
    med = {}
    for label, n in (("empty", 0), ("full", LIBRARY)):
        rs = [r for r in rounds if r["library"] == n]
        med[label] = {k: statistics.median(r[k] for r in rs if r[k] is not None)
                      for k in ("gallery_first_page_ms", "gallery_last_page_ms",
                          "api_first_offset_ms", "api_last_offset_ms",
                                "api_middle_offset_ms", "api_middle_cursor_ms",
                                "upload_photos_per_s")
                if any(r[k] is not None for r in rs)}
    if not UPLOAD:
        for m in med.values():
            m["upload_photos_per_s"] = float("nan")
    ratio = med["full"]["upload_photos_per_s"] / med["empty"]["upload_photos_per_s"]
    out = {"rounds": rounds, "median": med, "upload_full_vs_empty": round(ratio, 3),
           "load_avg": os.getloadavg()}
    with open(os.path.join(OUT, "library.json" if UPLOAD else "library-pages.json"), "w") as f:
        json.dump(out, f, indent=2)
    print(f"library of {LIBRARY:,}: gallery last page {med['full']['gallery_last_page_ms']:.1f} ms "
          f"(empty {med['empty']['gallery_last_page_ms']:.1f}), API last offset "
          f"{med['full']['api_last_offset_ms']:.1f} ms (empty {med['empty']['api_last_offset_ms']:.1f}), "
          f"API middle offset {med['full']['api_middle_offset_ms']:.1f} ms, its next page by "
          f"cursor {med['full']['api_middle_cursor_ms']:.1f} ms, "
          f"200-photo upload {med['full']['upload_photos_per_s']:.1f} photos/s against "
          f"{med['empty']['upload_photos_per_s']:.1f} empty: {ratio:.2f}x (goal >= 0.90)")


if __name__ == "__main__":
    main()
