"""Partitions: the fault proxy cuts every link between two groups; both
sides keep taking writes (the same person registered on both sides among
them), and after the heal every node converges to one state that records
the same conflicts everywhere."""

import time
import unittest

from cluster import ClusterTestCase

REG_KEY = "FRA:AB123"


def registration(name, **extra):
    return dict({"name": name, "nationality": "FRA",
                 "document_type": "passport", "document_number": "AB123"}, **extra)


class PartitionTest(ClusterTestCase):
    def test_split_brain_heals_with_conflicts(self):
        c = self.make_cluster(4, proxy=True)
        n1, n2, n3, n4 = c.nodes
        c.put(n1, "t", "before", {"v": "0"})
        for s in c.wait_converged().values():
            self.assertEqual(s["conflicts"], 0)

        c.partition([n1, n2], [n3, n4])
        c.wait_connected(n1, [3, 4], connected=False)
        c.wait_connected(n3, [1, 2], connected=False)

        # The same registration at a desk on each side, differing in name
        # and phone; plain writes on both sides as well.
        c.put(n1, "registration", REG_KEY, registration("Alice Martin", phone="+8613800000001"))
        c.put(n3, "registration", REG_KEY, registration("Alice Dupont", phone="+8613800000002"))
        for i in range(20):
            c.put(n2, "t", "left-%d" % i, {"v": str(i)})
            c.put(n4, "t", "right-%d" % i, {"v": str(i)})
        c.put(n2, "t", "before", {"v": "left"})
        c.put(n4, "t", "before", {"v": "right"})

        # Each side converges on its own and sees nothing of the other.
        c.wait_converged([n1, n2])
        c.wait_converged([n3, n4])
        self.assertIsNone(c.get(n1, "t", "right-0"))
        self.assertIsNone(c.get(n4, "t", "left-0"))
        self.assertEqual(c.values(n2, "registration", REG_KEY)["name"], "Alice Martin")
        self.assertEqual(c.values(n4, "registration", REG_KEY)["name"], "Alice Dupont")
        # Nothing crosses the cut, not even by relay.
        time.sleep(1)
        self.assertIsNone(c.get(n3, "t", "left-19"))

        c.heal()
        statuses = c.wait_converged(timeout=90)
        conflicts = {name: s["conflicts"] for name, s in statuses.items()}
        self.assertEqual(len(set(conflicts.values())), 1, conflicts)
        self.assertGreater(conflicts["n1"], 0, "no conflict recorded")

        # One winner per field, the same everywhere.
        winners = [c.values(x, "registration", REG_KEY) for x in c.nodes]
        self.assertTrue(all(w == winners[0] for w in winners), winners)
        self.assertIn(winners[0]["name"], ("Alice Martin", "Alice Dupont"))
        self.assertIn(winners[0]["phone"], ("+8613800000001", "+8613800000002"))
        self.assertIn(c.values(n1, "t", "before")["v"], ("left", "right"))
        for x in c.nodes:
            for i in (0, 19):
                self.assertEqual(c.values(x, "t", "left-%d" % i), {"v": str(i)})
                self.assertEqual(c.values(x, "t", "right-%d" % i), {"v": str(i)})

    def test_relay_around_a_cut_link(self):
        # n1-n3 is cut but n2 sees both: changes still reach n3 (relay).
        c = self.make_cluster(3, proxy=True)
        n1, n2, n3 = c.nodes
        c.cut_link(n1, n3)
        c.wait_connected(n1, [3], connected=False)
        for i in range(10):
            c.put(n1, "t", "relayed-%d" % i, {"v": str(i)})
        c.wait_value(n3, "t", "relayed-9", "v", "9", timeout=60)
        c.wait_converged(timeout=60)
        c.resume_link(n1, n3)
        c.wait_connected(n1, [2, 3], connected=True)

    def test_flapping_links(self):
        # Links cut and restored over and over while writes go on.
        c = self.make_cluster(3, proxy=True)
        n1, n2, n3 = c.nodes
        for round_ in range(6):
            a, b = self.rng.sample(c.nodes, 2)
            c.cut_link(a, b)
            for x in c.nodes:
                c.put(x, "t", "flap-%d-%s" % (round_, x.name), {"v": str(round_)})
            time.sleep(self.rng.uniform(0.1, 1.0))
            c.heal()
        statuses = c.wait_converged(timeout=90)
        for x in c.nodes:
            self.assertEqual(c.values(x, "t", "flap-5-n1"), {"v": "5"})
        self.assertEqual({s["conflicts"] for s in statuses.values()}, {0})

    def test_slow_link(self):
        # A 300 ms delay on every link only slows things down.
        c = self.make_cluster(3, proxy=True)
        c.proxy.delay("*", 300)
        for x in c.nodes:
            for i in range(5):
                c.put(x, "t", "slow-%s-%d" % (x.name, i), {"v": str(i)})
        c.wait_converged(timeout=90)
        for x in c.nodes:
            self.assertEqual(c.values(x, "t", "slow-n3-4"), {"v": "4"})


if __name__ == "__main__":
    unittest.main()
