#!/usr/bin/env python3
"""Run every Shoebox test and end with the line `N passed, N failed, N skipped`.

Order: rule checks, unit tests (Check executables build/tests/unit/*/test_*),
fuzz corpus replay (build/tests/fuzz/fuzz_<name> over tests/fuzz/corpus/<name>/),
integration tests (tests/integration/test_*.py, driving the real binary),
end-to-end browser tests (tests/e2e/run.mjs, when present).

Usage: tests/run.py [--build DIR] [--sanitize] [--only unit|fuzz|integration|e2e|rules] [-k PATTERN]
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def run_integration(t, env, pattern):
    os.environ.update(env)
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    loader = unittest.TestLoader()
    if pattern:
        loader.testNamePatterns = [f"*{pattern}*"]
    suite = loader.discover(os.path.join(ROOT, "tests", "integration"), pattern="test_*.py",
                            top_level_dir=os.path.join(ROOT, "tests", "integration"))
    runner = unittest.TextTestRunner(verbosity=2, stream=sys.stdout, resultclass=CountingResult)
    res = runner.run(suite)
    bad = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    skipped = len(res.skipped)
    t.add("integration", passed=res.testsRun - bad - skipped, failed=bad, skipped=skipped,
          detail="\n".join(str(x[0]) for x in res.failures + res.errors))


def run_e2e(t, env):
    script = os.path.join(ROOT, "tests", "e2e", "run.mjs")
    if not os.path.exists(script):
        return
    proc = subprocess.run(["node", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)
    out = proc.stdout + proc.stderr
    # Its own lines in full (failures first-hand); server log lines only at the end.
    own = [l for l in out.splitlines() if not l.startswith("ts=")]
    print("\n".join(own[-200:]), flush=True)
    m = re.search(r"^e2e: (\d+) passed, (\d+) failed(?:, (\d+) skipped)?$", out, re.M)
    if m:
        t.add("e2e (Chromium)", passed=int(m.group(1)), failed=int(m.group(2)),
              skipped=int(m.group(3) or 0), detail=out)
    else:
        t.add("e2e (Chromium)", failed=1, detail=out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--sanitize", action="store_true")
    ap.add_argument("--only", choices=["rules", "unit", "fuzz", "integration", "e2e"])
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
    if only in (None, "rules"):
        run_rules(t)
    if only in (None, "unit"):
        run_unit(t, build, env, args.pattern)
    if only in (None, "fuzz"):
        run_fuzz(t, build, env)
    if only in (None, "integration"):
        run_integration(t, env, args.pattern)
    if only in (None, "e2e"):
        run_e2e(t, env)

    if t.failures:
        print("\nFailed:")
        for name, _ in t.failures:
            print("  " + name)
    print(f"\n{t.passed} passed, {t.failed} failed, {t.skipped} skipped")
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
