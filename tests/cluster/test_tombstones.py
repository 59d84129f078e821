# SPDX-License-Identifier: Apache-2.0
"""Tombstones while a center is down (DESIGN.md, "Tombstone GC"; deploy/
README.md, removing a center): a delete leaves a tombstone that is dropped
only once every configured node holds the delete, never by a timer. While
one node is stopped the others keep it (status shows it) well past the
time collection takes when every node is up; once the node is back and
has caught up, every node drops it."""

import time
import unittest

from cluster import ClusterTestCase, wait_until


class TombstoneTest(ClusterTestCase):
    def tombstones(self, c, nodes):
        return {x.name: c.status(x)["tombstones"] for x in nodes}

    def collected(self, c, nodes):
        return {x.name: c.counters(x).get("tombstones_collected", 0) for x in nodes}

    def all_up(self, c):
        for x in c.nodes:
            c.wait_connected(x, [y.id for y in c.nodes if y is not x])

    def test_kept_while_a_center_is_down(self):
        c = self.make_cluster(3)
        n1, n2, n3 = c.nodes
        self.all_up(c)

        # Positive control, every node up: how long collection takes.
        c.put(n1, "t", "control", {"v": "1"})
        c.put(n1, "t", "kept", {"v": "1"})
        c.wait_converged()
        c.delete(n1, "t", "control")
        wait_until(lambda: self.tombstones(c, c.nodes) == {"n1": 1, "n2": 1, "n3": 1},
                   30, "the delete to reach every node")
        t0 = time.monotonic()
        wait_until(lambda: set(self.tombstones(c, c.nodes).values()) == {0},
                   60, "the control tombstone to be collected everywhere")
        t_gc = time.monotonic() - t0
        self.assertIsNone(c.get(n3, "t", "control"))

        # Node 3 stops; a delete at node 1 reaches node 2.
        self.assertEqual(c.stop(n3), 0)
        c.delete(n1, "t", "kept")
        wait_until(lambda: c.get(n2, "t", "kept") is None, 30, "n2 to apply the delete")
        # Kept, for three times what collection took with everyone up
        # (and at least five gossip rounds).
        hold = max(3 * t_gc, 5.0)
        deadline = time.monotonic() + hold
        while time.monotonic() < deadline:
            self.assertEqual(self.tombstones(c, (n1, n2)), {"n1": 1, "n2": 1})
            time.sleep(0.2)

        # Node 3 comes back, gets the delete, and every node drops it.
        c.start(n3)
        wait_until(lambda: c.get(n3, "t", "kept") is None, 60, "n3 to apply the delete")
        wait_until(lambda: set(self.tombstones(c, c.nodes).values()) == {0}, 60,
                   "the tombstone to be collected everywhere")
        c.wait_converged()

    def test_collected_tombstones_are_counted(self):
        c = self.make_cluster(2)
        n1, n2 = c.nodes
        self.all_up(c)
        c.put(n1, "t", "k", {"v": "1"})
        c.wait_converged()
        c.delete(n1, "t", "k")
        wait_until(lambda: c.get(n2, "t", "k") is None, 30, "n2 to apply the delete")
        wait_until(lambda: set(self.tombstones(c, c.nodes).values()) == {0}, 60,
                   "the tombstone to be collected everywhere")
        self.assertEqual(self.collected(c, c.nodes), {"n1": 1, "n2": 1})

if __name__ == "__main__":
    unittest.main()
