#!/usr/bin/env python3
"""bench/progress: the progress endpoints under load (issue 4).

1. starts `shoebox serve --batch-delay 0.5 --batch-pacing strict` on a free loopback
   port with a fresh data dir and a user, and starts an upload of 200 generated JPEGs
   (vips CLI) that keeps the server processing (14 batches of 15 with a pause between
   them: strict, as with the default `yield` a lone upload's batches run back to back
   and it was over after the first wrk round, "0 files processed meanwhile"); a wrk
   round that would start after it finished first starts another such upload;
2. while it runs: `wrk -t2 -c64 -d10s` on GET /photos/upload-progress/ with the
   logged-in session cookie -> requests/s (target >= 20,000), latency, non-2xx count;
3. opens 500 SSE streams (GET /photos/upload-progress/stream?upload=ID, raw
   non-blocking sockets in this process; 10 users x 50, as one user may hold 64) on
   uploads kept open (announced 1000 files, 1 sent) and reads the server's VmRSS
   from /proc before and after -> MB for 500 streams (target < 50 MB); then the
   server's CPU while the 500 streams sit idle for 5 s (the hub's cost).
Prints the figures and writes build/bench/progress.json.

The wrk run is repeated BENCH_WRK_ROUNDS times (3) on the same server and upload (the
machine is shared and noisy): every round is in the JSON, the median is the figure.
BENCH_SSE=0 leaves out part 3.

Environment: SHOEBOX_BIN, BENCH_FILES (200), BENCH_STREAMS (500), BENCH_WRK_SECONDS (10),
BENCH_LOG_LEVEL (server --log-level, default info as shipped), BENCH_PROGRESS_OUT (the
JSON's name), BENCH_PACING (--batch-pacing, strict; empty: no such option, for a binary
older than it, whose pacing was strict). With SHOEBOX_TEST_DB=pg and SHOEBOX_TEST_PG set (bench/pg.py does) the
server runs on PostgreSQL (tests/integration/harness.py).
"""
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Server, wait_until  # noqa: E402
from photos import Images, Part, data_part, multipart  # noqa: E402
from test_progress import RawStream, pump  # noqa: E402

FILES = int(os.environ.get("BENCH_FILES", "200"))
STREAMS = int(os.environ.get("BENCH_STREAMS", "500"))
WRK_SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "10"))
LOG_LEVEL = os.environ.get("BENCH_LOG_LEVEL", "info")
WRK_ROUNDS = int(os.environ.get("BENCH_WRK_ROUNDS", "3"))
SSE = os.environ.get("BENCH_SSE", "1") != "0"
PACING = os.environ.get("BENCH_PACING", "strict")
PER_USER = 50
PW = "bench"
OUT = os.path.join(ROOT, "build", "bench")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cookie_header(c):
    return "Cookie: " + "; ".join(f"{k}={v}" for k, v in c.cookies.items())


def post_files(c, files, expected=None):
    parts = [Part("csrfmiddlewaretoken", value=c.cookies["csrftoken"])]
    if expected:
        parts.append(Part("expected", value=str(expected)))
    parts += [data_part(n, d) for n, d in files]
    ctype, length, body = multipart(parts)
    r = c.request("POST", "/photos/upload/", body=b"".join(body),
                  headers={"Content-Type": ctype, "Content-Length": str(length),
                           "Accept": "application/json"})
    if r.status != 202:
        raise RuntimeError(f"upload: {r.status} {r.text}")
    return r.json()["upload_id"]


def progress(c, uid):
    return c.get(f"/photos/upload-progress/?upload={uid}",
                 headers={"Accept": "application/json"}).json()


def parse_wrk(text):
    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["requests_per_s"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors:(.*)", text)
    out["socket_errors"] = m.group(1).strip() if m else ""
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if m:
            v = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
            out[f"latency_p{pct}_ms"] = round(v, 3)
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    users = ["bench"] + [f"s{i}" for i in range((STREAMS + PER_USER - 1) // PER_USER)]
    pacing = ["--batch-pacing", PACING] if PACING else []  # "": a binary from before it
    srv = Server(users={u: PW for u in users},
                 args=["--batch-delay", "0.5", *pacing, "--log-level", LOG_LEVEL])
    images = Images()
    result = {"files": FILES, "streams": STREAMS, "log_level": LOG_LEVEL,
              "cores": os.cpu_count()}
    try:
        srv.start()
        pid = srv.proc.pid
        c = srv.client()
        c.login("bench", PW)

        # 1. an upload that keeps the server busy (a new one, of new files, for a
        #    round that would start after the last one finished)
        def start_upload(n):
            files = [(f"b{n}-{i:03}.jpg", images.jpeg(n * FILES + i + 1)) for i in range(FILES)]
            uid = post_files(c, files)
            wait_until(lambda: progress(c, uid)["current_batch"] >= 1, timeout=60,
                       what="the first batch")
            return uid

        uid = start_upload(0)
        uploads = 1

        # 2. wrk on the JSON endpoint while it runs, BENCH_WRK_ROUNDS times
        url = f"http://127.0.0.1:{srv.port}/photos/upload-progress/"
        rounds = []
        for _ in range(WRK_ROUNDS):
            if progress(c, uid)["status"] != "processing":
                uid = start_upload(uploads)
                uploads += 1
            before = progress(c, uid)
            cpu0 = cpu_s(pid)
            wrk = subprocess.run(["wrk", "-t2", "-c64", f"-d{WRK_SECONDS}s", "--latency",
                                  "-H", cookie_header(c), url],
                                 capture_output=True, text=True, timeout=WRK_SECONDS + 60)
            after = progress(c, uid)
            r = parse_wrk(wrk.stdout)
            r["server_cpu_s"] = round(cpu_s(pid) - cpu0, 2)
            # CPU per request: what the server spends, less bent by a busy machine
            r["server_cpu_us_per_request"] = round(
                1e6 * r["server_cpu_s"] / max(r["requests"] or 1, 1), 1)
            r["upload_processed_during"] = after["processed"] - before["processed"]
            r["upload_running_at_end"] = after["status"] == "processing"
            r["loadavg"] = os.getloadavg()[0]
            r["raw"] = wrk.stdout
            rounds.append(r)
            print(wrk.stdout, flush=True)
        by_rate = sorted(rounds, key=lambda r: r["requests_per_s"] or 0)
        result["wrk"] = dict(by_rate[len(by_rate) // 2])
        result["wrk_rounds"] = [{k: v for k, v in r.items() if k != "raw"} for r in rounds]
        final = wait_until(lambda: (lambda p: p if p["status"] != "processing" else None)(
            progress(c, uid)), timeout=300, interval=0.5, what="the upload to finish")
        result["uploads"] = uploads
        result["upload_final"] = {k: final[k] for k in
                                  ("status", "total", "processed", "uploaded", "failed")}

        if not SSE:
            return finish(result, None, [])
        # 3. 500 SSE streams on uploads kept open
        followed = []
        for u in users[1:]:
            cu = srv.client()
            cu.login(u, PW)
            uid_u = post_files(cu, [(f"{u}.jpg", images.jpeg(10000 + len(followed)))],
                               expected=1000)
            followed.append((cu, uid_u))
        rss0 = rss_kb(pid)
        streams = []
        t0 = time.monotonic()
        for i in range(STREAMS):
            cu, uid_u = followed[i // PER_USER]
            # the server takes at most 256 connections from one address (hardening):
            # 200 streams from each of 127.0.0.2, .3, ...
            streams.append(RawStream(srv.port, f"/photos/upload-progress/stream?upload={uid_u}",
                                     cu.cookies, source=f"127.0.0.{2 + i // 200}"))
        pump(streams, lambda: all(s.events() for s in streams), 60, "first events")
        open_s = time.monotonic() - t0
        bad = [s.status for s in streams if s.status != 200 or s.closed]
        rss1 = rss_kb(pid)
        # idle cost: the hub ticks 4 times a second over 500 parked streams
        cpu0 = cpu_s(pid)
        time.sleep(5)
        idle_cpu = cpu_s(pid) - cpu0
        rss2 = rss_kb(pid)
        for s in streams:
            s.close()
        result["sse"] = {
            "streams_open": STREAMS - len(bad), "refused_or_closed": len(bad),
            "open_and_first_event_s": round(open_s, 2),
            "rss_before_mb": round(rss0 / 1024, 1), "rss_with_streams_mb": round(rss1 / 1024, 1),
            "rss_extra_mb": round((rss1 - rss0) / 1024, 1),
            "rss_extra_after_5s_mb": round((rss2 - rss0) / 1024, 1),
            "kb_per_stream": round((rss1 - rss0) / max(STREAMS, 1), 1),
            "idle_cpu_percent_5s": round(100 * idle_cpu / 5, 1),
        }
    finally:
        srv.cleanup()
        images.cleanup()

    return finish(result, result["sse"], bad)


def finish(result, s, bad):
    w = result["wrk"]
    rates = ", ".join(f"{r['requests_per_s']:.0f}" for r in result["wrk_rounds"])
    cpus = ", ".join(f"{r['server_cpu_us_per_request']}" for r in result["wrk_rounds"])
    print(f"progress: GET /photos/upload-progress/ {w['requests_per_s']:.0f} req/s, median of "
          f"rounds {rates} (p50 {w.get('latency_p50_ms')} ms, p99 {w.get('latency_p99_ms')} ms, "
          f"non-2xx {w['non_2xx']}, {w['upload_processed_during']} files processed meanwhile, "
          f"load average {w['loadavg']:.1f}); server CPU per request (us): {cpus}")
    if s:
        print(f"progress: {s['streams_open']} SSE streams: +{s['rss_extra_mb']} MB RSS "
              f"({s['kb_per_stream']} kB each; target < 50 MB), idle CPU "
              f"{s['idle_cpu_percent_5s']}%")
    with open(os.path.join(OUT, os.environ.get("BENCH_PROGRESS_OUT", "progress.json")), "w") as f:
        json.dump(result, f, indent=2)
    goal = 20000 if os.environ.get("SHOEBOX_TEST_DB") == "pg" else 50000
    ok = (w["requests_per_s"] or 0) >= goal and (not s or s["rss_extra_mb"] < 50) and not bad
    print(f"progress: targets (>= {goal} req/s" + (", < 50 MB for the streams" if s else "")
          + ") " + ("met" if ok else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
