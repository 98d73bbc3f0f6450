#!/usr/bin/env python3
"""bench/batchdelay: one large upload at default settings against `--batch-delay 0` (issue 13).

The default `--batch-delay 0.5` is a yield (`--batch-pacing yield`): it lends the workers to
other uploads waiting for one, and with none waiting the next batch starts at once. So one
upload alone should take about as long with the default as with no delay (goal: within
10 %); the seed's literal pause (`--batch-pacing strict`) is timed once for reference.

1. makes (once) BENCH_PHOTOS (1000) distinct photos from the ingest corpus (bench/ingest.py:
   ../shared/bench/make_corpus.sh, 12 MP camera-like JPEGs, BENCH_COUNT of them, 200):
   the corpus files themselves, then copies with a JPEG comment segment after the start
   marker naming the copy, so every file has its own SHA-256 (no duplicate shortcut) and
   the same decoding work.
2. each of BENCH_ROUNDS (3) rounds starts a fresh `shoebox serve` twice, once with the
   default batch settings and once with `--batch-delay 0` (the order alternates between
   rounds, against the machine's drift), and uploads all files in ONE request with
   ../shared/bench/upload_bench.py, reading wall time and photos/s
3. BENCH_STRICT=1 (the default) adds one run with `--batch-pacing strict`
Writes build/bench/batchdelay.json; the verdict uses the medians.
"""
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ingest  # noqa: E402  (corpus, upload client, median: the same as the ingest bench)

COUNT = int(os.environ.get("BENCH_PHOTOS", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
STRICT = os.environ.get("BENCH_STRICT", "1") == "1"
EVENT_RE = re.compile(r"^ts=(\S+) .*event=(batch\.start|file\.done) upload=\d+ batch=(\d+)")
GOAL = 1.10  # default settings within 10 % of --batch-delay 0
SETTINGS = {"default": [], "delay0": ["--batch-delay", "0"],
            "strict": ["--batch-pacing", "strict"]}


class Server:
    """`shoebox serve` with the given batch options only (ingest.Server forces delay 0)."""

    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="shoebox-bench-")
        self.port = ingest.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        subprocess.run([ingest.BIN, "user", "add", "bench", "--password-stdin", "--data",
                        self.dir], input=b"bench\n", check=True, capture_output=True)
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen([ingest.BIN, "serve", "--listen", f"127.0.0.1:{self.port}",
                                      "--data", self.dir, *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def batches(self):
        """Batches opened, and the pauses between them: from the last file.done of batch N
        to batch.start of N + 1 (the log's ms timestamps), summed and the largest. A
        figure the machine's load hardly moves, unlike the wall time."""
        ends, starts = {}, {}
        with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
            for line in f:
                m = EVENT_RE.search(line)
                if not m:
                    continue
                ts = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
                batch = int(m.group(3))
                if m.group(2) == "batch.start":
                    starts[batch] = ts
                else:
                    ends[batch] = max(ends.get(batch, 0), ts)
        gaps = [starts[b + 1] - ends[b] for b in sorted(ends) if b + 1 in starts]
        return {"batches": len(starts), "pause_sum_s": round(sum(gaps), 2),
                "pause_max_s": round(max(gaps), 3) if gaps else 0}

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def variant(data, k):
    """The same JPEG with a comment segment (FF FE) after SOI naming copy k."""
    text = b"shoebox bench copy %d" % k
    return data[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + data[2:]


def ensure_files(folder):
    """COUNT distinct files under CORPUS/batchdelay-COUNT-SOURCES (kept between runs)."""
    src = sorted(f for f in os.listdir(folder) if f.endswith(".jpg"))
    out = os.path.join(ingest.CORPUS, f"batchdelay-{COUNT}-{len(src)}")
    if os.path.isdir(out) and len(os.listdir(out)) >= COUNT:
        return out
    os.makedirs(out, exist_ok=True)
    print(f"making {COUNT} distinct photos from {len(src)} in {out} (once)", flush=True)
    for i in range(COUNT):
        name = os.path.join(out, f"photo_{i:05d}.jpg")
        if os.path.exists(name):
            continue
        path = os.path.join(folder, src[i % len(src)])
        if i < len(src):
            os.link(path, name)
            continue
        with open(path, "rb") as f:
            data = f.read()
        with open(name + ".tmp", "wb") as f:
            f.write(variant(data, i // len(src)))
        os.rename(name + ".tmp", name)
    return out


def run(folder, label):
    server = Server(*SETTINGS[label])
    try:
        r, first = ingest.upload(server, folder, f"batchdelay-{label}")
        batches = server.batches()
    finally:
        server.stop()
    return {"wall_s": r.get("wall_s"), "photos_per_s": r.get("photos_per_s"),
            "uploaded": r.get("uploaded"), "failed": r.get("failed"), **batches,
            "first_thumbnail_s": first, "status": r.get("final_status"),
            "other_cpu_s": (r.get("cpu") or {}).get("other_cpu_s")}


def main():
    os.makedirs(ingest.OUT, exist_ok=True)
    folder = ensure_files(ingest.ensure_corpus())
    res = {"files": COUNT, "cores": os.cpu_count(), "rounds": [],
           "load_before": os.getloadavg()[0]}
    for r in range(ROUNDS):
        order = ("default", "delay0") if r % 2 == 0 else ("delay0", "default")
        one = {label: run(folder, label) for label in order}
        if one["default"]["wall_s"] and one["delay0"]["wall_s"]:
            one["default_over_delay0"] = round(one["default"]["wall_s"] / one["delay0"]["wall_s"], 3)
        res["rounds"].append(one)
        print(f"round {r + 1}/{ROUNDS}: default {one['default']['wall_s']} s "
              f"({one['default']['photos_per_s']} photos/s, {one['default']['batches']} batches, "
              f"pauses {one['default']['pause_sum_s']} s), "
              f"--batch-delay 0 {one['delay0']['wall_s']} s "
              f"({one['delay0']['photos_per_s']} photos/s, pauses {one['delay0']['pause_sum_s']} s), "
              f"ratio {one.get('default_over_delay0')}", flush=True)
    if STRICT:
        res["strict"] = run(folder, "strict")
        print(f"--batch-pacing strict (the seed's pause): {res['strict']['wall_s']} s "
              f"({res['strict']['photos_per_s']} photos/s, pauses {res['strict']['pause_sum_s']} s)",
              flush=True)
    rounds = res["rounds"]
    med = {k: ingest.median([x[k]["wall_s"] for x in rounds]) for k in ("default", "delay0")}
    res["median_wall_s"] = med
    res["load_after"] = os.getloadavg()[0]
    if med["default"] and med["delay0"]:
        res["default_over_delay0"] = round(med["default"] / med["delay0"], 3)
        res["goal_met"] = res["default_over_delay0"] <= GOAL
    with open(os.path.join(ingest.OUT, "batchdelay.json"), "w") as f:
        json.dump(res, f, indent=2)
    print(f"\n== bench/batchdelay ({COUNT} photos in one upload, {res['cores']} cores, median of "
          f"{ROUNDS} rounds) ==")
    for k, name in (("default", "default (--batch-delay 0.5, yield)"),
                    ("delay0", "--batch-delay 0                   ")):
        print(f"{name}: {med[k]} s (rounds: {', '.join(str(x[k]['wall_s']) for x in rounds)}; "
              f"pauses between batches: {', '.join(str(x[k]['pause_sum_s']) for x in rounds)} s)")
    if STRICT:
        print(f"--batch-pacing strict (one run)   : {res['strict']['wall_s']} s "
              f"(pauses {res['strict']['pause_sum_s']} s)")
    print(f"default / delay 0                 : {res.get('default_over_delay0')} "
          f"(each round: {', '.join(str(x.get('default_over_delay0')) for x in rounds)}; "
          f"goal <= {GOAL})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
