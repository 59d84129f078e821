# SPDX-License-Identifier: Apache-2.0
"""Convergence: writes made at several nodes of a 3- and an 8-node cluster
reach every node, which then report equal digests and version vectors."""

import unittest

from cluster import ClusterTestCase, norm_vv


def registration(doc, name):
    return {"name": name, "nationality": "FRA", "document_type": "passport",
            "document_number": doc}


class ConvergeTest(ClusterTestCase):
    def write_everywhere(self, c, per_node):
        """per_node writes at each node; returns {(coll, key): fields} and
        the highest acknowledged seq per origin."""
        expect, seqs = {}, {}
        for node in c.nodes:
            for i in range(per_node):
                key = "%s-k%d" % (node.name, i)
                fields = {"v": str(i), "at": node.name}
                origin, seq = c.put(node, "t", key, fields)
                # An origin is the node id and its store's incarnation.
                self.assertEqual(origin & 0xffff, node.id)
                seqs[origin] = max(seqs.get(origin, 0), seq)
                expect[("t", key)] = fields
        return expect, seqs

    def check(self, c, expect, seqs):
        statuses = c.wait_converged(timeout=60)
        for name, s in statuses.items():
            vv = norm_vv(s["vv"])
            for origin, seq in seqs.items():
                self.assertGreaterEqual(vv.get(str(origin), 0), seq,
                                        "%s vv %s lacks %d/%d" % (name, vv, origin, seq))
        for node in c.nodes:
            for (coll, key), fields in expect.items():
                self.assertEqual(c.values(node, coll, key), fields,
                                 "%s %s/%s" % (node.name, coll, key))

    def test_three_nodes(self):
        c = self.make_cluster(3)
        expect, seqs = self.write_everywhere(c, 10)
        # Overwrites, a shared record written field by field at every node,
        # a domain record and a delete.
        for node in c.nodes:
            c.put(node, "t", "shared", {"f%d" % node.id: node.name})
        c.put(c.nodes[0], "registration", "FRA:AB123", registration("AB123", "Alice Martin"))
        c.put(c.nodes[1], "t", "n1-k0", {"v": "changed", "at": "n1"})
        expect[("t", "n1-k0")] = {"v": "changed", "at": "n1"}
        c.delete(c.nodes[2], "t", "n2-k1")
        del expect[("t", "n2-k1")]
        self.check(c, expect, seqs)
        for node in c.nodes:
            self.assertEqual(c.values(node, "t", "shared"),
                             {"f1": "n1", "f2": "n2", "f3": "n3"})
            self.assertIsNone(c.get(node, "t", "n2-k1"))
            self.assertEqual(c.values(node, "registration", "FRA:AB123")["name"], "Alice Martin")

    def test_eight_nodes(self):
        c = self.make_cluster(8)
        expect, seqs = self.write_everywhere(c, 4)
        self.check(c, expect, seqs)
        for s in c.wait_converged().values():
            self.assertEqual(s["conflicts"], 0)
            connected = [p["node"] for p in s["peers"] if p.get("connected")]
            self.assertEqual(len(connected), 7, s["peers"])

    def test_restart_keeps_state(self):
        # A graceful restart neither loses nor re-sends anything.
        c = self.make_cluster(3)
        expect, seqs = self.write_everywhere(c, 5)
        before = c.wait_converged()
        self.assertEqual(c.restart(c.nodes[1]), 0)
        after = c.wait_converged()
        self.assertEqual({s["digest"] for s in before.values()},
                         {s["digest"] for s in after.values()})
        self.check(c, expect, seqs)


if __name__ == "__main__":
    unittest.main()
