"""Restoring a center from a backup: the restored store may lack the
center's own latest changes, which its peers hold. It never writes under
its old origin again (a reused seq would split the cluster for good): it
refuses writes until it has caught up with a peer that writes, then takes
a new incarnation, an origin of its own node never used before, and the
cluster converges with every change of the old origin."""

import os
import shutil
import subprocess
import unittest

from cluster import MSCE, ClusterTestCase, norm_vv, wait_until


class RestoreTest(ClusterTestCase):
    def test_restored_center_waits_for_its_own_changes(self):
        c = self.make_cluster(2)
        n1, n2 = c.nodes
        wait_until(lambda: all(p["connected"] for p in c.status(n1)["peers"]), 30,
                   "links up")
        for i in range(5):
            c.put(n1, "t", "k%d" % i, {"v": "before"})
        backup = os.path.join(c.dir, "backup")
        _, out, _ = c.cli(n1, "backup", backup)
        self.assertIn("backup written", out)
        for i in range(5, 10):
            c.put(n1, "t", "k%d" % i, {"v": "after"})
        c.wait_converged(timeout=30)
        c.stop(n1)
        c.stop(n2)
        # Restore n1 from the backup (seq 5 of its own 10).
        shutil.rmtree(n1.data_dir)
        shutil.copytree(backup, n1.data_dir)
        c.start(n1)
        old = norm_vv(c.status(n1)["vv"])
        r = subprocess.run([MSCE, "-c", n1.config, "put", "t", "new", "v=1"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("new or was restored", r.stderr)
        # The peer comes back with n1's changes 6..10; then writes resume,
        # under a new origin of node 1, from seq 1.
        c.start(n2)
        origin, seq = c.put(n1, "t", "new", {"v": "1"})
        self.assertEqual(origin & 0xffff, 1)
        self.assertNotIn(str(origin), old)
        self.assertEqual(seq, 1)
        c.wait_converged(timeout=60)
        self.assertEqual(c.values(n2, "t", "k9"), {"v": "after"})
        self.assertEqual(c.values(n1, "t", "k9"), {"v": "after"})


if __name__ == "__main__":
    unittest.main()
