# SPDX-License-Identifier: Apache-2.0
"""Crashes: a node killed with SIGKILL in the middle of a stream of writes
loses none it acknowledged; after its restart every acknowledged write,
its own and the others', is on every node."""

import threading
import time
import unittest

from cluster import CliError, ClusterTestCase, wait_until


class Writer(threading.Thread):
    """Puts t/<prefix>-<i> = {"v": i} at one node until stopped, recording
    which were acknowledged (with their ORIGIN/SEQ) and which failed (maybe
    committed, maybe not)."""

    def __init__(self, cluster, node, prefix):
        super().__init__(daemon=True)
        self.c, self.node, self.prefix = cluster, node, prefix
        self.acked = []  # (key, value, origin, seq) in acknowledgement order
        self.failed = []  # (key, value)
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.error = None

    def run(self):
        i = 0
        try:
            while not self.halt.is_set():
                key, value = "%s-%d" % (self.prefix, i), str(i)
                i += 1
                try:
                    origin, seq = self.c.put(self.node, "t", key, {"v": value})
                except CliError:
                    with self.lock:
                        self.failed.append((key, value))
                    time.sleep(0.05)  # node down: do not spin
                    continue
                with self.lock:
                    self.acked.append((key, value, origin, seq))
        except Exception as e:  # reported by the test, not lost in a thread
            self.error = e

    def n_acked(self):
        with self.lock:
            return len(self.acked)

    def stop(self):
        self.halt.set()
        self.join(30)
        if self.is_alive():
            raise AssertionError("writer at %s did not stop" % self.node.name)
        if self.error:
            raise self.error


class CrashTest(ClusterTestCase):
    def start_writer(self, c, node, prefix):
        w = Writer(c, node, prefix)
        w.start()
        self.addCleanup(w.halt.set)
        return w

    def wait_acks(self, w, more, timeout=60):
        target = w.n_acked() + more
        wait_until(lambda: w.n_acked() >= target, timeout,
                   "%d more acknowledged writes at %s" % (more, w.node.name))

    def check_writers(self, c, writers):
        c.wait_converged(timeout=90)
        for w in writers:
            self.assertGreater(len(w.acked), 0)
            # Seqs of one origin are never reused, even across a crash.
            seqs = [seq for (_, _, origin, seq) in w.acked]
            self.assertEqual(seqs, sorted(set(seqs)),
                             "%s acknowledged a seq twice or out of order" % w.node.name)
            for node in c.nodes:
                for key, value, origin, seq in w.acked:
                    got = c.values(node, "t", key)
                    self.assertEqual(got, {"v": value},
                                     "%s lost %s (acked as %d/%d by %s)"
                                     % (node.name, key, origin, seq, w.node.name))
                # Failed writes may or may not exist, but never wrong.
                for key, value in w.failed:
                    got = c.values(node, "t", key)
                    self.assertIn(got, (None, {"v": value}), "%s %s" % (node.name, key))

    def test_kill_writing_node(self):
        c = self.make_cluster(3)
        victim = c.nodes[1]
        w_victim = self.start_writer(c, victim, "victim")
        w_other = self.start_writer(c, c.nodes[0], "other")
        for cycle in range(3):
            self.wait_acks(w_victim, 20)
            # A random moment inside the stream, not right after an ack.
            time.sleep(self.rng.uniform(0, 0.3))
            c.kill9(victim)
            time.sleep(self.rng.uniform(0.2, 1.0))
            c.start(victim)
        self.wait_acks(w_victim, 20)
        self.wait_acks(w_other, 5)
        w_victim.stop()
        w_other.stop()
        self.assertGreater(len(w_victim.failed), 0,
                           "no write failed while the node was down")
        self.check_writers(c, [w_victim, w_other])

    def test_kill_receiving_node(self):
        # Killed while applying a stream of changes from a peer.
        c = self.make_cluster(3)
        w = self.start_writer(c, c.nodes[0], "stream")
        for cycle in range(3):
            self.wait_acks(w, 20)
            time.sleep(self.rng.uniform(0, 0.3))
            c.kill9(c.nodes[2])
            self.wait_acks(w, 5)  # it falls behind while down
            c.start(c.nodes[2])
        self.wait_acks(w, 10)
        w.stop()
        self.check_writers(c, [w])

    def test_sigterm_during_writes_exits_cleanly(self):
        c = self.make_cluster(2)
        w = self.start_writer(c, c.nodes[0], "term")
        self.wait_acks(w, 20)
        self.assertEqual(c.stop(c.nodes[0]), 0, "msced did not exit 0 on SIGTERM")
        c.start(c.nodes[0])
        self.wait_acks(w, 10)
        w.stop()
        self.check_writers(c, [w])


if __name__ == "__main__":
    unittest.main()
