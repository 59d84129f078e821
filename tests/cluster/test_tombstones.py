# SPDX-License-Identifier: Apache-2.0
"""Tombstones while a center is down (DESIGN.md, "Tombstone GC"; deploy/
README.md, removing a center): a delete leaves a tombstone that is dropped
only once every configured node holds the delete, never by a timer. While
one node is stopped the others keep it (status shows it) well past the
time collection takes when every node is up; once the node is back and
has caught up, every node drops it."""

import json
import time
import unittest
import urllib.request

import cluster
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

    def test_status_says_what_collection_waits_for(self):
        """A center listed in the configs that has never come up: the
        others keep the tombstone, and their status (JSON and text) and
        metrics say collection waits for it. Once it runs, they collect
        and the reason goes."""
        c = self.make_cluster(3, start=False)
        n1, n2, n3 = c.nodes
        port = cluster.free_ports(1)[0]
        c.begin(n1, n2, settings={1: {"metrics_listen": "127.0.0.1:%d" % port}})
        c.wait_connected(n1, [2])
        c.put(n1, "t", "k", {"v": "1"})
        c.delete(n1, "t", "k")
        wait_until(lambda: self.tombstones(c, (n1, n2)) == {"n1": 1, "n2": 1},
                   30, "the delete to reach n2")
        wait_until(lambda: c.status(n1)["collection_held"] == "no status from node 3 yet",
                   30, "n1's status to say collection waits for node 3")
        _, out, _ = c.cli(n1, "status", check=False)
        self.assertIn("tombstone collection waits: no status from node 3 yet", out)

        def held_metric():
            text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                          timeout=10).read().decode()
            return [l for l in text.splitlines()
                    if l.startswith("msce_tombstone_collection_held ")]
        self.assertEqual(held_metric(), ["msce_tombstone_collection_held 1"])
        page = json.loads(urllib.request.urlopen(
            "http://127.0.0.1:%d/status.json" % port, timeout=10).read())
        self.assertEqual(page["collection_held"], "no status from node 3 yet")
        html = urllib.request.urlopen("http://127.0.0.1:%d/" % port,
                                      timeout=10).read().decode()
        self.assertIn("tombstone collection waits: no status from node 3 yet", html)

        c.start(n3)
        wait_until(lambda: set(self.tombstones(c, c.nodes).values()) == {0}, 60,
                   "the tombstone to be collected everywhere")
        wait_until(lambda: c.status(n1)["collection_held"] == "", 30,
                   "n1's collection to run")
        self.assertEqual(held_metric(), ["msce_tombstone_collection_held 0"])
        page = json.loads(urllib.request.urlopen(
            "http://127.0.0.1:%d/status.json" % port, timeout=10).read())
        self.assertEqual(page["collection_held"], "")
        html = urllib.request.urlopen("http://127.0.0.1:%d/" % port,
                                      timeout=10).read().decode()
        self.assertNotIn("tombstone collection waits", html)


if __name__ == "__main__":
    unittest.main()
