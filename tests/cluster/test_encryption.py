# SPDX-License-Identifier: Apache-2.0
"""Encryption at rest in msced (issue 15): with [node] master_key, no value
a client wrote is found in the clear in any center's data file or in a
backup; a store sealed with a key refuses to start without it; a store
kept in the clear (no master_key) is sealed in place when a key is given,
and its values stay readable."""

import os
import subprocess
import unittest

from cluster import MSCED, ClusterTestCase, wait_until


def files_holding(root, token):
    """Every data.mdb under root whose bytes contain token."""
    hits = []
    for d, _dirs, files in os.walk(root):
        for f in files:
            if f != "data.mdb":
                continue
            with open(os.path.join(d, f), "rb") as fh:
                if token in fh.read():
                    hits.append(os.path.join(d, f))
    return hits


class EncryptionTest(ClusterTestCase):
    def test_values_sealed_in_stores_and_backups(self):
        c = self.make_cluster(2)
        n1, n2 = c.nodes
        c.wait_connected(n1, [2])
        token = "GL10secret%d" % os.getpid()
        for i in range(20):
            c.put(n1 if i % 2 else n2, "t", "k%d" % i,
                  {"v": "%s-%d" % (token, i)})
        c.wait_converged(timeout=30)
        self.assertEqual(c.values(n2, "t", "k3"), {"v": "%s-3" % token})
        _, out, _ = c.cli(n1, "backup", os.path.join(c.dir, "backup"))
        self.assertIn("backup written", out)
        c.stop_all()
        self.assertEqual(files_holding(c.dir, token.encode()), [])
        # The backup opens with its center's key, like the store.
        x = c.start_offline(n1, os.path.join(c.dir, "backup"), "restored")
        self.assertEqual(c.values(x, "t", "k3"), {"v": "%s-3" % token})

    def test_sealed_store_refuses_to_start_without_its_key(self):
        c = self.make_cluster(1)
        n1, = c.nodes
        c.put(n1, "t", "k", {"v": "1"})
        c.stop(n1)
        master = n1.master
        n1.master = None
        c.write_config(n1)
        r = subprocess.run([MSCED, "-c", n1.config], capture_output=True,
                           text=True, timeout=30, cwd=n1.dir)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no master key was given", r.stderr)
        # Another key does not open it either.
        other = os.path.join(c.dir, "other.master")
        c.master_keygen(other)
        n1.master = other
        c.write_config(n1)
        r = subprocess.run([MSCED, "-c", n1.config], capture_output=True,
                           text=True, timeout=30, cwd=n1.dir)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("does not open this store", r.stderr)
        n1.master = master
        c.write_config(n1)
        c.start(n1)
        self.assertEqual(c.values(n1, "t", "k"), {"v": "1"})

    def test_clear_store_sealed_when_a_key_is_given(self):
        c = self.make_cluster(1, master=False)
        n1, = c.nodes
        token = "Person n%d.42" % os.getpid()
        c.put(n1, "t", "k", {"v": token})
        wait_until(lambda: "no master_key" in n1.log_text(), 10,
                   "the warning that values are in the clear")
        c.stop(n1)
        self.assertNotEqual(files_holding(n1.data_dir, token.encode()), [])
        n1.master = os.path.join(n1.dir, "node.master")
        c.master_keygen(n1.master)
        c.write_config(n1)
        c.start(n1)
        self.assertEqual(c.values(n1, "t", "k"), {"v": token})
        c.put(n1, "t", "k2", {"v": token + "2"})
        self.assertEqual(c.values(n1, "t", "k2"), {"v": token + "2"})

    def test_master_key_rotation(self):
        c = self.make_cluster(1)
        n1, = c.nodes
        c.put(n1, "t", "k", {"v": "before"})
        _, out, _ = c.cli(n1, "backup", os.path.join(c.dir, "old-backup"))
        self.assertIn("backup written", out)
        c.stop(n1)
        old = n1.master
        new = os.path.join(n1.dir, "node.master.new")
        c.master_keygen(new)
        r = subprocess.run([MSCED, "-c", n1.config, "--rotate-master-key",
                            new], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("master key rotated", r.stderr)
        # The old key no longer opens the store; the new one does.
        r = subprocess.run([MSCED, "-c", n1.config], capture_output=True,
                           text=True, timeout=30, cwd=n1.dir)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("does not open this store", r.stderr)
        n1.master = new
        c.write_config(n1)
        c.start(n1)
        self.assertEqual(c.values(n1, "t", "k"), {"v": "before"})
        c.put(n1, "t", "k", {"v": "after"})
        self.assertEqual(c.values(n1, "t", "k"), {"v": "after"})
        # A backup taken before the rotation needs the old key: destroy
        # it and that backup is unreadable.
        n1.master = old
        x = c.start_offline(n1, os.path.join(c.dir, "old-backup"), "old")
        self.assertEqual(c.values(x, "t", "k"), {"v": "before"})


if __name__ == "__main__":
    unittest.main()
