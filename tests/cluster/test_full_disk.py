# SPDX-License-Identifier: Apache-2.0
"""A disk that fills up, for real: node 1's data directory is on a small
tmpfs, with a filler file an operator could delete. Writes go on until a
commit finds no room; that write is refused with the cause, later ones
with a clear read-only error, and the log says so once. The link to the
other center stays up: what it sends waits and is tried every second. Reads go on, the
other center keeps writing, and once the filler is gone the node's probe
commit succeeds, writes resume, and every acknowledged write is at both
centers while no refused one is anywhere (deploy/README.md, store_failed).

Needs root (to mount the tmpfs); elsewhere it skips and says why."""

import os
import subprocess
import unittest

from cluster import ClusterTestCase, CliError, wait_until

DISK_BYTES = 8 << 20
FILLER_BYTES = 2 << 20


class FullDiskTest(ClusterTestCase):
    def mount_small_disk(self, path):
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a small tmpfs")
        os.makedirs(path, mode=0o700)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            "size=%d,mode=0700" % DISK_BYTES, "tmpfs", path],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: " + r.stderr.strip())
        # Cleanups run after tearDown has stopped the nodes.
        self.addCleanup(subprocess.run, ["umount", "-l", path], timeout=30)

    def test_a_full_disk_refuses_writes_until_space_is_freed(self):
        c = self.make_cluster(2, start=False)
        n1, n2 = c.nodes
        disk = os.path.join(c.dir, "disk")
        self.mount_small_disk(disk)
        n1.data_dir = os.path.join(disk, "data")
        os.makedirs(n1.data_dir, mode=0o700)
        filler = os.path.join(disk, "filler")
        with open(filler, "wb") as f:
            f.write(os.urandom(FILLER_BYTES))
        c.write_config(n1)
        c.start_all()
        c.wait_connected(n1, [2])

        # Values of 30,000 bytes: the disk fills within a few dozen puts.
        acked = {}
        first_err = None
        for i in range(400):
            key = "k%03d" % i
            value = ("%03d" % i) * 10000
            try:
                c.put(n1, "t", key, {"a": value, "b": value[::-1]})
            except CliError as e:
                first_err, failed_key = e, key
                break
            acked[key] = value
        self.assertIsNotNone(first_err, "the disk never filled")
        self.assertGreater(len(acked), 3)
        self.assertEqual(first_err.rc, 1)
        self.assertIn("No space left on device", first_err.err)

        # Every later write: read-only, and why; the log says it once.
        rc, out, err = c.cli(n1, "put", "t", "refused", "v=1", check=False)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("store refuses writes since a commit failed "
                      "(No space left on device); reads go on", err)
        wait_until(lambda: "store refuses writes: a commit failed (No space "
                   "left on device)" in n1.log_text(), 10, "the log line")
        self.assertTrue(n1.running)
        self.assertEqual(c.counters(n1)["store_failed"], 1)
        first = sorted(acked)[0]
        self.assertEqual(c.values(n1, "t", first)["a"], acked[first])

        # The other center writes on; node 1 gets it once it has room.
        # Meanwhile the link stays up (it flapped ~10 times a second when
        # a failed apply closed it), node 1 tries again every second, and
        # its log says so once.
        sessions = c.counters(n1)["sessions_established"]
        c.put(n2, "t", "from2", {"v": "2"})
        wait_until(lambda: c.counters(n1)["store_errors"] >= 3, 30,
                   "node 1 to try node 2's change three times")
        self.assertEqual(c.counters(n1)["sessions_established"], sessions)
        self.assertEqual(n1.log_text().count("cannot apply changes from "
                                             "node 2"), 1)
        peer = {p["node"]: p for p in c.status(n1)["peers"]}[2]
        self.assertTrue(peer["connected"], peer)

        os.unlink(filler)
        wait_until(lambda: c.counters(n1)["store_failed"] == 0, 30,
                   "the probe commit to succeed")
        self.assertEqual(n1.log_text().count("store refuses writes: a "
                                             "commit failed"), 1)
        self.assertIn("store accepts writes again", n1.log_text())
        wait_until(lambda: "changes from node 2 applied again" in
                   n1.log_text(), 30, "node 2's change applied")
        c.put(n1, "t", "after", {"v": "3"})
        c.wait_converged(timeout=60)
        for x in c.nodes:
            for key, value in acked.items():
                got = c.values(x, "t", key)
                self.assertEqual((got["a"], got["b"]), (value, value[::-1]),
                                 "%s at %s" % (key, x.name))
            self.assertIsNone(c.get(x, "t", failed_key))
            self.assertIsNone(c.get(x, "t", "refused"))
            self.assertEqual(c.values(x, "t", "from2"), {"v": "2"})
            self.assertEqual(c.values(x, "t", "after"), {"v": "3"})


if __name__ == "__main__":
    unittest.main()
