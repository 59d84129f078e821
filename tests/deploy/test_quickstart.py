# SPDX-License-Identifier: Apache-2.0
"""deploy/quickstart end to end with the built binaries (--prebuilt: no
install, no build): eight centers start, the demo data converges with
conflicts to see, start and stop are both safe to repeat, and stop leaves
no msced behind. A cleanup kills by PID file whatever is left if the test
fails half way. Its install and build stages (with stand-ins for apt-get
and cmake) are quiet: one line each, the tools' output in the log, whose
tail and path are shown when a stage fails."""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

from deployutil import MSCE, MSCED, QUICKSTART, require_binaries

NAMES = ["shekou", "shenzhen-bay", "nanshan", "futian", "luohu", "baoan",
         "longgang", "longhua"]


def free_base():
    """A base port with base+1..8 and base+2001..2008 free on loopback."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(12000, 28000)
        ok = True
        for p in [base + i for i in range(1, 9)] + [base + 2000 + i for i in range(1, 9)]:
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            return base
    raise AssertionError("no free range of loopback ports for the quickstart")


def is_msced(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return b"msced" in f.read()
    except OSError:
        return False


class QuickstartTest(unittest.TestCase):
    def setUp(self):
        require_binaries()
        self.dir = tempfile.mkdtemp(prefix="msce-qs-")
        self.run_dir = os.path.join(self.dir, "run")
        self.env = dict(os.environ, MSCED=os.path.abspath(MSCED),
                        MSCE=os.path.abspath(MSCE))
        self.addCleanup(self.cleanup)

    def cleanup(self):
        for n in NAMES:
            try:
                with open(os.path.join(self.run_dir, n, "msced.pid")) as f:
                    pid = int(f.read())
                if is_msced(pid):
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def quickstart(self, *args, timeout=240):
        r = subprocess.run([QUICKSTART, "--prebuilt", "--dir", self.run_dir] + list(args),
                           capture_output=True, text=True, timeout=timeout,
                           env=self.env, cwd=self.dir)
        return r.returncode, r.stdout + r.stderr

    def pids(self):
        out = {}
        for n in NAMES:
            try:
                with open(os.path.join(self.run_dir, n, "msced.pid")) as f:
                    out[n] = int(f.read())
            except OSError:
                pass
        return out

    def test_start_twice_stop_twice(self):
        base = free_base()
        rc, out = self.quickstart("--base-port", str(base), "--records", "200")
        self.assertEqual(rc, 0, out)
        self.assertIn("verified: 8 nodes", out)
        self.assertIn("node 1 (shekou), cluster shenzhen-msce: healthy", out)
        pids = self.pids()
        self.assertEqual(sorted(pids), sorted(NAMES))
        for n in NAMES:
            self.assertIn("127.0.0.1:%d" % (base + NAMES.index(n) + 1), out)

        conf = os.path.join(self.run_dir, "futian", "futian.conf")
        st = json.loads(subprocess.run([MSCE, "-c", conf, "status", "--json"],
                                       capture_output=True, text=True).stdout)
        self.assertTrue(st["healthy"])
        self.assertGreater(st["conflicts"], 0, "no concurrent writes made conflicts")
        with open(os.path.join(self.run_dir, "demo.json")) as f:
            demo = json.load(f)
        self.assertEqual(demo["registrations"], 200)
        # Logs and demo data hold personal records: not for others.
        def mode(*p):
            return os.stat(os.path.join(self.run_dir, *p)).st_mode & 0o777
        self.assertEqual(mode("demo.json"), 0o640)
        self.assertEqual(mode("demo"), 0o700)
        for f in os.listdir(os.path.join(self.run_dir, "demo")):
            self.assertEqual(mode("demo", f), 0o600, f)
        for n in NAMES:
            self.assertEqual(mode(n, "msced.log"), 0o600, n)
            self.assertEqual(mode(n, n + ".conf") & 0o022, 0, n)
        r = subprocess.run([MSCE, "-c", conf, "scan", "registration", "--limit", "1000"],
                           capture_output=True, text=True)
        self.assertEqual(len(r.stdout.split()), 200)
        # Case notes are case_note records, one per case and a second one
        # from another center for some; listed per case in time order.
        r = subprocess.run([MSCE, "-c", conf, "scan", "case_note", "--limit", "1000"],
                           capture_output=True, text=True)
        keys = r.stdout.split()
        self.assertEqual(len(keys), demo["notes"])
        self.assertEqual(demo["notes"], demo["cases"] + demo["notes_at_other_centers"])
        self.assertGreater(demo["notes_at_other_centers"], 0)
        case = next(k.rsplit("/", 1)[0] for k in keys
                    if sum(x.startswith(k.rsplit("/", 1)[0] + "/") for x in keys) == 2)
        r = subprocess.run([MSCE, "-c", conf, "note", "list", case, "--json"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        notes = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual(len(notes), 2)
        self.assertLess(notes[0]["id"], notes[1]["id"])
        self.assertTrue(notes[1]["fields"]["text"].startswith("Seen at "))
        self.assertNotEqual(notes[0]["fields"]["center"], notes[1]["fields"]["center"])

        # Again: the same processes are kept, the data is not loaded twice.
        rc, out = self.quickstart()
        self.assertEqual(rc, 0, out)
        self.assertIn("already running", out)
        self.assertNotIn("loading demo data", out)
        self.assertEqual(self.pids(), pids)

        rc, out = self.quickstart("stop")
        self.assertEqual(rc, 0, out)
        self.assertIn("stopped", out)
        for n, pid in pids.items():
            self.assertFalse(is_msced(pid), "%s (pid %d) still runs" % (n, pid))
            with open(os.path.join(self.run_dir, n, "msced.log")) as f:
                self.assertIn("stopped", f.read().splitlines()[-1])
        self.assertEqual(self.pids(), {})
        rc, out = self.quickstart("stop")
        self.assertEqual(rc, 0, out)
        self.assertIn("nothing running", out)

        # And up again from the same directory: same keys, data kept.
        rc, out = self.quickstart()
        self.assertEqual(rc, 0, out)
        self.assertNotIn("loading demo data", out)
        rc, out = self.quickstart("stop")
        self.assertEqual(rc, 0, out)

    def test_install_and_build_quiet_failure_shown(self):
        # Stand-ins: dpkg-query says cmake is missing, apt-get and cmake
        # talk a lot, and the build fails.
        fake = os.path.join(self.dir, "bin")
        os.makedirs(fake)
        scripts = {
            "dpkg-query": 'for a; do p=$a; done\n'
                          '[ "$p" = cmake ] && { echo "unknown"; exit 1; }\n'
                          'echo "install ok installed"\n',
            "apt-get": 'for i in $(seq 60); do echo "Unpacking fake-$i ..."; done\n',
            "sudo": 'exec "$@"\n',
            "cmake": 'for i in $(seq 60); do echo "[ $i%] Building C object x$i.o"; done\n'
                     'case " $* " in *" --build "*)\n'
                     '  echo "server/msced.c:1:1: error: boom" >&2; exit 2;; esac\n',
        }
        for name, body in scripts.items():
            path = os.path.join(fake, name)
            with open(path, "w") as f:
                f.write("#!/bin/sh\n" + body)
            os.chmod(path, 0o755)
        build = os.path.join(self.dir, "build")
        env = dict(self.env, PATH=fake + os.pathsep + os.environ["PATH"],
                   MSCE_BUILD_DIR=build)
        r = subprocess.run([QUICKSTART, "--dir", self.run_dir], capture_output=True,
                           text=True, timeout=60, env=env, cwd=self.dir)
        log = os.path.join(build, "quickstart.log")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stdout.splitlines(), [
            "quickstart: installing Debian packages: cmake (output in %s)" % log,
            "quickstart: building msced and msce in %s (output in %s)" % (build, log)])
        self.assertIn("quickstart: building msced and msce: FAILED", r.stderr)
        self.assertIn("error: boom", r.stderr)
        self.assertIn("quickstart: whole log: " + log, r.stderr)
        self.assertNotIn("Unpacking", r.stdout + r.stderr)
        with open(log) as f:
            text = f.read()
        self.assertIn("Unpacking fake-60 ...", text)
        self.assertIn("Building C object x60.o", text)
        self.assertFalse(os.path.exists(self.run_dir), "went on after the failure")

    def test_stale_pid_file_is_not_signalled(self):
        # A PID file left by a crash may name an unrelated process now.
        victim = subprocess.Popen(["sleep", "60"])
        self.addCleanup(victim.kill)
        d = os.path.join(self.run_dir, "shekou")
        os.makedirs(d)
        with open(os.path.join(d, "msced.pid"), "w") as f:
            f.write("%d\n" % victim.pid)
        rc, out = self.quickstart("stop")
        self.assertEqual(rc, 0, out)
        self.assertIsNone(victim.poll(), "quickstart stop killed an unrelated process")


if __name__ == "__main__":
    unittest.main()
