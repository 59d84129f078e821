# SPDX-License-Identifier: Apache-2.0
"""deploy/msced@.service: systemd accepts every line of it (systemd-analyze
verify prints a warning and still exits 0 for an unknown or misspelt
setting, so any line naming the unit is a failure), and the hardening the
operator's guide promises is there."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from deployutil import MSCED, REPO, require_binaries

UNIT = os.path.join(REPO, "deploy", "msced@.service")


def settings(text):
    """[(key, value)] of the unit, in order."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and line[0] not in "#;[" and "=" in line:
            k, v = line.split("=", 1)
            out.append((k.strip(), v.strip()))
    return out


class SystemdUnitTest(unittest.TestCase):
    def setUp(self):
        with open(UNIT) as f:
            self.text = f.read()

    def test_verify(self):
        tool = shutil.which("systemd-analyze")
        if tool is None:
            self.skipTest("systemd-analyze is not installed: unit not verified")
        text = self.text
        # verify checks that ExecStart's program exists: use the built one
        # when msced is not installed here.
        if not os.access("/usr/sbin/msced", os.X_OK):
            require_binaries("MSCED")  # stands in for /usr/sbin/msced
            text = text.replace("/usr/sbin/msced", os.path.abspath(MSCED))
        d = tempfile.mkdtemp(prefix="msce-unit-")
        self.addCleanup(shutil.rmtree, d, True)
        for name in ("msced@.service", "msced@shekou.service"):
            path = os.path.join(d, name)
            with open(path, "w") as f:
                f.write(text)
            r = subprocess.run([tool, "verify", "--man=no", path],
                               capture_output=True, text=True, timeout=60)
            out = r.stdout + r.stderr
            self.assertEqual(r.returncode, 0, out)
            about_us = [ln for ln in out.splitlines() if "msced@" in ln]
            self.assertEqual(about_us, [], "systemd-analyze verify %s" % name)

    def test_hardening(self):
        s = settings(self.text)
        have = dict(s)
        want = {
            "User": "msce", "Group": "msce",
            "ExecStart": "/usr/sbin/msced -c /etc/msce/%i.conf",
            "Restart": "on-failure",
            "NoNewPrivileges": "yes", "ProtectSystem": "strict",
            "PrivateTmp": "yes", "ProtectHome": "yes",
            "StateDirectory": "msce/%i", "StateDirectoryMode": "0750",
            "RuntimeDirectory": "msce", "RuntimeDirectoryMode": "0750",
            "LimitCORE": "0", "CapabilityBoundingSet": "",
            # msced speaks sd_notify: ready once it serves, the watchdog
            # from its loop, SIGHUP for a reload.
            "Type": "notify", "NotifyAccess": "main", "WatchdogSec": "30s",
            "ExecReload": "/bin/kill -HUP $MAINPID",
        }
        for k, v in want.items():
            self.assertEqual(have.get(k), v, k)
        self.assertIn(("SystemCallFilter", "@system-service"), s)
        self.assertRegex(have.get("RestrictAddressFamilies", ""),
                         r"^AF_UNIX AF_INET AF_INET6$")
        # The paths msce-gen writes for the system layout.
        with open(os.path.join(REPO, "deploy", "msce-gen")) as f:
            gen = f.read()
        for p in ('"/var/lib/msce/" + name', '"/etc/msce/%s.key" % name',
                  '"/run/msce/%s.sock" % name'):
            self.assertIn(p, gen)
        self.assertTrue(re.search(r"^WantedBy=multi-user.target$", self.text, re.M))


if __name__ == "__main__":
    unittest.main()
