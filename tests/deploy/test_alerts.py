# SPDX-License-Identifier: Apache-2.0
"""deploy/msce-alerts.yml: Prometheus accepts it (promtool check rules),
every alert has a severity, every msce_ metric it uses is one msced
exports, and the rule unit tests (msce-alerts-test.yml) pass: one dead
center is one alert, a broken link an alert from each end, a failing
scrape its own alert only when the peers still reach the node."""

import os
import re
import shutil
import subprocess
import unittest

from deployutil import REPO

RULES = os.path.join(REPO, "deploy", "msce-alerts.yml")
TESTS = os.path.join(REPO, "tests", "deploy", "msce-alerts-test.yml")
PROMTOOL = shutil.which("promtool")


class AlertRulesTest(unittest.TestCase):
    def setUp(self):
        with open(RULES) as f:
            self.text = f.read()

    def test_every_alert_has_a_severity(self):
        blocks = re.split(r"\n  - alert: ", self.text)[1:]
        self.assertGreaterEqual(len(blocks), 8)
        for b in blocks:
            name = b.split("\n", 1)[0]
            self.assertRegex(b, r"\n      severity: (critical|warning|info)\n", name)
            self.assertIn("summary:", b, name)

    def test_metrics_used_are_exported(self):
        with open(os.path.join(REPO, "server", "metrics.c")) as f:
            src = f.read()
        used = set(re.findall(r"\b(msce_[a-z_]+)", self.text))
        self.assertIn("msce_peer_connected", used)
        for m in sorted(used):
            self.assertIn('"%s' % m, src, "%s is not exported by server/metrics.c" % m)

    @unittest.skipUnless(PROMTOOL, "promtool (Debian package prometheus) is not installed")
    def test_promtool_check_rules(self):
        r = subprocess.run([PROMTOOL, "check", "rules", RULES], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout)

    @unittest.skipUnless(PROMTOOL, "promtool (Debian package prometheus) is not installed")
    def test_promtool_rule_unit_tests(self):
        r = subprocess.run([PROMTOOL, "test", "rules", os.path.basename(TESTS)],
                           capture_output=True, text=True, timeout=120,
                           cwd=os.path.dirname(TESTS))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout)


if __name__ == "__main__":
    unittest.main()
