# SPDX-License-Identifier: Apache-2.0
"""What `cmake --install` puts on a center's machine besides the
programs: the man pages msce(1), msced(8) and msced.conf(5), which cover
every command, option and setting there is, and the bash completion,
which completes what `msce --help` lists. And `-DMSCE_BUILD_TESTS=OFF`
builds only msced, msce and libmsce, without the test dependencies."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from deployutil import MSCE, REPO, require_binaries


def build_dir():
    require_binaries("MSCE")
    return os.path.dirname(os.path.dirname(os.path.abspath(MSCE)))


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.prefix = tempfile.mkdtemp(prefix="msce-inst-")
        r = subprocess.run(["cmake", "--install", build_dir(), "--prefix", cls.prefix],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError("cmake --install: " + r.stdout + r.stderr)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.prefix, True)

    def installed(self, *rel):
        path = os.path.join(self.prefix, *rel)
        self.assertTrue(os.path.isfile(path), "%s is not installed" % os.path.join(*rel))
        with open(path) as f:
            return f.read()

    def commands(self):
        out = subprocess.run([MSCE, "--help"], capture_output=True, text=True,
                             timeout=10).stdout
        text = out.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
        return [l.split()[0] for l in text.splitlines()]

    def test_man_pages(self):
        msce = self.installed("share", "man", "man1", "msce.1")
        msced = self.installed("share", "man", "man8", "msced.8")
        conf = self.installed("share", "man", "man5", "msced.conf.5")
        for page in (msce, msced, conf):
            self.assertTrue(page.startswith(".\\\""), "not roff")  # scdoc's header
        def roff(s):  # the text, without roff escapes
            return re.sub(r"\\f[BIR]|\\&", "", s).replace("\\-", "-")
        msce, msced, conf = roff(msce), roff(msced), roff(conf)
        for cmd in self.commands():
            self.assertIn(cmd, msce)
        with open(os.path.join(REPO, "client", "cli", "msce.c")) as f:
            opts = re.findall(r'\{"([a-z-]+)", (?:no|required)_argument', f.read())
        self.assertIn("timeout", opts)
        for o in opts:
            self.assertIn("--" + o, msce, "msce(1) does not document --%s" % o)
        for o in ("--config", "--log-file", "--version", "SIGHUP", "Type=notify",
                  "WatchdogSec", "JOURNAL_STREAM", "/status.json"):
            self.assertIn(o, msced)
        with open(os.path.join(REPO, "common", "config.c")) as f:
            keys = set(re.findall(r'\{"([a-z_]+)", [01], s_', f.read()))
        self.assertIn("max_clock_skew", keys)
        for k in sorted(keys):
            self.assertRegex(conf, r"\n%s\b" % k, "msced.conf(5) does not document %s" % k)

    def test_bash_completion(self):
        path = os.path.join(self.prefix, "share", "bash-completion", "completions", "msce")
        self.installed("share", "bash-completion", "completions", "msce")
        bash = shutil.which("bash")
        self.assertTrue(bash)

        def complete(*words):
            script = ('source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _msce; '
                      'printf "%%s\\n" "${COMPREPLY[@]}"'
                      % (path, " ".join("'%s'" % w for w in words), len(words) - 1))
            r = subprocess.run([bash, "--norc", "-c", script], capture_output=True,
                               text=True, timeout=10)
            self.assertEqual(r.returncode, 0, r.stderr)
            return sorted(w for w in r.stdout.split("\n") if w)
        self.assertEqual(complete("msce", ""), sorted(self.commands()))
        self.assertEqual(complete("msce", "-c", "x.conf", "st"), ["status"])
        self.assertIn("--max-lag", complete("msce", "status", "--"))
        self.assertNotIn("--max-lag", complete("msce", "get", "--"))
        self.assertEqual(complete("msce", "watch", "--f"), ["--from-start"])
        self.assertIn("registration", complete("msce", "get", ""))

    def test_programs(self):
        for rel in (("bin", "msce"), ("sbin", "msced")):
            self.assertTrue(os.access(os.path.join(self.prefix, *rel), os.X_OK), rel)


class BuildWithoutTestsTest(unittest.TestCase):
    def test_only_the_programs_and_the_library(self):
        d = tempfile.mkdtemp(prefix="msce-notests-")
        self.addCleanup(shutil.rmtree, d, True)
        r = subprocess.run(["cmake", "-S", REPO, "-B", d, "-DMSCE_BUILD_TESTS=OFF"],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = subprocess.run(["cmake", "--build", d, "--target", "help"],
                           capture_output=True, text=True, timeout=60)
        targets = set(re.findall(r"^\.\.\. (\S+)", r.stdout, re.M))
        for t in ("msced", "msce", "msce_shared", "msce_static", "man"):
            self.assertIn(t, targets)
        for t in sorted(targets):
            self.assertFalse(re.match(r"^(test_|msce-sim|msce-probe|msce-libtest|fuzz_|"
                                      r"msce_bench|msced-nofsync)", t),
                             "%s is built without tests" % t)
        with open(os.path.join(d, "CMakeCache.txt")) as f:
            cache = f.read()
        self.assertNotIn("CMOCKA_FOUND", cache)
        self.assertFalse(os.path.exists(os.path.join(d, "CTestTestfile.cmake")))


if __name__ == "__main__":
    unittest.main()
