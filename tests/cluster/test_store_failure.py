# SPDX-License-Identifier: Apache-2.0
"""A failing disk seen through the daemon (deploy/README.md: store_failed):
node 1 runs on a disk whose flushes fail on demand (failsync.c, preloaded).
While they fail, the write being committed is refused with the cause, and
every later write with a clear read-only error; reads go on; status and
the msce_store_failed metric say so. Once the disk recovers, the node's
probe commit succeeds and writes resume, and the failed write is nowhere.
A backup whose syncs fail leaves nothing behind (no unmarked copy an
operator could restore), and the same name works once the disk recovers."""

import os
import subprocess
import time
import urllib.request

import cluster
from cluster import MSCE_FAILSYNC_LIB, ClusterTestCase, require_binaries, wait_until


class StoreFailureTest(ClusterTestCase):
    def test_failed_commits_refuse_writes_until_the_disk_recovers(self):
        require_binaries("MSCE_FAILSYNC_LIB")
        c = self.make_cluster(2, start=False)
        n1, n2 = c.nodes
        port = cluster.free_ports(1)[0]
        c.write_config(n1, metrics_listen="127.0.0.1:%d" % port)
        flag = os.path.join(c.dir, "disk-fails")
        n1.env = {"LD_PRELOAD": os.path.abspath(MSCE_FAILSYNC_LIB), "MSCE_FAILSYNC": flag,
                  "ASAN_OPTIONS": "verify_asan_link_order=0:" +
                  os.environ.get("ASAN_OPTIONS", "")}
        c.start_all()
        c.wait_connected(n1, [2])
        c.put(n1, "t", "before", {"v": "1"})

        def metric(name="msce_store_failed "):
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                        timeout=10) as r:
                text = r.read().decode()
            return [l for l in text.splitlines() if l.startswith(name)]

        self.assertEqual(metric(), ["msce_store_failed 0"])
        self.assertEqual(c.counters(n1)["store_failed"], 0)

        open(flag, "w").close()
        # The write whose commit fails: refused with the cause.
        rc, out, err = c.cli(n1, "put", "t", "lost", "v=1", check=False)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("Input/output error", err)
        # Every later write: read-only, and why.
        rc, out, err = c.cli(n1, "put", "t", "lost2", "v=1", check=False)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("store refuses writes since a commit failed "
                      "(Input/output error); reads go on", err)
        # Reads go on; status and the metric show the failure.
        self.assertEqual(c.values(n1, "t", "before"), {"v": "1"})
        self.assertEqual(c.counters(n1)["store_failed"], 1)
        self.assertEqual(metric(), ["msce_store_failed 1"])
        # Status names the cause, as the refusal does.
        st = c.status(n1)
        self.assertEqual(st["store_failure"], "Input/output error")
        self.assertIn("the store refuses writes since a commit failed "
                      "(Input/output error)", st["problem_list"])
        # The write's commit failed, and so do the probe commits the node
        # makes in the background every 2 s while the disk fails: the
        # metric counts each (the refusals are no commits: test_faults).
        def failures():
            return int(metric("msce_commit_failures_total ")[0].split()[1])
        self.assertGreaterEqual(failures(), 1)
        wait_until(lambda: failures() >= 2, 30,
                   "a failed probe commit to be counted")

        # The disk recovers: within a few probe periods writes resume.
        os.unlink(flag)
        wait_until(lambda: c.counters(n1)["store_failed"] == 0, 30,
                   "the probe commit to succeed")
        self.assertEqual(metric(), ["msce_store_failed 0"])
        self.assertEqual(c.status(n1)["store_failure"], "")
        # The disk takes commits again: the count stands still.
        counted = failures()
        c.put(n1, "t", "after", {"v": "2"})
        c.wait_converged()
        for x in c.nodes:
            self.assertIsNone(c.get(x, "t", "lost"))
            self.assertIsNone(c.get(x, "t", "lost2"))
            self.assertEqual(c.values(x, "t", "after"), {"v": "2"})
        self.assertIn("store accepts writes again", n1.log_text())
        self.assertEqual(failures(), counted)

    def test_a_backup_whose_sync_fails_leaves_nothing(self):
        require_binaries("MSCE_FAILSYNC_LIB")
        c = self.make_cluster(2, start=False)
        n1, n2 = c.nodes
        flag = os.path.join(c.dir, "disk-fails")
        n1.env = {"LD_PRELOAD": os.path.abspath(MSCE_FAILSYNC_LIB), "MSCE_FAILSYNC": flag,
                  "ASAN_OPTIONS": "verify_asan_link_order=0:" +
                  os.environ.get("ASAN_OPTIONS", "")}
        c.start_all()
        c.wait_connected(n1, [2])
        c.put(n1, "t", "k", {"v": "1"})
        backup = os.path.join(c.dir, "nightly")
        open(flag, "w").close()
        rc, out, err = c.cli(n1, "backup", backup, check=False)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("Input/output error", err)
        self.assertEqual(sorted(os.listdir(c.dir)).count("nightly"), 0,
                         "a failed backup left its directory")
        self.assertFalse(os.path.exists(os.path.join(c.dir, ".nightly.partial")))
        os.unlink(flag)
        _, out, _ = c.cli(n1, "backup", backup)
        self.assertIn("backup written", out)
        # What it wrote is marked: started on it (its peer out of reach),
        # a node holds writes.
        b = c.start_offline(n1, backup, "n1-backup")
        r = subprocess.run([cluster.MSCE, "-c", b.config, "put", "t", "new", "v=1"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("new or was restored", r.stderr)

    def test_a_failed_meta_page_write_is_mended_by_reopening(self):
        """LMDB refuses every transaction, reads too, once a commit's meta
        page write failed (MDB_PANIC) until its environment is reopened:
        the node reopens it at once, so reads go on, and again at each
        probe until the disk takes the write."""
        require_binaries("MSCE_FAILSYNC_LIB")
        c = self.make_cluster(2, start=False)
        n1, n2 = c.nodes
        flag = os.path.join(c.dir, "meta-fails")
        n1.env = {"LD_PRELOAD": os.path.abspath(MSCE_FAILSYNC_LIB), "MSCE_FAILMETA": flag,
                  "ASAN_OPTIONS": "verify_asan_link_order=0:" +
                  os.environ.get("ASAN_OPTIONS", "")}
        c.start_all()
        c.wait_connected(n1, [2])
        c.put(n1, "t", "before", {"v": "1"})

        open(flag, "w").close()
        rc, out, err = c.cli(n1, "put", "t", "lost", "v=1", check=False)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("Input/output error", err)
        # Reads go on, and keep going across failed probes.
        for _ in range(3):
            self.assertEqual(c.values(n1, "t", "before"), {"v": "1"})
            self.assertEqual(c.counters(n1)["store_failed"], 1)
            rc, out, err = c.cli(n1, "put", "t", "lost2", "v=1", check=False)
            self.assertEqual(rc, 1, out + err)
            self.assertIn("store refuses writes since a commit failed", err)
            time.sleep(1)

        os.unlink(flag)
        wait_until(lambda: c.counters(n1)["store_failed"] == 0, 30,
                   "the probe commit to succeed")
        c.put(n1, "t", "after", {"v": "2"})
        c.put(n2, "t", "from2", {"v": "3"})
        c.wait_converged()
        for x in c.nodes:
            self.assertIsNone(c.get(x, "t", "lost"))
            self.assertIsNone(c.get(x, "t", "lost2"))
            self.assertEqual(c.values(x, "t", "before"), {"v": "1"})
            self.assertEqual(c.values(x, "t", "after"), {"v": "2"})
            self.assertEqual(c.values(x, "t", "from2"), {"v": "3"})
        # The restarted node finds what the reopened one committed.
        c.restart(n1)
        self.assertEqual(c.values(n1, "t", "after"), {"v": "2"})


if __name__ == "__main__":
    import unittest
    unittest.main()
