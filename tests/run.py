#!/usr/bin/env python3
"""Run every Shoebox test and end with the line `N passed, N failed, N skipped`.

Order: rule checks, unit tests (Check executables build/tests/unit/*/test_*),
fuzz corpus replay (build/tests/fuzz/fuzz_<name> over tests/fuzz/corpus/<name>/),
integration tests (tests/integration/test_*.py, driving the real binary), then the
pipeline, progress and crash integration tests once more on PostgreSQL (SHOEBOX_TEST_DB=pg:
every harness Server gets its own database on the run's PostgreSQL), reported as
"integration (PostgreSQL)",
end-to-end browser tests (tests/e2e/run.mjs, when present).

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
                   [-k PATTERN]
(pg-integration: only the PostgreSQL run of the pipeline, progress, crash and library tests)
"""
import argparse
import glob
import os
import re
import signal
import subprocess
import sys
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


def run_unit(t, build, env, pattern):
    exes = sorted(glob.glob(os.path.join(build, "tests", "unit", "*", "test_*")))
    exes = [e for e in exes if os.access(e, os.X_OK) and not e.endswith((".p", ".c"))
            and os.path.isfile(e)]
    if not exes:
        t.add("unit: executables built", failed=1, detail="no unit test executables found")
    for exe in exes:
        name = "unit: " + os.path.relpath(exe, os.path.join(build, "tests", "unit"))
        if pattern and pattern not in name:
            continue
        start = time.time()
        proc = subprocess.run([exe], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=900)
        out = proc.stdout + proc.stderr
        m = CHECK_RE.search(out)
        if proc.returncode == 77:
            t.add(name, skipped=1, detail=out)
        elif m:
            total, fails, errors = int(m.group(2)), int(m.group(3)), int(m.group(4))
            bad = fails + errors
            if proc.returncode != 0 and bad == 0:
                bad = 1  # crashed after the summary (a sanitizer report at exit, say)
            t.add(name, passed=total - fails - errors, failed=bad, detail=out)
        else:
            t.add(name, passed=int(proc.returncode == 0), failed=int(proc.returncode != 0),
                  detail=out)
        if proc.returncode != 0:
            print(out[-4000:], flush=True)
        elif time.time() - start > 30:
            print(f"       ({time.time() - start:.0f} s)", flush=True)


def run_fuzz(t, build, env):
    for exe in sorted(glob.glob(os.path.join(build, "tests", "fuzz", "fuzz_*"))):
        if not os.path.isfile(exe) or not os.access(exe, os.X_OK):
            continue
        target = os.path.basename(exe)[len("fuzz_"):]
        corpus = os.path.join(ROOT, "tests", "fuzz", "corpus", target)
        if not os.path.isdir(corpus):
            t.add(f"fuzz replay: {target}", failed=1, detail=f"no corpus at {corpus}")
            continue
        proc = subprocess.run([exe, corpus], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600)
        t.add(f"fuzz replay: {target}", passed=int(proc.returncode == 0),
              failed=int(proc.returncode != 0), detail=proc.stdout + proc.stderr)
        if proc.returncode != 0:
            print((proc.stdout + proc.stderr)[-4000:], flush=True)


class CountingResult(unittest.TextTestResult):
    pass


# Run a second time with SHOEBOX_TEST_DB=pg: their servers use PostgreSQL.
PG_SUITES = ("test_pipeline", "test_progress", "test_crash", "test_batch_pacing", "test_library")
# And the pipeline once more on PostgreSQL + S3 (SHOEBOX_TEST_BLOBS=s3: the run's RADOS
# Gateway holds originals, thumbnails and previews).
S3_SUITES = ("test_pipeline",)


def run_integration(t, env, pattern, pg=False, s3=False):
    os.environ.update(env)
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    loader = unittest.TestLoader()
    if pattern:
        loader.testNamePatterns = [f"*{pattern}*"]
    name = "integration"
    began = time.monotonic()
    if pg:
        suites = S3_SUITES if s3 else PG_SUITES
        name = "integration (PostgreSQL + S3)" if s3 else "integration (PostgreSQL)"
        os.environ["SHOEBOX_TEST_DB"] = "pg"
        if s3:
            os.environ["SHOEBOX_TEST_BLOBS"] = "s3"
        suite = loader.loadTestsFromNames(suites)
        print(f"--- {name}: {', '.join(suites)} with SHOEBOX_TEST_DB=pg"
              + (" SHOEBOX_TEST_BLOBS=s3" if s3 else ""), flush=True)
    else:
        os.environ.pop("SHOEBOX_TEST_DB", None)
        suite = loader.discover(os.path.join(ROOT, "tests", "integration"), pattern="test_*.py",
                                top_level_dir=os.path.join(ROOT, "tests", "integration"))
    runner = unittest.TextTestRunner(verbosity=2, stream=sys.stdout, resultclass=CountingResult)
    try:
        res = runner.run(suite)
    finally:
        os.environ.pop("SHOEBOX_TEST_DB", None)
        os.environ.pop("SHOEBOX_TEST_BLOBS", None)
    bad = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    skipped = len(res.skipped)
    if pg and res.testsRun == 0 and pattern:
        return  # -k matched none of the PostgreSQL suites
    t.add(f"{name} ({time.monotonic() - began:.0f} s)", passed=max(0, res.testsRun - bad - skipped),
          failed=bad, skipped=skipped,
          detail="\n".join(str(x[0]) for x in res.failures + res.errors))


def run_e2e(t, env, pattern=""):
    """tests/e2e/run.mjs (the pages in Chromium) and tests/e2e/tus.mjs (real tus clients,
    the upload page's tus transport); -k picks the scripts whose name contains it."""
    runs = [("run.mjs", "e2e", "e2e (Chromium)", {}),
            ("tus.mjs", "tus", "e2e (tus clients)", {})]
    if env.get("SHOEBOX_TEST_PG") and env.get("SHOEBOX_TEST_S3"):
        # The pages again against two web nodes on PostgreSQL + S3 behind a balancer.
        runs.append(("run.mjs", "e2e", "e2e (Chromium, two nodes, PostgreSQL + S3)",
                     {"SHOEBOX_E2E_CLUSTER": "1"}))
    for script, label, name, extra in runs:
        path = os.path.join(ROOT, "tests", "e2e", script)
        if not os.path.exists(path) or (pattern and pattern not in script + name):
            continue
        proc = subprocess.run(["node", path], cwd=ROOT, env={**env, **extra},
                              capture_output=True, text=True, timeout=1800)
        out = proc.stdout + proc.stderr
        # Its own lines in full (failures first-hand); server log lines only at the end.
        own = [l for l in out.splitlines() if not l.startswith("ts=")]
        print("\n".join(own[-200:]), flush=True)
        m = re.search(r"^%s: (\d+) passed, (\d+) failed(?:, (\d+) skipped)?$" % label, out, re.M)
        if m:
            t.add(name, passed=int(m.group(1)), failed=int(m.group(2)),
                  skipped=int(m.group(3) or 0), detail=out)
        else:
            t.add(name, failed=1, detail=out)


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--sanitize", action="store_true")
    ap.add_argument("--only", choices=["rules", "unit", "fuzz", "integration", "pg-integration",
                                           "e2e"])
    ap.add_argument("-k", dest="pattern", default="")
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
    only = args.only
    # SIGTERM (a CI timeout, say) unwinds like Ctrl-C, so the finally below stops postgres.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    pg = start_pg(t, env) if only in (None, "unit", "integration", "pg-integration", "e2e") else None
    rgw = None
    try:
        if only in (None, "unit", "integration", "pg-integration", "e2e"):
            rgw = start_rgw(t, env)
        if only in (None, "rules"):
            run_rules(t)
        if only in (None, "unit"):
            run_unit(t, build, env, args.pattern)
        if only in (None, "fuzz"):
            run_fuzz(t, build, env)
        if only in (None, "integration"):
            run_integration(t, env, args.pattern)
        if only in (None, "integration", "pg-integration") and pg:
            run_integration(t, env, args.pattern, pg=True)
        if only in (None, "integration", "pg-integration") and pg and rgw:
            run_integration(t, env, args.pattern, pg=True, s3=True)
        if only in (None, "e2e"):
            run_e2e(t, env, args.pattern)
    finally:
        if rgw:
            rgw.stop()
        if pg:
            pg.stop()

    if t.failures:
        print("\nFailed:")
        for name, _ in t.failures:
            print("  " + name)
    print(f"\n{t.passed} passed, {t.failed} failed, {t.skipped} skipped")
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
