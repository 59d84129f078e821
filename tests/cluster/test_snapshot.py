# SPDX-License-Identifier: Apache-2.0
"""Snapshots and the log floor: with log_retention = 20, a node that was
down while a few hundred changes were made cannot be sent the log it
missed; it must catch up by snapshot (also while the others keep writing)
and end with the same state as everyone else. A watch whose cursor fell
below the log floor ends with ENOTFOUND."""

import json
import subprocess
import threading
import unittest

from cluster import MSCE_LIBTEST, ClusterTestCase, CliError, require_binaries, wait_until

RETENTION = 20


class SnapshotTest(ClusterTestCase):
    def wait_truncated(self, c, nodes):
        """Logs are cut to the retention on a timer, not at each commit:
        wait until every writer has cut its log, or the snapshot is not
        needed yet."""
        for x in nodes:
            wait_until(lambda: c.counters(x).get("log_truncated", 0) > 0, 30,
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

    def test_catch_up_by_snapshot_while_others_write(self):
        c = self.make_cluster(3, log_retention=RETENTION)
        n1, n2, n3 = c.nodes
        c.wait_connected(n1, [2, 3])
        c.put(n1, "t", "seed", {"v": "0"})
        c.wait_converged()
        self.assertEqual(c.stop(n3), 0)
        for i in range(150):
            c.put(n1 if i % 2 else n2, "t", "down-%d" % i, {"v": str(i)})
        c.wait_converged([n1, n2])
        self.wait_truncated(c, [n1, n2])

        # Writers at n1 and n2 go on while n3 starts and takes the
        # snapshot, until n3 has merged one and 30 more writes are acked.
        acked, stop, errors = {}, threading.Event(), []

        def writer(node):
            i = 0
            while not stop.is_set():
                key = "during-%s-%d" % (node.name, i)
                try:
                    c.put(node, "t", key, {"v": str(i)})
                    acked[key] = str(i)
                except CliError as e:  # a refused write is a failure
                    errors.append(str(e))
                    return
                i += 1
        threads = [threading.Thread(target=writer, args=(x,)) for x in (n1, n2)]
        for t in threads:
            t.start()
        try:
            c.start(n3)
            wait_until(lambda: c.counters(n3).get("snapshots_received", 0) > 0, 60,
                       "n3 to merge a snapshot")
            mark = len(acked)
            wait_until(lambda: len(acked) >= mark + 30 or errors, 60,
                       "30 writes acked after the snapshot")
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        self.assertEqual(errors, [])
        c.wait_converged(timeout=120)  # equal digests and vectors
        rows = {}
        for line in c.cli(n3, "export", "t")[1].splitlines():
            r = json.loads(line)
            rows[r["key"]] = r["fields"]["v"]
        for key, v in acked.items():
            self.assertEqual(rows.get(key), v, key)
        for i in range(150):
            self.assertEqual(rows.get("down-%d" % i), str(i))

    def test_watch_below_the_log_floor(self):
        # A watch from node 1's change 1, after its log was cut to the
        # last 20 changes: the stream ends with ENOTFOUND, saying the
        # cursor is below the floor; from the node's current vector (the
        # rescan the error asks for) watching works (msce-libtest floor).
        require_binaries("MSCE_LIBTEST")
        c = self.make_cluster(2, log_retention=RETENTION)
        n1, n2 = c.nodes
        c.wait_connected(n1, [2])
        for i in range(60):
            c.put(n1, "t", "w-%d" % i, {"v": str(i)})
        c.wait_converged()
        self.wait_truncated(c, [n1])
        r = subprocess.run([MSCE_LIBTEST, "floor", n1.socket], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_empty_node_joins_by_snapshot(self):
        # A node that never ran, started after the others wrote past the
        # retention: its first sync is a snapshot.
        c = self.make_cluster(3, log_retention=RETENTION, start=False)
        n1, n2, n3 = c.nodes
        c.begin(n1, n2)  # n3 is added later
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
