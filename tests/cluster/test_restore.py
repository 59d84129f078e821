# SPDX-License-Identifier: Apache-2.0
"""Restoring a center from a backup: the restored store may lack the
center's own latest changes, which its peers hold. It never writes under
its old origin again (a reused seq would split the cluster for good): it
refuses writes until it has caught up with a peer that writes, then takes
a new incarnation, an origin of its own node never used before, and the
cluster converges with every change of the old origin. A backup taken
while two nodes keep writing is consistent (for each origin, exactly its
changes up to the backup's vector) and holds every write acknowledged
before it started. A store cut off while being copied is refused at start
with both sizes, not mapped and read past its end (SIGBUS, no word)."""

import json
import os
import re
import shutil
import subprocess
import threading
import unittest
import urllib.request

from cluster import (MSCE, MSCED, ClusterTestCase, CliError, free_ports,
                     norm_vv, wait_until)


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

    def test_backup_while_writing(self):
        c = self.make_cluster(2)
        n1, n2 = c.nodes
        c.wait_connected(n1, [2])
        c.wait_connected(n2, [1])
        # Every write its own key, so that a key is in the backup exactly
        # when its (origin, seq) is.
        acked, stop, errors, lock = [], threading.Event(), [], threading.Lock()

        def writer(node):
            i = 0
            while not stop.is_set():
                key = "%s-%d" % (node.name, i)
                try:
                    origin, seq = c.put(node, "t", key, {"v": str(i)})
                except CliError as e:
                    errors.append(str(e))
                    return
                with lock:
                    acked.append((key, str(i), origin, seq))
                i += 1
        threads = [threading.Thread(target=writer, args=(x,)) for x in (n1, n2)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: len(acked) >= 40 or errors, 60, "40 writes before the backup")
            # What n1 holds now: its own acknowledged writes, and n2's up
            # to n1's vector (replication is asynchronous, so an ack at n2
            # says nothing about n1 yet).
            with lock:
                before = list(acked)
            held = norm_vv(c.status(n1)["vv"])
            backup = os.path.join(c.dir, "backup")
            c.cli(n1, "backup", backup)
            n = len(acked)
            wait_until(lambda: len(acked) >= n + 20 or errors, 60, "20 writes after it")
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        self.assertEqual(errors, [])

        b = c.start_offline(n1, backup, "n1-backup")
        vv = norm_vv(c.status(b)["vv"])
        rows = {}
        for line in c.cli(b, "export", "t")[1].splitlines():
            r = json.loads(line)
            rows[r["key"]] = r["fields"]["v"]
        # Complete up to its start: every write n1 acknowledged or held
        # before it.
        for key, v, origin, seq in before:
            if key.startswith(n1.name + "-") or seq <= held.get(str(origin), 0):
                self.assertEqual(rows.get(key), v, key)
        # Consistent: of each origin, exactly the writes up to its vector.
        with lock:
            everything = list(acked)
        self.assertEqual(sorted(rows.items()),
                         sorted((key, v) for key, v, origin, seq in everything
                                if seq <= vv.get(str(origin), 0)))
        self.assertLess(len(rows), len(everything), "writes acked after the backup cannot all be in it")


    def test_truncated_store_refuses_to_start(self):
        c = self.make_cluster(1)
        n1, = c.nodes
        for i in range(40):
            c.put(n1, "t", "k%d" % i, {"v": "x" * 8000})
        backup = os.path.join(c.dir, "backup")
        c.cli(n1, "backup", backup)
        c.stop(n1)
        data = os.path.join(backup, "data.mdb")
        whole = os.path.getsize(data)
        os.truncate(data, whole // 2)
        shutil.rmtree(n1.data_dir)
        shutil.copytree(backup, n1.data_dir)
        r = subprocess.run([MSCED, "-c", n1.config], capture_output=True,
                           text=True, timeout=30, cwd=n1.dir)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"data\.mdb is truncated: %d bytes, but its "
                         r"header says \d+ pages of \d+ bytes \(%d bytes\)"
                         % (whole // 2, whole))

class ColdCopyTest(ClusterTestCase):
    def test_cold_copy_restored_with_the_peers_down_is_flagged(self):
        """A copy of the data directory is no backup (deploy/README.md,
        section 5): started again with its peers down, the node writes
        under its old writer the seqs its peers already hold with other
        content. Nothing can tell the two apart change by change, but
        equal vectors must hold equal data: once the centers meet, each
        says the other holds other data at the same vector (status
        DEGRADED, exit 1; msce_diverged_centers) instead of healthy."""
        port = free_ports(1)[0]
        c = self.make_cluster(2, start=False)
        n1, n2 = c.nodes
        c.begin(n1, n2,
                settings={1: {"metrics_listen": "127.0.0.1:%d" % port}})
        for i in range(3):
            c.put(n1, "t", "k%d" % i, {"v": "first"})
        c.wait_converged()
        c.stop(n1)
        copy = os.path.join(c.dir, "cold-copy")
        shutil.copytree(n1.data_dir, copy)
        c.start(n1)
        for i in range(2):
            c.put(n1, "t", "later%d" % i, {"v": "original"})
        c.wait_converged()
        c.stop(n1)
        c.stop(n2)
        shutil.rmtree(n1.data_dir)
        shutil.copytree(copy, n1.data_dir)
        c.start(n1)
        for i in range(2):  # the same seqs as the two lost, other data
            c.put(n1, "t", "other%d" % i, {"v": "forked"})
        c.start(n2)
        c.wait_connected(n1, [2])
        st1, st2 = c.status(n1), c.status(n2)
        self.assertEqual(norm_vv(st1["vv"]), norm_vv(st2["vv"]))
        self.assertNotEqual(st1["digest"], st2["digest"])

        def flagged(node):
            r = subprocess.run([MSCE, "-c", node.config, "status"],
                               capture_output=True, text=True, timeout=30)
            return r.returncode == 1 and re.search(
                r"holds other data than this node at the same vector "
                r"\(another digest for \d+ s\): run msce verify",
                r.stdout)
        wait_until(lambda: flagged(n1) and flagged(n2), 60,
                   "both centers to flag the other")
        metrics = urllib.request.urlopen(
            "http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
        self.assertIn("\nmsce_diverged_centers 1\n", metrics)


if __name__ == "__main__":
    unittest.main()
