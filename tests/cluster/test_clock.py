# SPDX-License-Identifier: Apache-2.0
"""Clocks: a center whose clock runs 10 minutes ahead (msced under
libfaketime) does not poison the others: beyond max_clock_skew its message
1 timestamps are refused at the handshake (counted, and logged with the
offset), so it cannot connect (nor, as a new store, take writes), and
every other node's clock stays put. A max_clock_skew set in the config replaces the
default (60 s), for the handshake and for changes alike."""

import json
import os
import re
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
        # Nodes 1 and 2 are the city; node 3 is added, its clock off.
        c.begin(n1, n2, settings={1: {"metrics_listen": "127.0.0.1:%d" % port}})
        # Preloaded into msced itself (the faketime wrapper would fork, and
        # the harness must signal msced's own PID). ASan builds accept it.
        n3.env = {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": "+10m",
                  "ASAN_OPTIONS": "verify_asan_link_order=0:" +
                  os.environ.get("ASAN_OPTIONS", "")}
        log1 = n1.log_size()
        c.start(n3)
        c.wait_connected(n1, [2])
        # The skewed node cannot connect: its message 1 is refused, and the
        # log says by how much it is off.
        c.wait_counter(n1, "refused_clock_skew", 0, timeout=30)
        c.wait_counter(n2, "refused_clock_skew", 0, timeout=30)
        c.wait_counter(n3, "refused_clock_skew", 0, timeout=30)
        # Ten minutes, less the time message 1 took to arrive (599999 is
        # common): the logged offset is the sender's stamp minus our clock.
        def offset_logged():
            return any(590_000 <= int(m) <= 610_000 for m in
                       re.findall(r"timestamp \+(\d+) ms off our clock",
                                  n1.log_since(log1)))
        wait_until(offset_logged, 10, "node 1 to log node 3's offset")
        peers = {p["node"]: p for p in c.status(n1)["peers"]}
        self.assertFalse(peers[3]["connected"])
        # Status says why, not only "link down": the clock, by how much.
        self.assertTrue(peers[3]["clock_refused"])
        self.assertLess(abs(peers[3]["clock_offset_ms"] - 600_000), 10_000)
        self.assertTrue(any(p.startswith("n3 (3) refused for its clock (+")
                            for p in c.status(n1)["problem_list"]),
                        c.status(n1)["problem_list"])

        # It keeps trying and keeps being refused; it has no session, so
        # (a new store) it cannot even take writes.
        before = c.counters(n1)["refused_clock_skew"]
        c.wait_counter(n1, "refused_clock_skew", before, timeout=30)
        self.assertFalse(any(p["connected"] for p in c.status(n3)["peers"]))
        with self.assertRaises(cluster.CliError):
            c.put(n3, "t", "from-the-future", {"v": "x"})
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                      timeout=10).read().decode()
        m = re.search(r'msce_handshake_failures_total\{reason="clock_skew"\} (\d+)', text)
        self.assertTrue(m and int(m.group(1)) > 0, text)
        self.assertIn("\nmsce_clock_alarm 1\n", text)

        # The others' clocks were not dragged ahead: a new write at node 1
        # is stamped with the real time, and reaches node 2.
        c.put(n1, "t", "now", {"v": "y"})
        now = c.get(n1, "t", "now")["fields"]["v"]
        self.assertLess(abs(hlc_ms(now) - time.time() * 1000), 30_000)
        c.wait_value(n2, "t", "now", "v", "y")
        # Nothing counted as a protocol error.
        for node in (n1, n2):
            self.assertEqual(c.counters(node).get("protocol_errors", 0), 0)

    def test_max_clock_skew_from_the_config(self):
        # Node 3 runs 3 minutes ahead. Node 1 is configured to accept up
        # to 10 minutes of skew: it takes node 3's dial (node 3 refuses
        # node 1's, on the default) and its change; node 2 keeps the
        # default (60 s) and refuses both.
        c = self.make_cluster(3, start=False)
        n1, n2, n3 = c.nodes
        c.write_config(n1, max_clock_skew="10m")
        n3.env = {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": "+3m",
                  "ASAN_OPTIONS": "verify_asan_link_order=0:" +
                  os.environ.get("ASAN_OPTIONS", "")}
        c.start_all()
        c.wait_connected(n1, [2, 3])
        c.wait_connected(n2, [1])
        c.put(n3, "t", "ahead", {"v": "x"})
        c.wait_value(n1, "t", "ahead", "v", "x")

        # Node 2 refuses node 3's handshakes (3 minutes off its clock), and
        # the change when node 1 relays it.
        c.wait_counter(n2, "refused_clock_skew", 0, timeout=30)

        def n2_refuses():
            return c.counters(n2).get("clock_refusals", 0) > 0
        wait_until(n2_refuses, 30, "node 2 to refuse node 3's change")
        self.assertTrue({p["node"]: p for p in c.status(n2)["peers"]}[3]["clock_refused"])
        self.assertIsNone(c.get(n2, "t", "ahead"))
        self.assertFalse({p["node"]: p for p in c.status(n1)["peers"]}[3]["clock_refused"])
        self.assertEqual(c.counters(n1).get("clock_refusals", 0), 0)


if __name__ == "__main__":
    unittest.main()
