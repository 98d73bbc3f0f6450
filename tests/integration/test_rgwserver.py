"""tests/rgwserver.py, the throwaway RADOS Gateway the tests run against: it starts with a
user and a bucket, answers signed S3 requests, can lose and regain its S3 endpoint on the
same port, and leaves no daemon and no directory behind, also when radosgw was restarted
by another process (the C unit tests do that through `rgwserver.py start-rgw DIR`) and
when the Python process that started it is SIGKILLed. Also harness.s3_blobs()."""
import os
import signal
import subprocess
import sys
import time
import unittest
import urllib.parse

import harness

sys.path.insert(0, os.path.join(harness.ROOT, "tests"))
import rgwserver  # noqa: E402

NEEDS_CEPH = unittest.skipUnless(rgwserver.available(), "Ceph binaries not installed")
SCRIPT = os.path.join(harness.ROOT, "tests", "rgwserver.py")


def daemons_of(dir):
    """pids of live processes whose command line names dir (every daemon gets -c DIR/...)."""
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
            with open(f"/proc/{p}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and dir + "/ceph.conf" in cmd:
            found.append(int(p))
    return found


@NEEDS_CEPH
class RgwServerTest(unittest.TestCase):
    def test_restarted_by_another_process_then_stopped_leaves_nothing(self):
        srv = rgwserver.start()
        self.addCleanup(srv.stop)
        status, _, _ = srv.request("PUT", f"/{srv.bucket}/k", body=b"kept")
        self.assertEqual(status, 200)
        first = srv.state["pids"]["rgw"]
        # what test_s3.c does: radosgw stopped and started by other processes
        for cmd in ("stop-rgw", "start-rgw"):
            subprocess.run([sys.executable, SCRIPT, cmd, srv.dir], check=True, timeout=120)
        self.assertNotIn(first, daemons_of(srv.dir))
        self.assertEqual(len(daemons_of(srv.dir)), 3)       # mon, osd, the new radosgw
        status, _, body = srv.request("GET", f"/{srv.bucket}/k")
        self.assertEqual((status, body), (200, b"kept"))    # the cluster kept the object
        dir = srv.dir
        srv.stop()
        self.assertEqual(daemons_of(dir), [])
        self.assertFalse(os.path.exists(dir))

    def test_sigkilled_owner_leaves_nothing(self):
        code = ("import sys, time; sys.path.insert(0, sys.argv[1]); import rgwserver; "
                "s = rgwserver.start(); print(s.dir, flush=True); time.sleep(600)")
        p = subprocess.Popen([sys.executable, "-c", code, os.path.dirname(SCRIPT)],
                             stdout=subprocess.PIPE, text=True)
        dir = p.stdout.readline().strip()
        self.assertTrue(dir and os.path.isdir(dir), dir)
        self.assertEqual(len(daemons_of(dir)), 3)
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
        harness.wait_until(lambda: not daemons_of(dir) and not os.path.exists(dir), timeout=60,
                           what="the watchdog to stop the daemons and remove " + dir)

    def test_s3_blobs_gives_a_prefix_of_its_own(self):
        if not os.environ.get("SHOEBOX_TEST_S3"):
            self.skipTest("SHOEBOX_TEST_S3 is not set (tests/run.py sets it)")
        a, env = harness.s3_blobs(self)
        b, _ = harness.s3_blobs(self)
        self.assertNotEqual(a, b)
        ua = urllib.parse.urlsplit(a)
        self.assertEqual(ua.scheme, "s3")
        self.assertTrue(ua.path.strip("/"))
        self.assertIn("endpoint=", ua.query)
        self.assertEqual(env["SHOEBOX_S3_ACCESS_KEY"], os.environ["SHOEBOX_TEST_S3_ACCESS_KEY"])


if __name__ == "__main__":
    unittest.main()
