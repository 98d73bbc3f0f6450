#!/usr/bin/env python3
"""bench/pg: Shoebox on PostgreSQL next to SQLite (issue 9). Figures, not tests.

Starts its own PostgreSQL 15 with tests/pgserver.py (a throwaway cluster, run as the
`postgres` user when root) and switches durability back ON for the bench (fsync,
synchronous_commit, full_page_writes: the tests switch them off) so the numbers are
honest, and keeps the cluster on disk under /var/tmp (BENCH_PG_PARENT), not in
/dev/shm; SQLite runs with its shipped settings (WAL, synchronous=FULL for serve).

1. ingest: the same BENCH_PG_FILES (60) generated JPEGs of 2000x1500 uploaded in one
   request to `serve --batch-delay 0` (2 workers), once on SQLite and once on
   PostgreSQL, BENCH_ROUNDS (2) rounds interleaved; photos/s from the request's start
   to the upload's end (polled every 0.05 s). Goal: PostgreSQL within 10 % of SQLite.
2. progress: bench/progress.py with its servers on this PostgreSQL (SHOEBOX_TEST_DB=pg);
   goal >= 20,000 requests/s on GET /photos/upload-progress/.
3. claims: bench_claims (bench/bench_claims.c, linked with the store library) with
   BENCH_CLAIM_WORKERS (8) processes on BENCH_CLAIM_FILES (10,000) QUEUED small files
   whose rows are made directly in the database; each worker claims (file_claim) and
   records a failed outcome (file_finish) until the queue is empty. On both backends.

Writes build/bench/pg.json (and build/bench/progress-pg.json). BENCH_PG_SKIP=progress,...
leaves parts out.
"""
import json
import os
import re
import sqlite3
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import pgserver  # noqa: E402

BUILD = os.environ.get("BENCH_BUILD", os.path.join(ROOT, "build"))
os.environ.setdefault("SHOEBOX_BIN", os.path.join(BUILD, "shoebox"))
import harness  # noqa: E402  (reads SHOEBOX_BIN)
from photos import Images, data_part, multipart  # noqa: E402

FILES = int(os.environ.get("BENCH_PG_FILES", "60"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
CLAIM_FILES = int(os.environ.get("BENCH_CLAIM_FILES", "10000"))
CLAIM_WORKERS = int(os.environ.get("BENCH_CLAIM_WORKERS", "8"))
SKIP = set(filter(None, os.environ.get("BENCH_PG_SKIP", "").split(",")))
OUT = os.path.join(BUILD, "bench")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def durable(pg):
    for name in ("fsync", "synchronous_commit", "full_page_writes"):
        pg.psql(f"ALTER SYSTEM SET {name} = on")
    pg.psql("SELECT pg_reload_conf()")
    time.sleep(0.5)
    got = pg.psql("SELECT current_setting('fsync') || current_setting('synchronous_commit') "
                  "|| current_setting('full_page_writes')").strip()
    if got != "ononon":
        raise RuntimeError(f"durability settings not applied: {got}")


def with_db(backend):
    """Servers made by harness.Server use PostgreSQL when backend == 'pg'."""
    if backend == "pg":
        os.environ["SHOEBOX_TEST_DB"] = "pg"
    else:
        os.environ.pop("SHOEBOX_TEST_DB", None)


# --- 1. ingest ---------------------------------------------------------------------------

def ingest_once(backend, files):
    with_db(backend)
    srv = harness.Server(users={"bench": "bench"}, args=["--batch-delay", "0", "--workers", "2"])
    try:
        srv.start()
        c = srv.client()
        c.login("bench", "bench")
        parts = [data_part(n, d) for n, d in files]
        ctype, length, body = multipart(parts)
        data = b"".join(body)
        t0 = time.monotonic()
        r = c.request("POST", "/photos/upload/", body=data,
                      headers={"Content-Type": ctype, "Accept": "application/json",
                               "X-CSRFToken": c.cookies["csrftoken"]})
        if r.status != 202:
            raise RuntimeError(f"upload: {r.status} {r.text}")
        uid = r.json()["upload_id"]

        def finished():
            u = c.get(f"/api/uploads/{uid}", headers={"Accept": "application/json"}).json()
            return u if u["finished_at"] is not None else None
        u = harness.wait_until(finished, timeout=900, interval=0.05, what="the upload")
        wall = time.monotonic() - t0
        return {"photos_per_s": round(len(files) / wall, 2), "wall_s": round(wall, 2),
                "uploaded": u["uploaded"], "failed": u["failed"], "load": loadavg()}
    finally:
        srv.cleanup()
        with_db("sqlite")


def ingest(images):
    files = [(f"i{i:03d}.jpg", images.jpeg(i + 1, 2000, 1500)) for i in range(FILES)]
    rounds = []
    for r in range(ROUNDS):
        one = {}
        for backend in (("sqlite", "pg") if r % 2 == 0 else ("pg", "sqlite")):
            one[backend] = ingest_once(backend, files)
        one["pg_vs_sqlite"] = round(one["pg"]["photos_per_s"] / one["sqlite"]["photos_per_s"], 3)
        print(f"ingest round {r + 1}/{ROUNDS}: SQLite {one['sqlite']['photos_per_s']} photos/s, "
              f"PostgreSQL {one['pg']['photos_per_s']} photos/s, ratio {one['pg_vs_sqlite']} "
              f"(load {loadavg()})", flush=True)
        rounds.append(one)
    tot = {b: sum(x[b]["wall_s"] for x in rounds) for b in ("sqlite", "pg")}
    return {"files": FILES, "size": "2000x1500", "rounds": rounds,
            "pg_vs_sqlite_overall": round(tot["sqlite"] / tot["pg"], 3)}


# --- 2. progress ---------------------------------------------------------------------------

def progress(pg):
    env = dict(os.environ, SHOEBOX_TEST_DB="pg", BENCH_PROGRESS_OUT="progress-pg.json")
    env.update(pg.env())
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "progress.py")],
                          env=env, capture_output=True, text=True, timeout=900)
    print("\n".join(ln for ln in proc.stdout.splitlines() if ln.startswith("progress:")),
          flush=True)
    if proc.returncode != 0:
        # wrk's figure is printed before the SSE part: keep it, and say what failed.
        m = re.search(r"Requests/sec:\s+([\d.]+)", proc.stdout)
        err = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"bench/progress.py failed: {err}", flush=True)
        return {"wrk": {"requests_per_s": float(m.group(1)) if m else None},
                "failed": err}
    with open(os.path.join(OUT, "progress-pg.json")) as f:
        r = json.load(f)
    r["wrk"].pop("raw", None)
    return r


# --- 3. claims -----------------------------------------------------------------------------

QUEUE_SQL = """
INSERT INTO uploads (id, user_id, created_at, updated_at, expected, total, queued_files,
                     current_batch, batch_size)
VALUES (1, {uid}, {now}, {now}, {n}, {n}, {n}, 1, {n});
INSERT INTO upload_files (upload_id, user_id, seq, state, name, size, sha256, batch_no,
                          available_at, queued_at, created_at, updated_at)
SELECT 1, {uid}, s, 'queued', 'f' || s || '.jpg', 1000, '', 1, 0, {now} + s, {now}, {now}
FROM {series};
"""


def claims_once(backend, pg, tmp):
    data = os.path.join(tmp, backend)
    os.makedirs(data)
    if backend == "pg":
        db = pg.url(f"claims_{os.getpid()}")
        pg.create_db(f"claims_{os.getpid()}")
    else:
        db = os.path.join(data, "shoebox.db")
    subprocess.run([os.environ["SHOEBOX_BIN"], "user", "add", "bench", "--password-stdin",
                    "--data", data, "--db", db], input="bench\n", text=True, check=True,
                   capture_output=True)
    now = int(time.time() * 1000)
    if backend == "pg":
        uid = int(harness.query(db, "SELECT id FROM users WHERE name = 'bench'")[0][0])
        harness.psql(db, QUEUE_SQL.format(uid=uid, now=now, n=CLAIM_FILES,
                                          series=f"generate_series(1, {CLAIM_FILES}) AS s"))
    else:
        with sqlite3.connect(db) as conn:
            uid = conn.execute("SELECT id FROM users WHERE name = 'bench'").fetchone()[0]
            conn.executescript(QUEUE_SQL.format(
                uid=uid, now=now, n=CLAIM_FILES,
                series=f"(WITH RECURSIVE c(s) AS (SELECT 1 UNION ALL SELECT s + 1 FROM c "
                       f"WHERE s < {CLAIM_FILES}) SELECT s FROM c)"))
    proc = subprocess.run([os.path.join(BUILD, "bench_claims"), db, str(CLAIM_WORKERS)],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_claims on {backend}: {proc.stdout}{proc.stderr[-3000:]}")
    r = dict(kv.split("=") for kv in proc.stdout.split())
    left = harness.query(db, "SELECT COUNT(*) FROM upload_files WHERE state <> 'failed'")[0][0]
    counted = harness.query(db, "SELECT processed, failed FROM uploads WHERE id = 1")[0]
    if int(r["claims"]) != CLAIM_FILES or left != 0 or tuple(counted) != (CLAIM_FILES,) * 2:
        raise RuntimeError(f"{backend}: {r}, {left} not failed, counters {counted}")
    if backend == "pg":
        pg.drop_db(f"claims_{os.getpid()}")
    out = {"claims": int(r["claims"]), "retries": int(r["retries"]),
           "seconds": float(r["seconds"]),
           "claims_per_s": float(r["claims_per_s"]), "load": loadavg()}
    print(f"claims on {backend}: {out['claims_per_s']:.0f}/s ({CLAIM_WORKERS} workers, "
          f"{CLAIM_FILES} files, {out['seconds']} s, {out['retries']} transient errors retried, "
          f"load {out['load']})", flush=True)
    return out


def claims(pg):
    import tempfile
    import shutil
    tmp = tempfile.mkdtemp(prefix="shoebox-claims-")
    try:
        return {"workers": CLAIM_WORKERS, "files": CLAIM_FILES,
                "sqlite": claims_once("sqlite", pg, tmp), "pg": claims_once("pg", pg, tmp)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    if not pgserver.available():
        print("bench/pg: PostgreSQL is not installed (scripts/install-deps.sh test)")
        return 1
    res = {"cores": os.cpu_count(), "load_at_start": loadavg(),
           "postgresql": "fsync=on synchronous_commit=on full_page_writes=on"}
    # On a disk, not in /dev/shm where the tests keep theirs: fsync on tmpfs costs nothing.
    import tempfile
    pg_dir = tempfile.mkdtemp(prefix="shoebox-benchpg-",
                              dir=os.environ.get("BENCH_PG_PARENT", "/var/tmp"))
    res["cluster_dir"] = pg_dir
    pg = pgserver.start(pg_dir)
    images = Images()
    try:
        durable(pg)
        os.environ.update(pg.env())
        res["server_version"] = pg.psql("SHOW server_version").strip()
        if "claims" not in SKIP:
            res["claims"] = claims(pg)
        if "ingest" not in SKIP:
            res["ingest"] = ingest(images)
        if "progress" not in SKIP:
            res["progress_pg"] = progress(pg)
    finally:
        images.cleanup()
        pg.stop()
    res["load_at_end"] = loadavg()
    with open(os.path.join(OUT, "pg.json"), "w") as f:
        json.dump(res, f, indent=2)
    print("\n== bench/pg (PostgreSQL {}, fsync on; {} cores; load {} -> {}) ==".format(
        res["server_version"], res["cores"], res["load_at_start"], res["load_at_end"]))
    if "ingest" in res:
        i = res["ingest"]
        print(f"ingest {i['files']} x {i['size']}: PostgreSQL / SQLite = "
              f"{i['pg_vs_sqlite_overall']} (goal >= 0.90; rounds: "
              f"{', '.join(str(x['pg_vs_sqlite']) for x in i['rounds'])})")
    if "progress_pg" in res:
        print(f"progress on PostgreSQL: {res['progress_pg']['wrk']['requests_per_s']:.0f} req/s "
              "(goal >= 20000)")
    if "claims" in res:
        c = res["claims"]
        print(f"claims, {c['workers']} workers, {c['files']} files: PostgreSQL "
              f"{c['pg']['claims_per_s']:.0f}/s, SQLite {c['sqlite']['claims_per_s']:.0f}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
