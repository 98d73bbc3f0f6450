#!/usr/bin/env python3
"""bench/handoff: what the hand-off (issue 10) costs an upload request.

Receiving only (`serve --workers 0`, so no decoding competes): one request with
BENCH_FILES (40) distinct ~BENCH_MP-megapixel noise JPEGs (variants of one image, made
once with the vips command line), timed from the first byte sent to the 202. Binaries:
BEFORE (SHOEBOX_BIN_BEFORE, e.g. the main branch's build/shoebox: the file is recorded
with its spool path, no hand-off) and AFTER (build/shoebox: hand-off into DATA/blobs, a
hard link) and AFTER with --blobs on another file system (/dev/shm: a copy through a
blob writer). BENCH_ROUNDS (3) rounds, the variants interleaved in each; medians.
Prints a table and writes build/bench/handoff.json.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
import photos  # noqa: E402

FILES = int(os.environ.get("BENCH_FILES", "40"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
MP = int(os.environ.get("BENCH_MP", "12"))
BEFORE = os.environ.get("SHOEBOX_BIN_BEFORE", "")
AFTER = os.path.join(ROOT, "build", "shoebox")
OUT = os.path.join(ROOT, "build", "bench")


def one(binary, files, extra):
    harness.BIN = binary
    srv = harness.Server(users={"bench": "bench-pw"}, args=["--workers", "0", *extra])
    srv._check_backend = lambda: None  # an older binary logs no db=
    try:
        srv.start()
        c = srv.client()
        assert c.login("bench", "bench-pw").status == 303
        parts = [photos.Part("csrfmiddlewaretoken", value=c.cookies["csrftoken"])]
        parts += [photos.data_part(f"b-{i:03d}.jpg", d) for i, d in enumerate(files)]
        ctype, length, body = photos.multipart(parts)
        payload = b"".join(body)
        t0 = time.monotonic()
        r = c.request("POST", "/photos/upload/", body=payload,
                      headers={"Content-Type": ctype, "Content-Length": str(length),
                               "Accept": "application/json"})
        dt = time.monotonic() - t0
        assert r.status == 202, r.text
        return dt, len(payload)
    finally:
        srv.cleanup()


def main():
    imgs = photos.Images()
    w, h = 4 * int((MP * 1e6 / 12) ** 0.5), 3 * int((MP * 1e6 / 12) ** 0.5)
    files = [imgs.jpeg(i + 1, w, h) for i in range(FILES)]
    imgs.cleanup()
    shm = tempfile.mkdtemp(prefix="shoebox-bench-blobs-", dir="/dev/shm")
    variants = [("after (link)", AFTER, [])]
    if BEFORE:
        variants.insert(0, ("before", BEFORE, []))
    variants.append(("after, --blobs on /dev/shm (copy)", AFTER, ["--blobs", shm]))
    res = {name: [] for name, _, _ in variants}
    size = 0
    try:
        for r in range(ROUNDS):
            for name, binary, extra in variants:
                dt, size = one(binary, files, extra)
                res[name].append(round(dt, 3))
                shutil.rmtree(shm, ignore_errors=True)
                os.makedirs(shm, exist_ok=True)
            print(f"round {r + 1}/{ROUNDS}: " + ", ".join(f"{n} {res[n][-1]} s" for n in res),
                  flush=True)
    finally:
        shutil.rmtree(shm, ignore_errors=True)
    mib = size / 2**20
    print(f"\n== bench/handoff: one request, {FILES} files, {mib:.0f} MiB, "
          f"median of {ROUNDS} rounds ==")
    out = {"files": FILES, "mib": round(mib, 1), "rounds": res, "median_s": {}}
    for n, xs in res.items():
        med = statistics.median(xs)
        out["median_s"][n] = med
        print(f"{n:36s}: {med:6.2f} s  {mib / med:6.1f} MiB/s  (rounds: {xs})")
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "handoff.json"), "w") as f:
        json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
