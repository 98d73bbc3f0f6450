#!/usr/bin/env python3
"""Run every Shoebox test and end with the line `N passed, N failed, N skipped`.

Order: rule checks, unit tests (Check executables build/tests/unit/*/test_*),
fuzz corpus replay (build/tests/fuzz/fuzz_<name> over tests/fuzz/corpus/<name>/),
integration tests (tests/integration/test_*.py, driving the real binary), then the
pipeline, progress and crash integration tests once more on PostgreSQL (SHOEBOX_TEST_DB=pg:
every harness Server gets its own database on the run's PostgreSQL), reported as
"integration (PostgreSQL)",
end-to-end browser tests (tests/e2e/run.mjs, when present). That is the order of the
output; after the rules everything runs as jobs, up to -j at once (class Job,
run_sections), the longest first, and the end lists the slowest jobs and tests and each
pass's wall time.

Before the unit and integration tests it starts ONE throwaway PostgreSQL for the whole
run (tests/pgserver.py, when the server binaries are installed; `make test` installs
them) and exports SHOEBOX_TEST_PG=postgres://shoebox:PASS@127.0.0.1:PORT (no database
name) and SHOEBOX_TEST_PG_DIR; tests make their own databases on it
(tests/integration/harness.py pg_database(), tests/unit/pg_fixture.h). It is stopped and
removed at the end, also when the run dies. Without the binaries the PostgreSQL tests
report as skipped.

Likewise ONE throwaway S3 server (tests/rgwserver.py: Ceph's RADOS Gateway, one monitor,
one in-memory OSD; ~3 s to start) when Ceph's binaries are installed (`make test` installs
them), exporting SHOEBOX_TEST_S3 (s3://BUCKET?endpoint=...&region=...),
SHOEBOX_TEST_S3_ACCESS_KEY, SHOEBOX_TEST_S3_SECRET_KEY and SHOEBOX_TEST_S3_DIR; tests use
their own key prefix in its bucket (harness.s3_blobs(), tests/unit/store/test_s3.c).

Usage: tests/run.py [--build DIR] [--sanitize] [--only unit|fuzz|integration|pg-integration|e2e|rules]
                   [-k PATTERN] [-j JOBS]
(pg-integration: only the PostgreSQL run of the pipeline, progress, crash, batch pacing, library and tus termination tests)
"""
import argparse
import glob
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import pgserver  # noqa: E402
import rgwserver  # noqa: E402


class Tally:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.failures = []

    def add(self, name, passed=0, failed=0, skipped=0, detail=""):
        self.passed += passed
        self.failed += failed
        self.skipped += skipped
        status = "FAIL" if failed else ("SKIP" if skipped and not passed else "ok")
        print(f"[{status:4}] {name}: {passed} passed, {failed} failed, {skipped} skipped", flush=True)
        if failed:
            self.failures.append((name, detail))


class Job:
    """One piece of the run that goes alongside others (tests/run.py -j): a unit test
    executable, a fuzz replay, one class of integration tests on one backend, an e2e
    script. fn(job) runs it in a child process and fills in job.text (its output, printed
    in the run's order once the job ends) and job.entries (Tally.add arguments) or
    job.result (an integration worker's counts). s3: "shared" when it uses the run's S3
    server, "exclusive" when it stops and starts it (nothing else on S3 runs meanwhile)."""

    def __init__(self, key, fn, s3=None, guess=10.0):
        self.key, self.fn, self.s3, self.guess = key, fn, s3, guess
        self.text, self.entries, self.result = "", [], None
        self.secs = 0.0
        self.done = False


class Section:
    """Jobs printed together, in order, and finish(t, jobs) after them (a pass's tally)."""

    def __init__(self, name, jobs, finish=None, header=""):
        self.name, self.jobs, self.finish, self.header = name, jobs, finish, header
        self.printed = False


CHILDREN = set()          # live child processes, terminated when the run is interrupted
CHILDREN_LOCK = threading.Lock()


def run_child(cmd, env, timeout):
    """subprocess.run(capture_output, text) that tells CHILDREN about the process."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            stdin=subprocess.DEVNULL, start_new_session=True)
    with CHILDREN_LOCK:
        CHILDREN.add(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # Its whole process group (start_new_session): the servers its tests started would
        # otherwise run on beside the jobs that follow, and the pipes they hold open would
        # keep communicate() waiting.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        out, err = proc.communicate()
        err += f"\n(killed after {timeout} s)"
    finally:
        with CHILDREN_LOCK:
            CHILDREN.discard(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def stop_children(grace=10):
    """SIGTERM every child's process group (a child and the servers its tests started),
    SIGKILL what is left after grace seconds."""
    with CHILDREN_LOCK:
        procs = list(CHILDREN)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in procs:
            try:
                os.killpg(p.pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass


DURATIONS_FILE = ".test-durations.json"   # in the build directory: each job's last time


# The times of a full run on the 2-core development machine (`-j 4`), so a fresh clone
# (CI) starts the long jobs first too; refresh it with a full run's BUILD/.test-durations.json.
SEED_DURATIONS = os.path.join(ROOT, "tests", "durations.json")


def load_estimates(build):
    """Each job's time in the last full run in this build directory, else the seed."""
    for path in (os.path.join(build, DURATIONS_FILE), SEED_DURATIONS):
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError):
            continue
    return {}


def save_estimates(build, jobs, old):
    times = dict(old)
    times.update({j.key: round(j.secs, 1) for j in jobs if j.done})
    try:
        with open(os.path.join(build, DURATIONS_FILE), "w") as f:
            json.dump(times, f, indent=0, sort_keys=True)
    except OSError:
        pass


def run_sections(t, sections, slots, estimates):
    """Run every job of sections, up to slots at a time, the longest (by the last run's
    times) first; print each section whole, in the order given, as soon as it and those
    before it are done. slots=1 runs them one by one in the given order."""
    jobs = [j for s in sections for j in s.jobs]
    if slots > 1:
        order = sorted(jobs, key=lambda j: (j.s3 != "exclusive",
                                            -estimates.get(j.key, j.guess)))
    else:
        order = list(jobs)
    pending, running = list(order), []
    cv = threading.Condition()

    def may_start(job):
        if slots == 1:
            return True
        if job.s3 == "exclusive":
            return not any(r.s3 for r in running)
        if job.s3 == "shared":
            blocked = any(j.s3 == "exclusive" for j in running + pending)
            return not blocked
        return True

    def work(job):
        began = job.began = time.monotonic()
        try:
            job.fn(job)
        except Exception as e:  # a bug here fails that job, not the run's bookkeeping
            job.entries.append(dict(name=job.key, failed=1, detail=repr(e)))
            job.text += f"\n{job.key}: {e!r}\n"
        job.ended = time.monotonic()
        job.secs = job.ended - began
        with cv:
            job.done = True
            running.remove(job)
            cv.notify_all()

    def print_ready():
        for s in sections:
            if s.printed:
                continue
            if not all(j.done for j in s.jobs):
                return
            s.printed = True
            if s.header:
                print(s.header, flush=True)
            for j in s.jobs:
                if j.text:
                    print(j.text.rstrip("\n"), flush=True)
                for e in j.entries:
                    t.add(**e)
            if s.finish:
                s.finish(t, s.jobs)

    with cv:
        while pending or running:
            started = True
            while started and len(running) < slots:
                started = False
                for job in pending:
                    if may_start(job):
                        pending.remove(job)
                        running.append(job)
                        threading.Thread(target=work, args=(job,), daemon=True).start()
                        started = True
                        break
            cv.wait(timeout=1.0)
            print_ready()
    print_ready()
    return jobs


def run_rules(t):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "check-rules.py"), "--tap"],
                          cwd=ROOT, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        m = re.match(r"(not ok|ok) \d+ - (.*)", line)
        if m:
            ok = m.group(1) == "ok"
            t.add("rules: " + m.group(2), passed=int(ok), failed=int(not ok),
                  detail=proc.stdout + proc.stderr)
    if proc.returncode not in (0, 1):
        t.add("rules: checker ran", failed=1, detail=proc.stderr)


CHECK_RE = re.compile(r"(\d+)%: Checks: (\d+), Failures: (\d+), Errors: (\d+)")

# Unit tests that stop and start the run's radosgw (their outage tests): nothing else
# that uses the run's S3 server runs meanwhile.
S3_EXCLUSIVE_UNITS = ("store/test_s3",)


def uses_s3(source):
    """"shared" when a test's source file talks to the run's S3 server, else None."""
    try:
        with open(source, errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    return "shared" if ("SHOEBOX_TEST_S3" in text or "s3_blobs(" in text) else None


def unit_jobs(build, env, pattern):
    exes = sorted(glob.glob(os.path.join(build, "tests", "unit", "*", "test_*")))
    exes = [e for e in exes if os.access(e, os.X_OK) and not e.endswith((".p", ".c"))
            and os.path.isfile(e)]
    if not exes:
        job = Job("unit: executables built", lambda j: None)
        job.entries.append(dict(name="unit: executables built", failed=1,
                                detail="no unit test executables found"))
        return [job]
    jobs = []
    for exe in exes:
        rel = os.path.relpath(exe, os.path.join(build, "tests", "unit"))
        name = "unit: " + rel
        if pattern and pattern not in name:
            continue
        s3 = "exclusive" if rel in S3_EXCLUSIVE_UNITS else uses_s3(
            os.path.join(ROOT, "tests", "unit", rel + ".c"))
        jobs.append(Job(name, lambda job, exe=exe, name=name: run_unit_exe(job, exe, name, env),
                        s3=s3, guess=5.0))
    return jobs


def run_unit_exe(job, exe, name, env):
    proc = run_child([exe], env, timeout=900)
    out = proc.stdout + proc.stderr
    m = CHECK_RE.search(out)
    if proc.returncode == 77:
        job.entries.append(dict(name=name, skipped=1, detail=out))
    elif m:
        total, fails, errors = int(m.group(2)), int(m.group(3)), int(m.group(4))
        bad = fails + errors
        if proc.returncode != 0 and bad == 0:
            bad = 1  # crashed after the summary (a sanitizer report at exit, say)
        job.entries.append(dict(name=name, passed=total - fails - errors, failed=bad, detail=out))
    else:
        job.entries.append(dict(name=name, passed=int(proc.returncode == 0),
                                failed=int(proc.returncode != 0), detail=out))
    if proc.returncode != 0:
        job.text = out[-4000:]


def fuzz_jobs(build, env):
    jobs = []
    for exe in sorted(glob.glob(os.path.join(build, "tests", "fuzz", "fuzz_*"))):
        if not os.path.isfile(exe) or not os.access(exe, os.X_OK):
            continue
        target = os.path.basename(exe)[len("fuzz_"):]
        jobs.append(Job(f"fuzz replay: {target}",
                        lambda job, exe=exe, target=target: run_fuzz_exe(job, exe, target, env),
                        guess=2.0))
    return jobs


def run_fuzz_exe(job, exe, target, env):
    name = f"fuzz replay: {target}"
    corpus = os.path.join(ROOT, "tests", "fuzz", "corpus", target)
    if not os.path.isdir(corpus):
        job.entries.append(dict(name=name, failed=1, detail=f"no corpus at {corpus}"))
        return
    proc = run_child([exe, corpus], env, timeout=600)
    job.entries.append(dict(name=name, passed=int(proc.returncode == 0),
                            failed=int(proc.returncode != 0), detail=proc.stdout + proc.stderr))
    if proc.returncode != 0:
        job.text = (proc.stdout + proc.stderr)[-4000:]


class CountingResult(unittest.TextTestResult):
    """Also times each test (setUp, test, tearDown) for the slowest-tests list."""
    durations = []  # (seconds, pass name, test id), over the whole run
    pass_name = ""

    def startTest(self, test):
        self._began = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        CountingResult.durations.append((time.monotonic() - self._began, self.pass_name, test.id()))


def print_slowest(jobs, n=15):
    """The n slowest jobs (an integration job is a test class: its setUpClass too) and
    the n slowest integration tests."""
    if jobs:
        print(f"\nSlowest {n} jobs:")
        for j in sorted((j for j in jobs if j.done), key=lambda j: -j.secs)[:n]:
            print(f"  {j.secs:6.1f} s  {j.key}")
    if not CountingResult.durations:
        return
    print(f"\nSlowest {n} integration tests:")
    for secs, where, test_id in sorted(CountingResult.durations, reverse=True)[:n]:
        print(f"  {secs:6.1f} s  {test_id}  [{where}]")


# Run a second time with SHOEBOX_TEST_DB=pg: their servers use PostgreSQL.
PG_SUITES = ("test_pipeline", "test_progress", "test_crash", "test_batch_pacing", "test_library",
             "test_tus_terminate")
# And the pipeline once more on PostgreSQL + S3 (SHOEBOX_TEST_BLOBS=s3: the run's RADOS
# Gateway holds originals, thumbnails and previews).
S3_SUITES = ("test_pipeline",)
INTEGRATION = os.path.join(ROOT, "tests", "integration")
# Integration classes much longer than the rest, run as several jobs (each with its own
# setUpClass): each of their tests starts its own server(s), setUpClass only makes images.
SPLIT = {"test_crash.CrashTest": 6, "test_progress.ProgressTest": 2}


def test_ids(suite):
    for x in suite:
        if isinstance(x, unittest.TestSuite):
            yield from test_ids(x)
        else:
            yield x


def integration_section(env, pattern, pg=False, s3=False):
    """The integration tests (all, or the PostgreSQL / PostgreSQL + S3 reruns) as one job
    per test class, each run by a worker process (run.py --worker) with the pass's
    environment; the section's tally is the pass's one line, as before."""
    os.environ.update(env)
    if INTEGRATION not in sys.path:
        sys.path.insert(0, INTEGRATION)
    loader = unittest.TestLoader()
    if pattern:
        loader.testNamePatterns = [f"*{pattern}*"]
    name, extra, header = "integration", {}, ""
    if pg:
        suites = S3_SUITES if s3 else PG_SUITES
        name = "integration (PostgreSQL + S3)" if s3 else "integration (PostgreSQL)"
        extra["SHOEBOX_TEST_DB"] = "pg"
        if s3:
            extra["SHOEBOX_TEST_BLOBS"] = "s3"
        suite = loader.loadTestsFromNames(suites)
        header = (f"--- {name}: {', '.join(suites)} with SHOEBOX_TEST_DB=pg"
                  + (" SHOEBOX_TEST_BLOBS=s3" if s3 else ""))
    else:
        suite = loader.discover(INTEGRATION, pattern="test_*.py", top_level_dir=INTEGRATION)
    child_env = {k: v for k, v in env.items() if k not in ("SHOEBOX_TEST_DB", "SHOEBOX_TEST_BLOBS")}
    child_env.update(extra, SHOEBOX_TEST_PASS=name)
    groups, errors = {}, []
    for test in test_ids(suite):
        tid = test.id()
        if tid.startswith("unittest.loader."):   # a module that failed to import
            errors.append(test)
            continue
        groups.setdefault(tid.rsplit(".", 1)[0], []).append(tid)
    split = []
    for cls, ids in groups.items():   # a long class whose tests share nothing: in parts
        parts = min(SPLIT.get(cls, 1), len(ids))
        split += [(f"{cls} ({i + 1}/{parts})" if parts > 1 else cls, ids[i::parts])
                  for i in range(parts)]
    jobs = []
    for cls, ids in split:
        module = cls.split(".", 1)[0]
        s3_use = "shared" if s3 else uses_s3(os.path.join(INTEGRATION, module + ".py"))
        jobs.append(Job(f"{name}: {cls}",
                        lambda job, ids=ids: run_worker(job, ids, child_env),
                        s3=s3_use, guess=20.0))
    for test in errors:   # run where they are reported, as unittest would
        jobs.append(Job(f"{name}: {test.id()}",
                        lambda job, test=test: run_in_process(job, test), guess=0.1))
    if pg and not jobs and pattern:
        return None  # -k matched none of the PostgreSQL suites

    def finish(t, jobs):
        run = bad = skipped = 0
        failed_ids, secs = [], 0.0
        for j in jobs:
            r = j.result or {"run": 1, "bad": 1, "skipped": 0, "failed": [j.key]}
            run, bad, skipped = run + r["run"], bad + r["bad"], skipped + r["skipped"]
            failed_ids += r["failed"]
            secs += j.secs
            for d in r.get("durations", []):
                CountingResult.durations.append(tuple(d))
        t.add(f"{name} ({secs:.0f} s in tests)", passed=max(0, run - bad - skipped),
              failed=bad, skipped=skipped, detail="\n".join(failed_ids))
    return Section(name, jobs, finish, header)


def run_worker(job, ids, env):
    with tempfile.TemporaryDirectory(prefix="shoebox-run-") as tmp:
        result = os.path.join(tmp, "result.json")
        proc = run_child([sys.executable, os.path.abspath(__file__), "--worker", result] + ids,
                         env, timeout=1800)
        job.text = proc.stdout + proc.stderr
        try:
            with open(result) as f:
                job.result = json.load(f)
        except (OSError, ValueError):
            job.result = {"run": len(ids), "bad": len(ids), "skipped": 0, "failed": ids}
            job.text += f"\n(the worker for {job.key} ended with {proc.returncode}, no result)"


def run_in_process(job, test):
    stream = io.StringIO()
    res = unittest.TextTestRunner(verbosity=2, stream=stream).run(test)
    job.text = stream.getvalue()
    bad = len(res.failures) + len(res.errors)
    job.result = {"run": res.testsRun, "bad": bad, "skipped": len(res.skipped),
                  "failed": [test.id()] if bad else []}


def worker_main(result_path, ids):
    """run.py --worker RESULT ID...: run these integration tests (one class) here, output
    to stdout, counts and per-test times as JSON to RESULT."""
    def interrupted(*_):   # unittest records SystemExit as a test error and goes on
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupted)
    sys.path.insert(0, INTEGRATION)
    suite = unittest.TestLoader().loadTestsFromNames(ids)
    CountingResult.pass_name = os.environ.get("SHOEBOX_TEST_PASS", "")
    runner = unittest.TextTestRunner(verbosity=2, stream=sys.stdout, resultclass=CountingResult)
    res = runner.run(suite)
    bad_tests = res.failures + res.errors + [(x, "") for x in res.unexpectedSuccesses]
    with open(result_path, "w") as f:
        json.dump({"run": res.testsRun, "bad": len(bad_tests), "skipped": len(res.skipped),
                   "failed": [str(x[0]) for x in bad_tests],
                   "durations": CountingResult.durations}, f)
    return 0


def install_e2e_packages(t):
    """npm ci once, before the e2e jobs start: each script would otherwise install the
    packages itself when they are missing, and three concurrent `npm ci` runs delete
    each other's node_modules under the scripts already using it."""
    here = os.path.join(ROOT, "tests", "e2e")
    with open(os.path.join(here, "package.json")) as f:
        deps = json.load(f)["dependencies"]
    if all(os.path.exists(os.path.join(here, "node_modules", d, "package.json")) for d in deps):
        return
    print("--- installing the e2e tests' npm packages (npm ci --prefix tests/e2e)", flush=True)
    r = subprocess.run(["npm", "ci", "--prefix", here, "--no-audit", "--no-fund"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    if r.returncode != 0:
        t.add("e2e: npm ci --prefix tests/e2e", failed=1, detail=r.stdout)
        print(r.stdout[-4000:], flush=True)


def e2e_jobs(env, pattern=""):
    """tests/e2e/run.mjs (the pages in Chromium) and tests/e2e/tus.mjs (real tus clients,
    the upload page's tus transport); -k picks the scripts whose name contains it."""
    runs = [("run.mjs", "e2e", "e2e (Chromium)", {}),
            ("tus.mjs", "tus", "e2e (tus clients)", {})]
    if env.get("SHOEBOX_TEST_PG") and env.get("SHOEBOX_TEST_S3"):
        # The pages again against two web nodes on PostgreSQL + S3 behind a balancer.
        runs.append(("run.mjs", "e2e", "e2e (Chromium, two nodes, PostgreSQL + S3)",
                     {"SHOEBOX_E2E_CLUSTER": "1"}))
    jobs = []
    for script, label, name, extra in runs:
        path = os.path.join(ROOT, "tests", "e2e", script)
        if not os.path.exists(path) or (pattern and pattern not in script + name):
            continue
        jobs.append(Job(name, lambda job, a=(path, label, name, {**env, **extra}): run_e2e(job, *a),
                        s3="shared" if extra else None, guess=30.0))
    return jobs


def run_e2e(job, path, label, name, env):
    proc = run_child(["node", path], env, timeout=1800)
    out = proc.stdout + proc.stderr
    # Its own lines in full (failures first-hand); server log lines only at the end.
    own = [l for l in out.splitlines() if not l.startswith("ts=")]
    job.text = "\n".join(own[-200:])
    m = re.search(r"^%s: (\d+) passed, (\d+) failed(?:, (\d+) skipped)?$" % label, out, re.M)
    if m:
        job.entries.append(dict(name=name, passed=int(m.group(1)), failed=int(m.group(2)),
                                skipped=int(m.group(3) or 0), detail=out))
    else:
        job.entries.append(dict(name=name, failed=1, detail=out))


def start_server(t, env, module, what, missing):
    """One throwaway server of module (pgserver, rgwserver) for the run; exports what
    tests need into env. None when its packages are not installed."""
    if not module.available():
        t.add(f"{what}: {missing} (scripts/install-deps.sh test), its tests skip", skipped=1)
        return None
    began = time.monotonic()
    try:
        srv = module.start()
    except Exception as e:  # a broken install must fail the run, not skip its tests
        t.add(f"{what}: throwaway server starts", failed=1, detail=str(e))
        print(str(e)[-4000:], flush=True)
        return None
    env.update(srv.env())
    where = f"127.0.0.1:{srv.port}" if module is pgserver else srv.endpoint
    t.add(f"{what}: throwaway server starts ({time.monotonic() - began:.1f} s, {where}, "
          f"{srv.dir})", passed=1)
    return srv


def start_pg(t, env):
    return start_server(t, env, pgserver, "postgresql", "not installed")


def start_rgw(t, env):
    return start_server(t, env, rgwserver, "s3", "ceph not installed")


def print_phases(sections, total):
    """Per pass: when its first job began and its last ended (from the run's start), and
    the sum of its jobs' times; passes overlap when -j > 1."""
    print("\nWall time per pass (from the run's start: first job began .. last ended, "
          "sum of its jobs):")
    for s in sections:
        done = [j for j in s.jobs if j.done and hasattr(j, "began")]
        if not done:
            continue
        first = min(j.began for j in done) - RUN_BEGAN
        last = max(j.ended for j in done) - RUN_BEGAN
        print(f"  {first:6.1f} .. {last:6.1f} s  ({sum(j.secs for j in done):6.1f} s)  {s.name}")
    print(f"  total {total:.1f} s")


RUN_BEGAN = time.monotonic()


def default_jobs():
    """How many jobs run at once: SHOEBOX_TEST_JOBS, else 2 per core, at most 4 (the
    tests mostly wait on servers, leases and sleeps; more would only queue on the CPU)."""
    if os.environ.get("SHOEBOX_TEST_JOBS"):
        return max(1, int(os.environ["SHOEBOX_TEST_JOBS"]))
    return max(1, min(4, 2 * (os.cpu_count() or 1)))


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        return worker_main(sys.argv[2], sys.argv[3:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--sanitize", action="store_true")
    ap.add_argument("--only", choices=["rules", "unit", "fuzz", "integration", "pg-integration",
                                           "e2e"])
    ap.add_argument("-k", dest="pattern", default="")
    ap.add_argument("-j", dest="jobs", type=int, default=default_jobs(),
                    help="jobs at once (default: SHOEBOX_TEST_JOBS, else 2 per core, at most 4)")
    args = ap.parse_args()
    build = os.path.abspath(args.build)

    env = dict(os.environ)
    env.setdefault("SHOEBOX_TESTDATA", os.path.abspath(os.path.join(ROOT, "..", "shared", "testdata")))
    env["SHOEBOX_BIN"] = os.path.join(build, "shoebox")
    env["SHOEBOX_ROOT"] = ROOT
    env["CK_DEFAULT_TIMEOUT"] = env.get("CK_DEFAULT_TIMEOUT", "120")
    if args.sanitize:
        supp = os.path.join(ROOT, "tests", "lsan.supp")
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:detect_odr_violation=0"
        env["LSAN_OPTIONS"] = f"suppressions={supp}:print_suppressions=0"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
        env["SHOEBOX_SANITIZE"] = "1"

    t = Tally()
    global RUN_BEGAN
    RUN_BEGAN = time.monotonic()
    only = args.only
    # SIGTERM (a CI timeout, say) unwinds like Ctrl-C, so the finally below stops postgres.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    pg = start_pg(t, env) if only in (None, "unit", "integration", "pg-integration", "e2e") else None
    rgw = None
    sections, jobs, estimates = [], [], load_estimates(build)
    try:
        if only in (None, "unit", "integration", "pg-integration", "e2e"):
            rgw = start_rgw(t, env)
        if only in (None, "rules"):
            run_rules(t)
        if only in (None, "unit"):
            sections.append(Section("unit", unit_jobs(build, env, args.pattern)))
        if only in (None, "fuzz"):
            sections.append(Section("fuzz replay", fuzz_jobs(build, env)))
        if only in (None, "integration"):
            sections.append(integration_section(env, args.pattern))
        if only in (None, "integration", "pg-integration") and pg:
            sections.append(integration_section(env, args.pattern, pg=True))
        if only in (None, "integration", "pg-integration") and pg and rgw:
            sections.append(integration_section(env, args.pattern, pg=True, s3=True))
        if only in (None, "e2e"):
            install_e2e_packages(t)
            sections.append(Section("e2e", e2e_jobs(env, args.pattern)))
        sections = [s for s in sections if s]
        print(f"--- {sum(len(s.jobs) for s in sections)} jobs, up to {args.jobs} at once "
              "(-j, SHOEBOX_TEST_JOBS); output in order as each pass completes", flush=True)
        jobs = run_sections(t, sections, args.jobs, estimates)
        if not args.pattern and not only:
            save_estimates(build, jobs, estimates)
    finally:
        stop_children()
        if rgw:
            rgw.stop()
        if pg:
            pg.stop()

    print_slowest(jobs)
    print_phases(sections, time.monotonic() - RUN_BEGAN)
    if t.failures:
        print("\nFailed:")
        for name, _ in t.failures:
            print("  " + name)
    print(f"\n{t.passed} passed, {t.failed} failed, {t.skipped} skipped")
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
