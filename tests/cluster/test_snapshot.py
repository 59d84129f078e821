"""Snapshots: with log_retention = 20, a node that was down while a few
hundred changes were made cannot be sent the log it missed; it must catch
up by snapshot and end with the same state as everyone else."""

import time
import unittest

from cluster import ClusterTestCase, wait_until

RETENTION = 20


class SnapshotTest(ClusterTestCase):
    def wait_truncated(self, c, nodes):
        """Logs are cut to the retention on a timer, not at each commit:
        wait until every writer has cut its log, or the snapshot is not
        needed yet."""
        if "log_truncated" not in c.counters(nodes[0]):
            time.sleep(3)
            return
        for x in nodes:
            wait_until(lambda: c.counters(x).get("log_truncated", 0) > 0, 15,
                       "%s to truncate its log" % x.name)

    def test_catch_up_by_snapshot(self):
        c = self.make_cluster(3, log_retention=RETENTION)
        n1, n2, n3 = c.nodes
        # Some state n3 already holds: later overwritten, deleted or kept.
        for i in range(10):
            c.put(n1, "t", "old-%d" % i, {"v": "old", "i": str(i)})
        c.wait_converged()
        self.assertEqual(c.stop(n3), 0)

        for i in range(250):
            c.put(n1, "t", "new-%d" % i, {"v": str(i)})
        for i in range(60):
            c.put(n2, "t", "n2-%d" % (i % 30), {"v": str(i)})  # overwrites
        for i in range(5):
            c.put(n1, "t", "old-%d" % i, {"v": "updated"})  # one field of two
        c.delete(n2, "t", "old-9")
        c.put(n1, "registration", "DEU:C01X00T47",
              {"name": "Max Muster", "nationality": "DEU",
               "document_type": "passport", "document_number": "C01X00T47"})
        c.wait_converged([n1, n2])
        self.wait_truncated(c, [n1, n2])

        c.start(n3)
        statuses = c.wait_converged(timeout=120)
        counters = statuses["n3"]["counters"]
        self.assertGreater(counters.get("snapshots_received", 0), 0,
                           "n3 caught up without a snapshot: %s" % counters)
        # The sender counts its snapshot when the last chunk is acked,
        # which may be just after n3 has merged it.
        wait_until(lambda: sum(c.counters(x).get("snapshots_sent", 0) for x in (n1, n2)),
                   10, "n1 or n2 to count the snapshot it sent")

        for i in (0, 124, 249):
            self.assertEqual(c.values(n3, "t", "new-%d" % i), {"v": str(i)})
        for i in range(30):
            self.assertEqual(c.values(n3, "t", "n2-%d" % i), {"v": str(i + 30)})
        self.assertEqual(c.values(n3, "t", "old-0"), {"v": "updated", "i": "0"})
        self.assertEqual(c.values(n3, "t", "old-7"), {"v": "old", "i": "7"})
        self.assertIsNone(c.get(n3, "t", "old-9"))
        self.assertEqual(c.values(n3, "registration", "DEU:C01X00T47")["name"], "Max Muster")

        # Streaming resumes after the snapshot: new writes at n1 arrive.
        c.put(n1, "t", "after", {"v": "1"})
        c.wait_value(n3, "t", "after", "v", "1")
        c.put(n3, "t", "from-n3", {"v": "1"})
        c.wait_converged()
        self.assertEqual(c.values(n1, "t", "from-n3"), {"v": "1"})

    def test_empty_node_joins_by_snapshot(self):
        # A node that never ran, started after the others wrote past the
        # retention: its first sync is a snapshot.
        c = self.make_cluster(3, log_retention=RETENTION, start=False)
        n1, n2, n3 = c.nodes
        c.start(n1)
        c.start(n2)
        for i in range(100):
            c.put(n1 if i % 2 else n2, "t", "k%d" % i, {"v": str(i)})
        c.wait_converged([n1, n2])
        self.wait_truncated(c, [n1, n2])
        c.start(n3)
        statuses = c.wait_converged(timeout=120)
        self.assertGreater(statuses["n3"]["counters"].get("snapshots_received", 0), 0)
        self.assertEqual(c.values(n3, "t", "k99"), {"v": "99"})


if __name__ == "__main__":
    unittest.main()
