# SPDX-License-Identifier: Apache-2.0
"""What msce status and msce verify tell an operator (deploy/README.md,
"Status and alerts"): status exits 1 when a peer is behind more than
--max-lag seconds while every link is up; verify exits 0 once every node
reports the same digest now, 1 when they still differ after --timeout (a
node that does not answer: its last report is stale), 2 when the node
itself does not answer."""

import json
import os
import re
import subprocess
import time
import unittest
import urllib.request

from cluster import MSCE, ClusterTestCase, free_ports, norm_vv, wait_until


def hlc_ms(field):
    return int(field["hlc"]) >> 16


class StatusTest(ClusterTestCase):
    def rc(self, node, *args):
        r = subprocess.run([MSCE, "-c", node.config] + list(args),
                           capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout, r.stderr

    def test_max_lag(self):
        c = self.make_cluster(2, proxy=True)
        n1, n2 = c.nodes
        c.wait_connected(n1, [2])
        c.put(n1, "t", "a", {"v": "1"})
        c.wait_converged()
        self.assertEqual(self.rc(n1, "status", "--max-lag", "1")[0], 0)
        a = hlc_ms(c.get(n1, "t", "a")["fields"]["v"])
        # Node 2 holds a; the next change, 2.5 s younger, is held back by a
        # 60 s delay on every link (which stay up): node 2 is 2.5 s behind.
        wait_until(lambda: time.time() * 1000 > a + 2500, 10, "2.5 s to pass")
        c.proxy.delay("*", 60000)
        c.put(n1, "t", "b", {"v": "2"})
        st = c.status(n1)
        peer = {p["node"]: p for p in st["peers"]}[2]
        self.assertTrue(peer["connected"], st)
        self.assertEqual(peer["lag_changes"], 1, st)
        self.assertGreaterEqual(peer["lag_ms"], 2500, st)
        rc, out, err = self.rc(n1, "status", "--max-lag", "1")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("DEGRADED", out)
        self.assertEqual(self.rc(n1, "status", "--max-lag", "600")[0], 0)
        self.assertEqual(self.rc(n1, "status")[0], 0)  # links up: healthy
        rc, out, _ = self.rc(n1, "status", "--json", "--max-lag", "1")
        self.assertEqual((rc, json.loads(out)["healthy"]), (1, False))
        # The delay lifted (the links cut once so that nothing stays
        # queued in the proxy): node 2 catches up, healthy again.
        c.proxy.delay("*", 0)
        c.proxy.cut("*")
        c.proxy.resume("*")
        wait_until(lambda: self.rc(n1, "status", "--max-lag", "1")[0] == 0, 60,
                   "node 2 to catch up")
        c.wait_value(n2, "t", "b", "v", "2")

    def test_verify(self):
        c = self.make_cluster(2)
        n1, n2 = c.nodes
        c.wait_connected(n1, [2])
        c.put(n1, "t", "a", {"v": "1"})
        c.wait_converged()
        rc, out, err = self.rc(n1, "verify", "--timeout", "30")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.strip(), "verified: 2 nodes hold digest %s"
                         % c.status(n1)["digest"])
        # Node 2 stops answering. Its last report matches node 1, but once
        # it is older than 5 s (gossip renews it every second) verify no
        # longer counts it: it waits out its timeout, then says the nodes
        # differ, exit 1.
        c.stop(n2)

        def report_age():
            return {r["node"]: r for r in c.status(n1)["nodes"]}[2].get("age_ms", 0)
        wait_until(lambda: report_age() > 5000, 30, "node 2's report to age past 5 s")
        t0 = time.monotonic()
        rc, out, err = self.rc(n1, "verify", "--timeout", "2")
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 1, out + err)
        # It names the center that did not answer.
        self.assertEqual(err.strip(), "msce verify: nodes still differ after 2 s: "
                         "n2 (2): no report during this run (see msce status)")
        self.assertGreaterEqual(elapsed, 2.0)
        # A write node 2 does not have changes nothing.
        c.put(n1, "t", "b", {"v": "2"})
        self.assertEqual(self.rc(n1, "verify", "--timeout", "1")[0], 1)
        # Asked of the stopped node itself: unreachable, exit 2.
        rc, _, err = self.rc(n2, "verify", "--timeout", "1")
        self.assertEqual(rc, 2, err)
        # Back: verify passes again.
        c.start(n2)
        self.assertEqual(self.rc(n1, "verify", "--timeout", "60")[0], 0)

    def test_vector_names_each_origin_as_status_names_a_writer(self):
        """The node table's vector column gives each origin as
        node/incarnation:seq, the form of "writes under origin N/I"."""
        c = self.make_cluster(2)
        n1, n2 = c.nodes
        for i in range(3):
            c.put(n1, "t", "k%d" % i, {"v": str(i)})
        c.put(n2, "t", "j", {"v": "x"})
        c.wait_converged()
        want = []
        for node, seq in ((n1, 3), (n2, 1)):
            w = c.status(node)["writer"]
            m = re.search(r"writes under origin (\d+)/(\d+)",
                          self.rc(node, "status")[1])
            self.assertEqual((int(m.group(1)), int(m.group(2))),
                             (w & 0xffff, w >> 16))
            want.append(" %d/%d:%d " % (w & 0xffff, w >> 16, seq))

        def table():
            out = self.rc(n1, "status")[1]
            rows = out.split("report age", 1)[-1].splitlines()[1:]
            return out, [l + " " for l in rows if re.match(r"[12] ", l)]

        # Node 1's report of node 2 is as new as node 2's last gossip.
        wait_until(lambda: all(all(x in l for x in want)
                               for l in table()[1]) and
                   len(table()[1]) == 2, 30,
                   "node 1's reports to hold both vectors")
        out, rows = table()
        for line in rows:
            self.assertNotRegex(line, r" \d{6,}:", out)

    def test_lag_of_a_peer_not_heard_since_restart(self):
        """A peer down when this node restarts: what it holds is not known
        here until it speaks again. Status must say so, not show it as
        lacking every change (nor as holding everything)."""
        c = self.make_cluster(3, start=False)
        n1, n2, n3 = c.nodes
        port = free_ports(1)[0]
        c.begin(n1, n2, n3,
                settings={1: {"metrics_listen": "127.0.0.1:%d" % port}})
        c.wait_connected(n1, [2, 3])
        for i in range(5):
            c.put(n1, "t", "k%d" % i, {"v": str(i)})
        c.wait_converged()
        c.stop(n3)
        c.restart(n1)
        c.wait_connected(n1, [2])
        wait_until(lambda: {p["node"]: p for p in c.status(n1)["peers"]}[2]
                   .get("lag_known"), 30, "node 2's vector at node 1")
        st = c.status(n1)
        peers = {p["node"]: p for p in st["peers"]}
        self.assertFalse(peers[3]["connected"], st)
        self.assertFalse(peers[3]["lag_known"], st)
        self.assertIsNone(peers[3]["lag_changes"], st)
        self.assertIsNone(peers[3]["lag_ms"], st)
        self.assertEqual((peers[2]["lag_known"], peers[2]["lag_changes"]),
                         (True, 0), st)
        out = self.rc(n1, "status")[1]
        line = next(l for l in out.splitlines() if l.startswith("3 "))
        self.assertIn("unknown", line, out)
        page = json.loads(urllib.request.urlopen(
            "http://127.0.0.1:%d/status.json" % port, timeout=10).read())
        center = {x["node"]: x for x in page["centers"]}[3]
        self.assertIsNone(center["lag_changes"], center)
        self.assertFalse(center["lag_known"], center)
        metrics = urllib.request.urlopen(
            "http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
        self.assertRegex(metrics, r'msce_peer_lag_known\{[^}]*peer="3"[^}]*\} 0\n')
        self.assertRegex(metrics, r'msce_peer_lag_known\{[^}]*peer="2"[^}]*\} 1\n')
        self.assertNotRegex(metrics, r'msce_peer_lag_changes\{[^}]*peer="3"')
        # Node 3 back: its vector is known again, and it lacks nothing.
        c.start(n3)
        wait_until(lambda: {p["node"]: p for p in c.status(n1)["peers"]}[3]
                   .get("lag_changes") == 0, 30, "node 3 known again")


    def test_lag_of_a_peer_reached_through_a_third(self):
        """The link 1-2 cut, node 2 receives node 1's writes through node
        3. Node 1 hears node 2's own reports through node 3 too: its
        status must not show node 2 lacking what node 2 says it holds."""
        c = self.make_cluster(3, proxy=True)
        n1, n2, n3 = c.nodes
        c.wait_connected(n1, [2, 3])
        c.cut_link(n1, n2)
        c.wait_connected(n1, [2], connected=False)
        for i in range(5):
            c.put(n1, "t", "k%d" % i, {"v": str(i)})
        mine = norm_vv(c.status(n1)["vv"])

        def n2_holds_all():
            st = c.status(n1)
            rep = {r["node"]: r for r in st["nodes"]}[2]
            return st if norm_vv(rep.get("vv")) == mine else None
        st = wait_until(n2_holds_all, 30, "node 2's report of all of node 1's writes")
        peer = {p["node"]: p for p in st["peers"]}[2]
        self.assertFalse(peer["connected"], st)
        self.assertEqual((peer["lag_changes"], peer["lag_ms"]), (0, 0), st)


    def test_behind_from_the_first_hello(self):
        """A node back from an outage learns from its peers' Hellos what
        it lacks; it must not call itself healthy until their first
        status (a gossip interval later) says so too."""
        c = self.make_cluster(2, proxy=True)
        n1, n2 = c.nodes
        c.wait_connected(n1, [2])
        c.stop(n2)
        path = os.path.join(c.dir, "many.jsonl")
        with open(path, "w") as f:
            for i in range(20000):
                f.write(json.dumps({"collection": "t", "key": "k%06d" % i,
                                    "fields": {"v": "x" * 100}}) + "\n")
        self.assertEqual(self.rc(n1, "--timeout", "120", "import", path)[0], 0)
        total = sum(norm_vv(c.status(n1)["vv"]).values())
        c.proxy.delay("*", 300)  # catching up takes a few round trips
        c.start(n2, wait=False)
        deadline = time.monotonic() + 45
        seen_up = False
        while time.monotonic() < deadline:
            rc, out, _ = self.rc(n2, "status", "--json", "--timeout", "2")
            try:
                st = json.loads(out)
            except ValueError:
                continue
            if "vv" not in st:
                continue
            lacks = total - sum(norm_vv(st["vv"]).values())
            seen_up = seen_up or all(p["connected"] for p in st["peers"])
            if lacks >= 1000:  # the README's threshold for "behind"
                self.assertNotEqual(rc, 0, st)
            if all(p["connected"] for p in st["peers"]):
                self.assertEqual(st["inbound_lag_changes"], lacks, st)
            elif seen_up:
                break
        self.assertTrue(seen_up)


if __name__ == "__main__":
    unittest.main()
