# SPDX-License-Identifier: Apache-2.0
"""The edges of a center's life (issue 10, cases 1 to 5), on real processes.

1. A center restored from a backup taken before a delete, after the
   tombstone was collected and the log truncated past it, catches up by
   snapshot and drops the deleted record: equal digests, the record gone
   everywhere. It refuses writes until it has caught up, then writes under
   a new origin of its node from seq 1.
2. A center whose disk was wiped, back while the only peer holding its
   latest changes is down, never reuses an (origin, seq): it writes under a
   new origin, and once that peer is back every node holds both its old and
   its new writes.
3. A write larger than a change may be is refused at once with ETOOBIG
   naming the limit, and replication goes on.
4. A record cannot grow past the per-record limits (1024 fields, 1 MiB of
   names and values) by many puts: the put that would cross one is refused
   naming it; the record stays readable everywhere and a new center gets it
   whole by snapshot.
5. A delete and an update of the same registration on the two sides of a
   partition: after the heal the registration is not visible anywhere (it
   lacks its required fields), every node lists the same delete conflict,
   and re-creating or deleting it again clears the conflict everywhere.
"""

import json
import os
import re
import shutil
import subprocess
import unittest

from cluster import MSCE, ClusterTestCase, norm_vv, wait_until

RETENTION = 20  # log_retention: snapshots are needed after a few writes
LIMIT_BYTES = 1 << 20  # MSCE_MAX_CHANGE and MSCE_MAX_RECORD (common/bounds.h)
LIMIT_FIELDS = 1024  # MSCE_MAX_RECORD_FIELDS
VALUE = 60 * 1024  # a large field value, under MSCE_MAX_VALUE (64 KiB)
OK_RE = re.compile(r"^ok (\d+)/(\d+)\s*$", re.M)


def registration(key, name, **extra):
    nat, doc = key.split(":")
    return dict({"name": name, "nationality": nat, "document_type": "passport",
                 "document_number": doc}, **extra)


def big_fields(prefix, n):
    """n fields of VALUE bytes, each its own letter."""
    return {"%s%02d" % (prefix, i): chr(ord("a") + i % 26) * VALUE for i in range(n)}


class LifecycleTest(ClusterTestCase):
    # -- helpers

    def all_connected(self, c, nodes=None):
        nodes = nodes or c.nodes
        for x in nodes:
            c.wait_connected(x, [y.id for y in nodes if y is not x])
        c.wait_writing(*nodes)  # greeted by all: before any cut

    def write(self, c, node, *args):
        """A put or del through the CLI, not checked: (rc, out, err)."""
        return c.cli(node, *args, check=False, timeout=60)

    def put_args(self, collection, key, fields):
        return ["put", collection, key] + ["%s=%s" % kv for kv in fields.items()]

    def wait_same_vectors(self, c, nodes, timeout=120):
        """Until every node in nodes reports the same version vector
        (digests may still differ: that is for the caller to judge)."""
        def same():
            vvs = {json.dumps(norm_vv(c.status(x)["vv"]), sort_keys=True) for x in nodes}
            return len(vvs) == 1
        wait_until(same, timeout, "equal vectors on %s" % ",".join(x.name for x in nodes))

    def conflicts(self, c, node):
        _, out, _ = c.cli(node, "conflicts", "--json", "--reveal")
        return sorted((json.loads(l) for l in out.splitlines()),
                      key=lambda k: (k["collection"], k["key"], k["field"]))

    def keys(self, c, node, collection):
        _, out, _ = c.cli(node, "scan", collection, "--limit", "1000", "--reveal")
        return set(out.split())

    # -- 1

    def test_restore_never_brings_deleted_data_back(self):
        c = self.make_cluster(3, proxy=True, log_retention=RETENTION)
        n1, n2, n3 = c.nodes
        self.all_connected(c)
        c.put(n1, "t", "x", {"v": "doomed"})
        for x in c.nodes:
            c.wait_value(x, "t", "x", "v", "doomed")

        # n2's backup holds x.
        backup = os.path.join(c.dir, "backup")
        _, out, _ = c.cli(n2, "backup", backup)
        self.assertIn("backup written", out)

        # x deleted at n1; the delete reaches every node (each holds its
        # tombstone) and every node collects the tombstone (the gauge is
        # back to 0; test_tombstones.py checks the counter).
        _, out, _ = c.cli(n1, "del", "t", "x")
        del_origin, del_seq = map(int, OK_RE.search(out).groups())
        for x in c.nodes:
            wait_until(lambda: c.get(x, "t", "x") is None, 30,
                       "%s to apply the delete" % x.name)
        for x in c.nodes:
            wait_until(lambda: c.status(x)["tombstones"] == 0, 60,
                       "%s to collect the tombstone of x" % x.name)

        # Enough writes after it that the logs are cut past the delete:
        # only n1 writes, so log_truncated counts n1's changes cut.
        for i in range(2 * RETENTION + 10):
            c.put(n1, "t", "f-%d" % i, {"v": str(i)})
        c.wait_converged()
        for x in (n1, n3):
            wait_until(lambda: c.counters(x).get("log_truncated", 0) >= del_seq, 30,
                       "%s to cut its log past the delete (%d/%d)" % (x.name, del_origin,
                                                                      del_seq))

        # n2 restored from its backup, first cut off from everyone: it
        # holds x again and refuses writes, since it has not caught up.
        self.assertEqual(c.stop(n2), 0)
        shutil.rmtree(n2.data_dir)
        shutil.copytree(backup, n2.data_dir)
        c.partition([n1, n3], [n2])
        c.start(n2)
        self.assertEqual(c.values(n2, "t", "x"), {"v": "doomed"})
        old_vv = norm_vv(c.status(n2)["vv"])
        r = subprocess.run([MSCE, "-c", n2.config, "put", "t", "from-n2", "v=1"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("writes wait until", r.stderr)

        # Back in the cluster it catches up by snapshot, and x is gone.
        snaps = c.counters(n2).get("snapshots_received", 0)
        c.heal()
        self.wait_same_vectors(c, c.nodes)
        self.assertGreater(c.counters(n2).get("snapshots_received", 0), snaps,
                           "n2 caught up without a snapshot")
        held = c.values(n2, "t", "x")
        wait_until(lambda: c.get(n2, "t", "x") is None, 15,
                   "the restored n2 to drop x, deleted and collected after its backup "
                   "(at equal vectors it held %s)" % held)
        c.wait_converged(timeout=60)

        # Writes resume under a new origin of node 2, from seq 1.
        origin, seq = c.put(n2, "t", "from-n2", {"v": "1"})
        self.assertEqual(origin & 0xffff, 2)
        self.assertNotIn(str(origin), old_vv)
        self.assertEqual(seq, 1)
        c.wait_converged()
        for x in c.nodes:
            self.assertIsNone(c.get(x, "t", "x"), x.name)
            self.assertEqual(c.values(x, "t", "from-n2"), {"v": "1"}, x.name)
            self.assertEqual(c.values(x, "t", "f-49"), {"v": "49"}, x.name)

    # -- 2

    def test_wiped_center_never_reuses_a_seq(self):
        c = self.make_cluster(3, proxy=True)
        n1, n2, n3 = c.nodes
        self.all_connected(c)
        old = {}  # (origin, seq) -> key, of n3's writes before the wipe
        for i in range(5):
            old[c.put(n3, "t", "c-%d" % i, {"v": "old-%d" % i})] = "c-%d" % i
        c.wait_converged()

        # n3's next writes reach n2 only.
        c.partition([n1], [n2, n3])
        c.wait_connected(n1, [2, 3], connected=False)
        c.wait_connected(n3, [1], connected=False)
        for i in range(5, 10):
            old[c.put(n3, "t", "c-%d" % i, {"v": "old-%d" % i})] = "c-%d" % i
        c.wait_value(n2, "t", "c-9", "v", "old-9")
        self.assertIsNone(c.get(n1, "t", "c-5"))
        (old_origin,) = {o for o, _ in old}

        # n2 goes down; n3 loses its disk and comes back with only n1,
        # which holds n3's first five changes, to talk to.
        self.assertEqual(c.stop(n2), 0)
        self.assertEqual(c.stop(n3), 0)
        shutil.rmtree(n3.data_dir)
        os.makedirs(n3.data_dir, mode=0o700)
        c.heal()
        c.start(n3)
        new = {}
        for i in range(5):
            origin, seq = c.put(n3, "t", "d-%d" % i, {"v": "new-%d" % i})
            self.assertNotIn((origin, seq), old,
                             "the wiped n3 wrote d-%d as %d/%d, which names %s held by n2"
                             % (i, origin, seq, old.get((origin, seq))))
            new[(origin, seq)] = "d-%d" % i
        self.assertEqual(origin & 0xffff, 3)
        self.assertNotEqual(origin, old_origin)

        # n2 is back: every node holds every write of n3, old and new.
        c.start(n2)
        c.wait_converged(timeout=120)
        for x in c.nodes:
            for i in range(10):
                self.assertEqual(c.values(x, "t", "c-%d" % i), {"v": "old-%d" % i}, x.name)
            for i in range(5):
                self.assertEqual(c.values(x, "t", "d-%d" % i), {"v": "new-%d" % i}, x.name)

    # -- 3

    def test_oversized_write_never_stops_replication(self):
        c = self.make_cluster(3)
        n1, n2, n3 = c.nodes
        self.all_connected(c)
        c.put(n1, "t", "before", {"v": "1"})
        c.wait_converged()

        # 20 fields of 60 KiB: 1.2 MiB in one change.
        rc, out, err = self.write(c, n1, *self.put_args("t", "big", big_fields("f", 20)))
        # Replication of n1's changes goes on.
        c.put(n1, "t", "after", {"v": "1"})
        for x in (n2, n3):
            c.wait_value(x, "t", "after", "v", "1", timeout=30)
        self.assertEqual(rc, 1, "a put of 1.2 MiB was not refused: %s%s" % (out, err))
        self.assertIn("over a size limit", err)  # ETOOBIG
        self.assertRegex(err, r"limit %d per (change|record)" % LIMIT_BYTES)
        c.wait_converged()
        for x in c.nodes:
            self.assertIsNone(c.get(x, "t", "big"), x.name)

    # -- 4

    def test_records_cannot_grow_past_the_limits(self):
        c = self.make_cluster(3, log_retention=RETENTION, start=False)
        n1, n2, n3 = c.nodes
        c.begin(n1, n2)
        self.all_connected(c, [n1, n2])

        # Field count: 200 new fields a put; the sixth would make 1200.
        many = {}
        for p in range(6):
            fields = {"n%04d" % (200 * p + i): "v%d" % i for i in range(200)}
            rc, out, err = self.write(c, n1, *self.put_args("t", "many", fields))
            if p < 5:
                self.assertEqual(rc, 0, "put %d of 200 fields: %s%s" % (p + 1, out, err))
                many.update(fields)
            else:
                self.assertEqual(rc, 1, "a put growing t/many to %d fields was accepted: %s"
                                 % (200 * (p + 1), out))
                self.assertIn("over a size limit", err)
                self.assertIn("limit %d per record" % LIMIT_FIELDS, err)

        # Size: 8 new fields of 60 KiB a put; the third would make 1.4 MiB.
        big = {}
        for p in range(3):
            fields = big_fields("p%d-" % p, 8)
            rc, out, err = self.write(c, n1, *self.put_args("t", "big", fields))
            if p < 2:
                self.assertEqual(rc, 0, "put %d of 480 KiB: %s%s" % (p + 1, out, err))
                big.update(fields)
            else:
                self.assertEqual(rc, 1, "a put growing t/big to %d bytes was accepted: %s"
                                 % (3 * 8 * (VALUE + 5), out))
                self.assertIn("over a size limit", err)
                self.assertIn("limit %d per record" % LIMIT_BYTES, err)

        # Both records readable, whole, on both nodes; replication goes on.
        for x in (n1, n2):
            wait_until(lambda: c.values(x, "t", "many") == many, 30,
                       "%s to hold t/many whole" % x.name)
            wait_until(lambda: c.values(x, "t", "big") == big, 30,
                       "%s to hold t/big whole" % x.name)
        c.put(n1, "t", "after", {"v": "1"})
        c.wait_value(n2, "t", "after", "v", "1")

        # The logs are cut past the records' changes (only n1 writes):
        # the new node n3 needs a snapshot holding both.
        _, out, _ = c.cli(n1, "put", "t", "mark", "v=1")
        mark_seq = int(OK_RE.search(out).group(2))
        for i in range(2 * RETENTION):
            c.put(n1, "t", "f-%d" % i, {"v": str(i)})
        c.wait_converged()
        for x in (n1, n2):
            wait_until(lambda: c.counters(x).get("log_truncated", 0) >= mark_seq, 30,
                       "%s to cut its log past the records" % x.name)
        c.start(n3)
        statuses = c.wait_converged(timeout=120)
        self.assertGreater(statuses["n3"]["counters"].get("snapshots_received", 0), 0,
                           "n3 caught up without a snapshot")
        for x in c.nodes:
            self.assertEqual(c.values(x, "t", "many"), many, x.name)
            self.assertEqual(c.values(x, "t", "big"), big, x.name)
        self.assertLessEqual({"many", "big", "after"}, self.keys(c, n3, "t"))
        c.put(n3, "t", "from-n3", {"v": "1"})
        c.wait_converged()

    # -- 5

    def test_delete_racing_an_update_leaves_no_half_record(self):
        c = self.make_cluster(3, proxy=True)
        n1, n2, n3 = c.nodes
        self.all_connected(c)
        # R1 is resolved by re-creating it, R2 by deleting it again.
        keys = ("FRA:AB123", "DEU:C01X00T47")
        for k in keys:
            c.put(n1, "registration", k, registration(k, "Alice Martin",
                                                      phone="+8613800000001"))
        c.wait_converged()

        c.partition([n1], [n2, n3])
        c.wait_connected(n1, [2, 3], connected=False)
        c.wait_connected(n2, [1], connected=False)
        for k in keys:
            _, out, _ = c.cli(n1, "del", "registration", k)
        del_origin = int(OK_RE.search(out).group(1))
        for k in keys:
            upd_origin, _ = c.put(n2, "registration", k, {"phone": "+8613800000002"})
        c.heal()
        statuses = c.wait_converged(timeout=90)

        # Nowhere visible, nowhere listed; the same delete conflict (the
        # phone's update won over the delete) listed on every node.
        listed = {}
        for x in c.nodes:
            for k in keys:
                self.assertIsNone(c.get(x, "registration", k),
                                  "%s shows %s after a concurrent delete" % (x.name, k))
            self.assertEqual(self.keys(c, x, "registration") & set(keys), set(), x.name)
            listed[x.name] = self.conflicts(c, x)
        for x in c.nodes:
            self.assertEqual(listed[x.name], listed["n1"], x.name)
        self.assertEqual(
            [(k["collection"], k["key"], k["field"], k["winner"]["value"],
              k["winner"]["origin"], k["loser"]["value"], k["loser"]["origin"])
             for k in listed["n1"]],
            sorted(("registration", k, "phone", "+8613800000002", upd_origin, "", del_origin)
                   for k in keys))
        for x in c.nodes:
            self.assertEqual(statuses[x.name]["conflicts"], 2, x.name)

        # Resolved at n3: R1 re-created (the desk enters it again), R2
        # deleted again.
        r1, r2 = keys
        whole = registration(r1, "Alice Martin", phone="+8613800000003")
        c.put(n3, "registration", r1, whole)
        c.delete(n3, "registration", r2)
        statuses = c.wait_converged(timeout=60)
        for x in c.nodes:
            self.assertEqual(self.conflicts(c, x), [], x.name)
            self.assertEqual(statuses[x.name]["conflicts"], 0, x.name)
            self.assertEqual(c.values(x, "registration", r1), whole, x.name)
            self.assertIsNone(c.get(x, "registration", r2), x.name)
            self.assertEqual(self.keys(c, x, "registration") & set(keys), {r1}, x.name)


if __name__ == "__main__":
    unittest.main()
