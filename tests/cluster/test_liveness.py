# SPDX-License-Identifier: Apache-2.0
"""A silent link (issue 10, item 7): the TCP connection stays open and
every byte is dropped. Both ends must report the peer down within the
replication liveness bound, `msce status` must say degraded, data must
still flow around the link by relay, and the link must come back once the
path carries bytes again."""

import time
import unittest

from cluster import ClusterTestCase, wait_until

LIVENESS_S = 5  # no authenticated message for five gossip intervals
SLACK_S = 5  # status polls, a loaded machine
BLACKHOLE_S = 40


class LivenessTest(ClusterTestCase):
    def peer_connected(self, c, node, peer_id):
        peers = {q["node"]: q for q in c.status(node)["peers"]}
        return bool(peers[peer_id]["connected"])

    def test_blackholed_link_is_reported_down(self):
        c = self.make_cluster(3, proxy=True)
        n1, n2, n3 = c.nodes
        for x in c.nodes:
            c.wait_connected(x, [y.id for y in c.nodes if y is not x])
        c.put(n1, "t", "before", {"v": "0"})
        c.wait_converged()
        established = sum(c.counters(x)["sessions_established"] for x in (n1, n2))

        # Both directions of n1-n2, whichever end dialled the session.
        link = (c.links[(n1.id, n2.id)], c.links[(n2.id, n1.id)])
        c.proxy.cut(*link, mode="blackhole")
        t0 = time.monotonic()

        # Within the bound, each end reports the other down.
        deadline = t0 + LIVENESS_S + SLACK_S
        wait_until(lambda: not self.peer_connected(c, n1, n2.id)
                   and not self.peer_connected(c, n2, n1.id),
                   deadline - time.monotonic(),
                   "n1 and n2 to report each other down (blackholed link)")
        for x in (n1, n2):
            self.assertEqual(c.cli(x, "status", check=False)[0], 1,
                             "%s: status should exit 1 (degraded)" % x.name)
        c.wait_connected(n3, [n1.id, n2.id])

        # A write at n1 reaches n2 through n3 while the link is silent.
        c.put(n1, "t", "during", {"v": "1"})
        c.wait_value(n2, "t", "during", "v", "1",
                     timeout=t0 + BLACKHOLE_S - 2 - time.monotonic())

        # It stays down as long as the path drops everything: no handshake
        # can pass it.
        while time.monotonic() < t0 + BLACKHOLE_S:
            self.assertFalse(self.peer_connected(c, n1, n2.id), "n1 sees n2 up")
            self.assertFalse(self.peer_connected(c, n2, n1.id), "n2 sees n1 up")
            time.sleep(1)

        # The path carries bytes again: the link comes back on a new session.
        c.proxy.resume(*link)
        c.wait_connected(n1, [n2.id], timeout=30)
        c.wait_connected(n2, [n1.id], timeout=30)
        for x in c.nodes:
            wait_until(lambda: c.cli(x, "status", check=False)[0] == 0, 20,
                       "%s healthy" % x.name)
        self.assertGreater(sum(c.counters(x)["sessions_established"] for x in (n1, n2)),
                           established)
        c.put(n2, "t", "after", {"v": "2"})
        c.wait_value(n1, "t", "after", "v", "2")
        c.wait_converged()


if __name__ == "__main__":
    unittest.main()
