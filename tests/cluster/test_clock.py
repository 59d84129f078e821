"""Clocks: a center whose clock runs 10 minutes ahead (msced under
libfaketime) does not poison the others: its changes wait, every other
node's clock stays put, status shows its offset and the refusal, and the
clock alarm metric is set. Its own view of the others is unaffected. A
max_clock_skew set in the config replaces the default (60 s)."""

import json
import os
import time
import unittest
import urllib.request

import cluster
from cluster import ClusterTestCase, wait_until

OFFSET_MS = 600_000


def hlc_ms(field):
    return int(field["hlc"]) >> 16


LIBFAKETIME = next((p for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                                 "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1")
                    if os.path.exists(p)), None)


@unittest.skipUnless(LIBFAKETIME, "libfaketime is not installed")
class ClockTest(ClusterTestCase):
    def test_node_ten_minutes_ahead(self):
        c = self.make_cluster(3, start=False)
        n1, n2, n3 = c.nodes
        port = cluster.free_ports(1)[0]
        c.write_config(n1, metrics_listen="127.0.0.1:%d" % port)
        # Preloaded into msced itself (the faketime wrapper would fork, and
        # the harness must signal msced's own PID). ASan builds accept it.
        n3.env = {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": "+10m",
                  "ASAN_OPTIONS": "verify_asan_link_order=0:" +
                  os.environ.get("ASAN_OPTIONS", "")}
        c.start_all()
        # The skewed node still connects: its offset is visible.
        def offset_seen():
            peers = {p["node"]: p for p in c.status(n1)["peers"]}
            return peers[3]["connected"] and peers[3]["clock_offset_ms"] > OFFSET_MS - 30_000
        wait_until(offset_seen, 30, "node 1 to see node 3's clock offset")

        origin, seq = c.put(n3, "t", "from-the-future", {"v": "x"})
        self.assertEqual(origin & 0xffff, 3)
        fut = c.get(n3, "t", "from-the-future")["fields"]["v"]
        self.assertGreater(hlc_ms(fut), time.time() * 1000 + OFFSET_MS - 30_000)

        # Node 1 refuses it and says why; the write waits at node 3.
        def refused():
            peers = {p["node"]: p for p in c.status(n1)["peers"]}
            return peers[3]["clock_refused"]
        wait_until(refused, 30, "node 1 to refuse node 3's changes")
        self.assertIsNone(c.get(n1, "t", "from-the-future"))
        self.assertIsNone(c.get(n2, "t", "from-the-future"))
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                      timeout=10).read().decode()
        self.assertIn("msce_clock_alarm 1", text)

        # The others' clocks were not dragged ahead: a new write at node 1
        # is stamped with the real time.
        c.put(n1, "t", "now", {"v": "y"})
        now = c.get(n1, "t", "now")["fields"]["v"]
        self.assertLess(abs(hlc_ms(now) - time.time() * 1000), 30_000)
        # Writes from the others reach the skewed node normally.
        wait_until(lambda: c.get(n3, "t", "now") is not None, 30,
                   "node 3 to receive node 1's write")
        # Nothing counted as a protocol error.
        for node in (n1, n2):
            self.assertEqual(c.counters(node).get("protocol_errors", 0), 0)

    def test_max_clock_skew_from_the_config(self):
        # Node 3 runs 3 minutes ahead. Node 1 is configured to accept up
        # to 10 minutes of skew and takes its change; node 2 keeps the
        # default (60 s) and refuses it.
        c = self.make_cluster(3, start=False)
        n1, n2, n3 = c.nodes
        c.write_config(n1, max_clock_skew="10m")
        n3.env = {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": "+3m",
                  "ASAN_OPTIONS": "verify_asan_link_order=0:" +
                  os.environ.get("ASAN_OPTIONS", "")}
        c.start_all()
        c.wait_connected(n1, [2, 3])
        c.wait_connected(n2, [1, 3])
        c.put(n3, "t", "ahead", {"v": "x"})
        c.wait_value(n1, "t", "ahead", "v", "x")

        def n2_refuses():
            return {p["node"]: p for p in c.status(n2)["peers"]}[3]["clock_refused"]
        wait_until(n2_refuses, 30, "node 2 to refuse node 3's change")
        self.assertIsNone(c.get(n2, "t", "ahead"))
        self.assertFalse({p["node"]: p for p in c.status(n1)["peers"]}[3]["clock_refused"])
        self.assertEqual(c.counters(n1).get("clock_refusals", 0), 0)


if __name__ == "__main__":
    unittest.main()
