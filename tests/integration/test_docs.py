"""The README stays true: every option `shoebox COMMAND --help` prints is documented,
and every documented flag exists."""
import os
import re
import subprocess
import unittest

import harness


class TestReadme(unittest.TestCase):
    def test_options_match_help(self):
        with open(os.path.join(harness.ROOT, "README.md")) as f:
            readme = f.read()
        documented = set(re.findall(r"^\| `--([a-z-]+)`", readme, re.M))
        real = set()
        for cmd in ("serve", "worker", "user", "migrate"):
            out = subprocess.run([harness.BIN, cmd, "--help"], capture_output=True, text=True,
                                 timeout=30).stdout
            real |= set(re.findall(r"^  --([a-z-]+)", out, re.M))
        real.discard("help")
        self.assertEqual(sorted(real - documented), [], "options missing from README.md")
        self.assertEqual(sorted(documented - real), [], "README.md documents unknown options")

    def test_help_lists_commands(self):
        out = subprocess.run([harness.BIN, "--help"], capture_output=True, text=True).stdout
        for cmd in ("serve", "worker", "user", "migrate"):
            self.assertIn(cmd, out)
        bad = subprocess.run([harness.BIN, "serve", "--batch-size", "0"], capture_output=True,
                             text=True)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--batch-size must be between", bad.stderr)


if __name__ == "__main__":
    unittest.main()
