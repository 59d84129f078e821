# SPDX-License-Identifier: Apache-2.0
"""One process per store and per node key (issue 10, item 6).

A second msced on a data directory that a running msced holds is refused
at start, naming the holder's pid, and the first one keeps serving; a
SIGKILLed holder leaves the directory free for its restart. A second msced
with a node's key and id on another data directory does not take that
node's links: its peers keep the session that was up, warn, count the
refusals in status and in Prometheus, and once the copy is gone the cluster
is healthy with the same sessions it had."""

import os
import re
import subprocess
import time
import unittest
import urllib.request

from cluster import MSCED, ClusterTestCase, free_ports, reap, spawn, wait_until

WINDOW = 8  # seconds the links are watched while the copy runs


class IdentityTest(ClusterTestCase):
    def start_copy(self, c, node, name, **overrides):
        """Starts a second msced with node's config (its key and id) but
        the [node] overrides, logging to DIR/NAME.log. Returns (Popen, log
        path); the process is killed at cleanup."""
        conf = os.path.join(c.dir, name + ".conf")
        log_path = os.path.join(c.dir, name + ".log")
        c.write_config(node, path=conf, **overrides)
        with open(log_path, "ab") as log:
            p = spawn([MSCED, "-c", conf], stdin=subprocess.DEVNULL,
                      stdout=log, stderr=log, cwd=c.dir)
        self.addCleanup(reap, p, 5)
        return p, log_path

    @staticmethod
    def read(path):
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def test_second_msced_on_a_data_dir_is_refused(self):
        c = self.make_cluster(2)
        n1, n2 = c.nodes
        c.put(n1, "t", "before", {"v": "1"})
        c.wait_value(n2, "t", "before", "v", "1")

        # Same data directory; its own listen port and socket, so that
        # nothing but the directory stands in its way.
        port = free_ports(1)[0]
        p, log_path = self.start_copy(
            c, n1, "second", listen="127.0.0.1:%d" % port,
            socket=os.path.join(c.dir, "second.sock"))
        try:
            rc = p.wait(15)
        except subprocess.TimeoutExpired:
            rc = None
        text = self.read(log_path)
        self.assertIsNotNone(rc, "a second msced on %s still runs after 15 s; "
                             "its log:\n%s" % (n1.data_dir, text))
        self.assertNotEqual(rc, 0)
        self.assertIn("pid %d" % n1.proc.pid, text)
        self.assertIn(n1.data_dir, text)
        self.assertNotIn(" started", text)

        # The first one serves on, and its link is untouched.
        c.check_alive(n1)
        c.put(n1, "t", "after", {"v": "2"})
        c.wait_value(n2, "t", "after", "v", "2")
        self.assertEqual(c.cli(n1, "status", check=False)[0], 0)

        # Killed with SIGKILL, the holder leaves the lock to the kernel:
        # the restart takes it.
        c.kill9(n1)
        c.start(n1)
        self.assertEqual(c.values(n1, "t", "after"), {"v": "2"})
        c.wait_connected(n1, [2])

    def test_second_msced_with_a_node_key_does_not_take_its_links(self):
        c = self.make_cluster(3, start=False)
        n1, n2, n3 = c.nodes
        mport = free_ports(1)[0]
        c.write_config(n2, metrics_listen="127.0.0.1:%d" % mport)
        c.start_all()
        for x in c.nodes:
            c.wait_connected(x, [y.id for y in c.nodes if y is not x])
        c.put(n1, "t", "before", {"v": "1"})
        c.wait_converged()
        established = {x.name: c.counters(x)["sessions_established"] for x in c.nodes}
        offsets = {x.name: x.log_size() for x in (n2, n3)}

        # A copy of n1 (its key, its id, its peers) on a data directory of
        # its own, as on a cloned machine.
        port = free_ports(1)[0]
        p, log_path = self.start_copy(
            c, n1, "copy", data_dir=os.path.join(c.dir, "copy-data"),
            listen="127.0.0.1:%d" % port,
            socket=os.path.join(c.dir, "copy.sock"))
        for x in (n2, n3):
            c.wait_counter(x, "duplicate_sessions", 0, timeout=20)

        # While it runs, every link stays up and no session restarts.
        deadline = time.monotonic() + WINDOW
        while time.monotonic() < deadline:
            self.assertIsNone(p.poll(), "the copy exited:\n" + self.read(log_path))
            for x in c.nodes:
                down = [q["node"] for q in c.status(x)["peers"] if not q["connected"]]
                self.assertEqual(down, [], "%s sees %s down while a copy of n1 runs"
                                 % (x.name, down))
            time.sleep(0.2)
        for x in c.nodes:
            self.assertEqual(c.counters(x)["sessions_established"],
                             established[x.name],
                             "%s: sessions were re-established while a copy "
                             "of n1 ran" % x.name)

        # The peers say so: a WARN naming node 1, the counter in status and
        # in Prometheus.
        for x in (n2, n3):
            text = x.log_since(offsets[x.name])
            self.assertRegex(text, r" WARN .*\bnode 1\b")
            self.assertGreater(c.counters(x)["duplicate_sessions"], 0)
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                    timeout=10) as r:
            metrics = r.read().decode()
        m = re.search(r"^msce_peer_duplicate_sessions_total (\d+)$", metrics, re.M)
        self.assertTrue(m and int(m.group(1)) > 0, "no duplicate count in metrics")

        # The copy gone, everything is healthy on the sessions it had.
        reap(p, 10)
        for x in c.nodes:
            wait_until(lambda: c.cli(x, "status", check=False)[0] == 0, 20,
                       "%s healthy" % x.name)
        c.put(n1, "t", "after", {"v": "2"})
        c.put(n3, "t", "after3", {"v": "3"})
        c.wait_value(n3, "t", "after", "v", "2")
        c.wait_value(n1, "t", "after3", "v", "3")
        c.wait_converged()
        for x in c.nodes:
            self.assertEqual(c.counters(x)["sessions_established"],
                             established[x.name], x.name)


if __name__ == "__main__":
    unittest.main()
