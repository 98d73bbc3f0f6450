#!/usr/bin/env python3
"""bench/scaleout: worker hosts on one PostgreSQL (issue 10). Figures, not tests.

One throwaway PostgreSQL (tests/pgserver.py: in /dev/shm, durability off as in the
tests: PostgreSQL is not what is measured), one `serve --workers 0 --batch-delay 0`
web node, and 1, 2 and 4 worker hosts (`shoebox worker --processes 1`), all sharing one
blob directory (--blobs DIR). Each host's whole process tree is held to a quarter of a
core by its own cgroup (tests/netns.py CpuQuota: v1 cpu.cfs_quota_us, v2 cpu.max): the
host joins it between fork and exec (preexec_fn), so the decoder process it forks later
is born inside; the bench checks that in /proc/PID/cgroup of every process of the tree.

The same BENCH_SCALEOUT_FILES (200) photos of the bench corpus (camera-like 12 MP JPEGs
made by ../shared/bench/make_corpus.sh into SHOEBOX_CORPUS, /tmp/shoebox-corpus, as
bench/ingest.py does) are uploaded in one request for each host count, on a fresh
database and blob directory. Timed from the upload's acknowledgement (the 202) to the
progress API's final status (polled every 0.1 s); photos/s per host count, speed-up
1 -> 4 hosts (goal >= 3.2x). BENCH_ROUNDS (2) rounds, host counts interleaved
(1, 2, 4 then 4, 2, 1). Also per run: CPU seconds of the web node, of PostgreSQL and of
each host's tree, and how long the hosts' cgroups were throttled (what limits it).

--s3 (or BENCH_SCALEOUT_S3=1) adds the issue's second figure, --s3-only runs it alone: the
cost of the object store on one machine. `serve --workers 2` (BENCH_SCALEOUT_S3_WORKERS)
with its own workers and no quota, the same photos with --blobs DIR and with --blobs
s3:// on a RADOS Gateway (tests/rgwserver.py: one monitor, one in-memory OSD, radosgw on
this machine), BENCH_ROUNDS rounds in alternating order; time to the 202 (the hand-off:
it waits for the originals to be in the store), photos/s after it and from the first
byte, CPU seconds of the web node and its workers, PostgreSQL and the Ceph daemons.

Writes build/bench/scaleout.json.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import netns  # noqa: E402
import pgserver  # noqa: E402

BUILD = os.environ.get("BENCH_BUILD", os.path.join(ROOT, "build"))
os.environ.setdefault("SHOEBOX_BIN", os.path.join(BUILD, "shoebox"))
import harness  # noqa: E402  (reads SHOEBOX_BIN)
from photos import file_part, multipart  # noqa: E402

BIN = os.environ["SHOEBOX_BIN"]
SHARED = os.environ.get("SHOEBOX_SHARED", os.path.join(ROOT, "..", "shared"))
CORPUS = os.environ.get("SHOEBOX_CORPUS", "/tmp/shoebox-corpus")
FILES = int(os.environ.get("BENCH_SCALEOUT_FILES", "200"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
HOSTS = [int(x) for x in os.environ.get("BENCH_SCALEOUT_HOSTS", "1,2,4").split(",")]
QUOTA = float(os.environ.get("BENCH_SCALEOUT_QUOTA", "0.25"))
S3 = "--s3" in sys.argv[1:] or os.environ.get("BENCH_SCALEOUT_S3") == "1"
S3_ONLY = "--s3-only" in sys.argv[1:]
S3_WORKERS = int(os.environ.get("BENCH_SCALEOUT_S3_WORKERS", "2"))
OUT = os.path.join(BUILD, "bench")
TICK = os.sysconf("SC_CLK_TCK")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def ensure_corpus():
    """FILES photos of the bench corpus (make_corpus.sh keeps what exists, makes the rest)."""
    folder = os.path.join(CORPUS, str(FILES))
    if not os.path.isdir(folder) or len(os.listdir(folder)) < FILES:
        print(f"making {FILES} corpus photos in {CORPUS} (~7 CPU-seconds each, once)", flush=True)
        subprocess.run([os.path.join(SHARED, "bench", "make_corpus.sh"), CORPUS, str(FILES)],
                       check=True, env=dict(os.environ, SETS=str(FILES)))
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".jpg"))


# --- process trees: their CPU time and their cgroup -----------------------------------------

def tree(pid):
    """pid and every descendant alive now."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def cpu_seconds(pid):
    """CPU of the tree under pid: each live process's own time plus its reaped children's."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        except OSError:
            pass
    return total / TICK


def in_group(pid, quota):
    name = os.path.basename(quota.path)
    ok = []
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/cgroup") as f:
                ok.append(any(ln.split(":", 2)[2].strip().endswith("/" + name)
                              for ln in f if "cpu" in ln.split(":", 2)[1] or ln.startswith("0::")))
        except OSError:
            pass
    return ok


def throttled_s(quota):
    """Seconds the group waited for its quota (v1 throttled_time ns, v2 throttled_usec)."""
    try:
        with open(os.path.join(quota.path, "cpu.stat")) as f:
            kv = dict(ln.split() for ln in f if ln.strip())
    except OSError:
        return None
    if "throttled_time" in kv:
        return int(kv["throttled_time"]) / 1e9
    if "throttled_usec" in kv:
        return int(kv["throttled_usec"]) / 1e6
    return None


# --- one run: a web node, N hosts, one upload -----------------------------------------------

class Cluster:
    def __init__(self, pg, hosts, tag, blobs=None, workers=0):
        self.tmp = tempfile.mkdtemp(prefix=f"shoebox-scaleout-{hosts}-")
        self.dbname = f"scaleout_{os.getpid()}_{tag}"
        self.db = pg.create_db(self.dbname)
        self.pg = pg
        self.blobs = blobs or os.path.join(self.tmp, "blobs")
        self.workers = workers
        self.extra = {}   # name -> pid of other processes whose CPU a run counts
        self.data = os.path.join(self.tmp, "data")
        os.makedirs(self.data)
        self.nhosts = hosts
        self.hosts, self.quotas, self.logs = [], [], []
        self.srv = None

    def start(self):
        subprocess.run([BIN, "user", "add", "bench", "--password-stdin", "--data", self.data,
                        "--db", self.db], input="bench\n", text=True, check=True,
                       capture_output=True)
        self.port = harness.free_port()
        self.srvlog = open(os.path.join(self.tmp, "serve.log"), "ab")
        self.srv = subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--data", self.data,
             "--db", self.db, "--blobs", self.blobs, "--workers", str(self.workers),
             "--batch-delay", "0"],
            stdout=self.srvlog, stderr=subprocess.STDOUT)
        harness.wait_until(self._healthy, timeout=30, what="the web node")
        for i in range(self.nhosts):
            self._host(i)

    def _healthy(self):
        if self.srv.poll() is not None:
            raise RuntimeError("the web node exited: " + self._read("serve.log"))
        try:
            return harness.Client(self.port).get("/healthz").status == 200
        except OSError:
            return False

    def _read(self, name):
        with open(os.path.join(self.tmp, name), errors="replace") as f:
            return f.read()

    def _host(self, i):
        q = netns.CpuQuota(f"scaleout-host{i}", QUOTA)
        name = f"host{i}.log"
        log = open(os.path.join(self.tmp, name), "ab")
        procs = q.procs

        def join():   # in the child, before exec: the host and all it forks are held
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        p = subprocess.Popen([BIN, "worker", "--db", self.db, "--blobs", self.blobs,
                              "--processes", "1"], stdout=log, stderr=subprocess.STDOUT,
                             preexec_fn=join)
        log.close()
        self.hosts.append(p)
        self.quotas.append(q)
        self.logs.append(name)
        harness.wait_until(lambda: "event=host.ready" in self._read(name) or p.poll() is not None,
                           timeout=30, what="a worker host")
        if p.poll() is not None:
            raise RuntimeError(f"worker host {i} exited: " + self._read(name))

    def check_groups(self):
        """Every process of every host's tree is in that host's group (and there are >= 2:
        the host and its decoder)."""
        out = []
        for p, q in zip(self.hosts, self.quotas):
            ok = in_group(p.pid, q)
            out.append({"processes": len(ok), "in_group": sum(ok)})
            if len(ok) < 2 or not all(ok):
                raise RuntimeError(f"host {p.pid}: {sum(ok)} of {len(ok)} processes in "
                                   f"{q.path} (expected the host and its decoder)")
        return out

    def upload(self, files):
        c = harness.Client(self.port)
        c.login("bench", "bench")
        ctype, length, body = multipart([file_part(f) for f in files])
        cpu0 = self.cpu()
        thr0 = [throttled_s(q) or 0 for q in self.quotas]
        t0 = time.monotonic()
        r = c.request("POST", "/photos/upload/", body=body,
                      headers={"Content-Type": ctype, "Content-Length": str(length),
                               "Accept": "application/json",
                               "X-CSRFToken": c.cookies["csrftoken"]})
        t_ack = time.monotonic()
        if r.status != 202:
            raise RuntimeError(f"upload: {r.status} {r.text}")
        uid = r.json()["upload_id"]
        groups = self.check_groups()   # the decoders are up and working by now

        def final():
            p = c.get(f"/photos/upload-progress/?upload={uid}",
                      headers={"Accept": "application/json"}).json()
            return p if p["status"] in ("completed", "failed") else None
        p = harness.wait_until(final, timeout=1800, interval=0.1, what="the upload")
        t_end = time.monotonic()
        cpu1 = self.cpu()
        thr1 = [throttled_s(q) or 0 for q in self.quotas]
        proc_s = t_end - t_ack
        return {"hosts": self.nhosts, "files": len(files), "uploaded": p["uploaded"],
                "failed": p["failed"], "status": p["status"],
                "send_s": round(t_ack - t0, 2), "process_s": round(proc_s, 2),
                "photos_per_s": round(len(files) / proc_s, 3),
                "photos_per_s_from_first_byte": round(len(files) / (t_end - t0), 3),
                "cpu_s": {k: round(cpu1[k] - cpu0[k], 2) for k in cpu0},
                "throttled_s": [round(b - a, 1) for a, b in zip(thr0, thr1)],
                "groups": groups, "load": loadavg()}

    def cpu(self):
        out = {"web": cpu_seconds(self.srv.pid),
               "postgresql": cpu_seconds(self.pg.pid()) if self.pg.pid() else 0}
        for i, p in enumerate(self.hosts):
            out[f"host{i}"] = cpu_seconds(p.pid)
        for name, pid in self.extra.items():
            out[name] = cpu_seconds(pid)
        return out

    def stop(self):
        for p in self.hosts:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.hosts:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.srv and self.srv.poll() is None:
            self.srv.send_signal(signal.SIGTERM)
            try:
                self.srv.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.srv.kill()
                self.srv.wait()
        for q in self.quotas:
            q.close()
        self.pg.drop_db(self.dbname)
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_once(pg, files, hosts, tag):
    cl = Cluster(pg, hosts, tag)
    try:
        cl.start()
        r = cl.upload(files)
    finally:
        cl.stop()
    hosts_cpu = sum(v for k, v in r["cpu_s"].items() if k.startswith("host"))
    print(f"  {hosts} host(s): {r['photos_per_s']} photos/s ({r['uploaded']} stored, "
          f"{r['failed']} failed, {r['process_s']} s after the ack, sent in {r['send_s']} s); "
          f"CPU s: hosts {hosts_cpu:.1f}, web {r['cpu_s']['web']}, "
          f"PostgreSQL {r['cpu_s']['postgresql']}; throttled s {r['throttled_s']}; "
          f"load {r['load']}", flush=True)
    return r


def s3_compare(pg, files):
    """--s3: one machine, `serve --workers S3_WORKERS` with its own workers (no quota), the
    same photos with --blobs DIR and --blobs s3:// (a RADOS Gateway, tests/rgwserver.py),
    rounds interleaved. What the object store costs on one machine, the hand-off included:
    the 202 now waits for each original to reach the store."""
    import rgwserver
    rgw = rgwserver.start()
    os.environ["SHOEBOX_S3_ACCESS_KEY"] = rgw.access_key
    os.environ["SHOEBOX_S3_SECRET_KEY"] = rgw.secret_key
    rounds = []
    try:
        for r in range(ROUNDS):
            print(f"s3 round {r + 1}/{ROUNDS} ({len(files)} photos, serve --workers "
                  f"{S3_WORKERS}):", flush=True)
            one = {}
            for kind in (("dir", "s3") if r % 2 == 0 else ("s3", "dir")):
                blobs = rgw.blobs_url(f"scaleout-{os.getpid()}-{r}") if kind == "s3" else None
                cl = Cluster(pg, 0, f"s3_{r}_{kind}", blobs=blobs, workers=S3_WORKERS)
                # the gateway, its OSD and monitor (idle in the directory runs)
                cl.extra = {f"ceph_{n}": pid for n, pid in rgw.state["pids"].items() if pid}
                try:
                    cl.start()
                    one[kind] = cl.upload(files)
                finally:
                    cl.stop()
                x = one[kind]
                print(f"  --blobs {kind}: {x['photos_per_s']} photos/s after the ack "
                      f"({x['uploaded']} stored, {x['failed']} failed, {x['process_s']} s), "
                      f"ack after {x['send_s']} s, {x['photos_per_s_from_first_byte']} photos/s "
                      f"from the first byte; CPU s web+workers {x['cpu_s']['web']}, "
                      f"PostgreSQL {x['cpu_s']['postgresql']}, Ceph "
                      f"{round(sum(v for k, v in x['cpu_s'].items() if k.startswith('ceph')), 2)}; "
                      f"load {x['load']}", flush=True)
            rounds.append(one)
    finally:
        rgw.stop()
    tot = {k: sum(x[k]["send_s"] + x[k]["process_s"] for x in rounds) for k in ("dir", "s3")}
    return {"workers": S3_WORKERS, "rounds": rounds,
            "s3_vs_dir_from_first_byte": round(tot["dir"] / tot["s3"], 3)}


def main():
    os.makedirs(OUT, exist_ok=True)
    if not pgserver.available():
        print("bench/scaleout: PostgreSQL is not installed (scripts/install-deps.sh test)")
        return 1
    try:
        netns.CpuQuota("scaleout-probe", QUOTA).close()
    except (netns.NetError, OSError) as e:
        print(f"bench/scaleout: no cgroup cpu controller to hold the hosts ({e}); skipped")
        return 0
    files = ensure_corpus()[:FILES]
    res = {"cores": os.cpu_count(), "files": len(files), "quota_per_host": QUOTA,
           "hosts": HOSTS, "load_at_start": loadavg(), "rounds": []}
    pg = pgserver.start()
    try:
        for r in range(0 if S3_ONLY else ROUNDS):
            order = HOSTS if r % 2 == 0 else HOSTS[::-1]
            print(f"round {r + 1}/{ROUNDS} ({len(files)} photos):", flush=True)
            res["rounds"].append({str(n): run_once(pg, files, n, f"{r}_{n}") for n in order})
        if S3 or S3_ONLY:
            res["s3"] = s3_compare(pg, files)
    finally:
        pg.stop()
    res["load_at_end"] = loadavg()
    if S3_ONLY:
        return report_s3(res)
    # Totals over the rounds (the sum of times, not a mean of rates).
    tot = {n: sum(x[str(n)]["process_s"] for x in res["rounds"]) for n in HOSTS}
    res["photos_per_s"] = {str(n): round(len(files) * ROUNDS / tot[n], 3) for n in HOSTS}
    lo, hi = min(HOSTS), max(HOSTS)
    res["speedup"] = round(tot[lo] / tot[hi], 2)
    res["speedup_rounds"] = [round(x[str(lo)]["process_s"] / x[str(hi)]["process_s"], 2)
                             for x in res["rounds"]]
    # The same from the first byte sent: hosts that start on the first files while the
    # rest is still arriving gain less from the 202 on; this one counts the whole upload.
    whole = {n: sum(x[str(n)]["send_s"] + x[str(n)]["process_s"] for x in res["rounds"])
             for n in HOSTS}
    res["speedup_from_first_byte"] = round(whole[lo] / whole[hi], 2)
    with open(os.path.join(OUT, "scaleout.json"), "w") as f:
        json.dump(res, f, indent=2)
    print(f"\n== bench/scaleout ({len(files)} photos, hosts at {QUOTA} core each, "
          f"{res['cores']} cores, load {res['load_at_start']} -> {res['load_at_end']}) ==")
    for n in HOSTS:
        print(f"{n} host(s): {res['photos_per_s'][str(n)]} photos/s")
    print(f"speed-up {lo} -> {hi} hosts: {res['speedup']}x (goal >= 3.2; rounds: "
          f"{', '.join(str(x) for x in res['speedup_rounds'])}); from the first byte "
          f"{res['speedup_from_first_byte']}x")
    if "s3" in res:
        report_s3(res)
    return 0


def report_s3(res):
    if S3_ONLY:
        with open(os.path.join(OUT, "scaleout.json"), "w") as f:
            json.dump(res, f, indent=2)
    s3 = res["s3"]
    print(f"--blobs s3:// against a directory, serve --workers {s3['workers']}, "
          f"{res['files']} photos: s3/dir throughput from the first byte "
          f"{s3['s3_vs_dir_from_first_byte']} (rounds: " + ", ".join(
              f"dir {x['dir']['photos_per_s_from_first_byte']} / s3 "
              f"{x['s3']['photos_per_s_from_first_byte']} photos/s, ack {x['dir']['send_s']} / "
              f"{x['s3']['send_s']} s" for x in s3["rounds"]) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
