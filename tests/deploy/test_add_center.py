# SPDX-License-Identifier: Apache-2.0
"""Adding a center to a running cluster, by the procedure in
deploy/README.md: add its line to the centers file, run msce-gen, restart
the existing centers one at a time with their new configs, start the new
one. It must end up holding everything (the early history through a
snapshot: the others' logs are short here) and its writes must reach the
others."""

import unittest

from deployutil import DeployTestCase, wait_until


class AddCenterTest(DeployTestCase):
    def test_fourth_center_joins_and_converges(self):
        # A short log retention: by the time the new center arrives the
        # early changes are gone from the logs, as after years in service.
        gc = self.make_cluster(3, settings=("log_level=info", "log_retention=5"))
        n1, n2, n3 = gc.centers
        for i in range(90):
            c = gc.centers[i % 3]
            gc.put(c, "registration", "FRA:P%07d" % i, name="Resident %d" % i,
                   nationality="FRA", document_type="passport",
                   document_number="P%07d" % i, center=c.name)
        gc.wait_converged()
        for c in (n1, n2, n3):
            wait_until(lambda: gc.counter(c, "log_truncated") > 0, 20,
                       "%s to truncate its log" % c.name)

        n4 = gc.add_center()  # appends the line and runs msce-gen
        for c in (n1, n2, n3):
            with open(c.conf) as f:
                self.assertIn("[peer n4]", f.read())
        with open(n4.conf) as f:
            text = f.read()
        for c in (n1, n2, n3):
            self.assertIn("public_key = " + c.pub(), text)
        self.assertNotIn("[peer n4]", text)

        # Rolling restart: the others keep serving meanwhile.
        for c in (n1, n2, n3):
            gc.restart(c)
            gc.put(c, "event", "2026-12-0%d/after-restart-%s" % (c.id, c.name),
                   title="Q&A", kind="qa", center=c.name,
                   starts_at="2026-12-0%dT02:00:00Z" % c.id)
        gc.start(n4)
        gc.put(n4, "registration", "DEU:N4000001", name="Joined Late",
               nationality="DEU", document_type="passport",
               document_number="N4000001", center="n4")

        gc.wait_converged(gc.centers, timeout=90)
        self.assertIn("4 nodes", gc.verify(n4))
        self.assertGreater(gc.counter(n4, "snapshots_received"), 0)
        self.assertEqual(gc.values(n4, "registration", "FRA:P0000000")["name"],
                         "Resident 0")
        self.assertEqual(gc.values(n1, "registration", "DEU:N4000001")["name"],
                         "Joined Late")
        for c in gc.centers:
            wait_until(lambda: all(gc.connected(c, o.id) for o in gc.centers
                                   if o is not c), 30,
                       "%s linked to every other center" % c.name)


if __name__ == "__main__":
    unittest.main()
