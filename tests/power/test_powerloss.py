# SPDX-License-Identifier: Apache-2.0
"""Power loss at a node: msced runs under the power-loss interposer
(powerloss.c), is killed with SIGKILL in the middle of a stream of writes,
and its data file is rolled back to what was synced (powerloss-rollback)
before it restarts. Every write it acknowledged must still be there, and it
must have synced at least once per acknowledged write (one writer, so one
commit each). Against msced-nofsync, whose store ignores `fsync = true`,
this test must fail with "lost acknowledged write" (ctest
power_cluster_catches_nofsync); test_crash.py cannot tell the two apart."""

import os
import subprocess
import time
import unittest

from cluster import ClusterTestCase, wait_until
from test_crash import Writer

PRELOAD = os.environ.get("MSCE_POWERLOSS_PRELOAD")
ROLLBACK = os.environ.get("MSCE_POWERLOSS_ROLLBACK")


def read_stats(path):
    """The interposer's counters: writes, durable_writes, syncs, unsynced."""
    with open(path) as f:
        return {k: int(v) for k, v in (line.split() for line in f if line.strip())}


class PowerLossTest(ClusterTestCase):
    def setUp(self):
        if not PRELOAD or not ROLLBACK:
            self.fail("MSCE_POWERLOSS_PRELOAD and MSCE_POWERLOSS_ROLLBACK "
                      "are not set (ctest sets them)")

    def test_acknowledged_writes_survive_power_loss(self):
        c = self.make_cluster(1, start=False)
        node = c.nodes[0]
        journal = os.path.join(node.dir, "powerloss.journal")
        stats = os.path.join(node.dir, "powerloss.stats")
        node.env = {
            "LD_PRELOAD": PRELOAD,
            "MSCE_POWERLOSS_FILE": os.path.join(node.data_dir, "data.mdb"),
            "MSCE_POWERLOSS_JOURNAL": journal,
            "MSCE_POWERLOSS_STATS": stats,
        }
        writers = []
        c.start(node)
        for cycle in range(3):
            w = Writer(c, node, "p%d" % cycle)
            w.start()
            self.addCleanup(w.halt.set)
            wait_until(lambda: w.n_acked() >= 20, 60, "20 acknowledged writes")
            # A random moment inside the stream, not right after an ack.
            time.sleep(self.rng.uniform(0, 0.3))
            c.kill9(node)
            w.stop()
            writers.append(w)
            st = read_stats(stats)
            # Even cycles keep only what was synced; odd ones also a random
            # subset of the unsynced pages (the disk may reorder them).
            argv = [ROLLBACK, journal]
            if cycle % 2:
                argv[1:1] = ["--seed", str(self.rng.randrange(1 << 32))]
            r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            print(r.stdout.strip())
            c.start(node)

            for wr in writers:
                for key, value, origin, seq in wr.acked:
                    got = c.values(node, "t", key)
                    if got != {"v": value}:
                        self.fail("lost acknowledged write %s=%s (acked as "
                                  "%d/%d, cycle %d): after the power cut it "
                                  "holds %r" % (key, value, origin, seq, cycle, got))
                for key, value in wr.failed:
                    self.assertIn(c.values(node, "t", key), (None, {"v": value}), key)
            self.assertGreaterEqual(
                st["syncs"], len(w.acked),
                "%d writes acknowledged with %d syncs of data.mdb: %r"
                % (len(w.acked), st["syncs"], st))
            self.assertGreaterEqual(st["durable_writes"], len(w.acked),
                                    "meta page writes not durable: %r" % st)
        seqs = [seq for wr in writers for (_, _, _, seq) in wr.acked]
        self.assertEqual(seqs, sorted(set(seqs)), "a seq acknowledged twice")


if __name__ == "__main__":
    unittest.main()
