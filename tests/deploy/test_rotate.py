# SPDX-License-Identifier: Apache-2.0
"""Rotating one center's key, by the procedure in deploy/README.md:
`msce-gen rotate`, restart the other centers with their new configs, then
the rotated center with its new key. While the rollout is half done the
updated centers refuse the old key; afterwards the new key works, the
old one is refused for good, and what the rotated center wrote while cut
off reaches everyone. A rotated center is then rebuilt from an empty data
directory (deploy/README.md section 5): it must take back its own changes
signed with its earlier keys, through the peers' logs and through
snapshot covers. The procedure for a center that makes its own keys is
followed word by word, twice, so that the first key stays pinned."""

import os
import shutil
import subprocess
import unittest

from deployutil import (MSCE, MSCE_PROBE, DeployTestCase, require_binaries,
                        wait_until)


def sign_pub(c, suffix=""):
    with open(c.key[:-len(".key")] + ".sign.pub" + suffix) as f:
        return f.read().strip()


class RotateTest(DeployTestCase):
    def rebuild(self, gc, c):
        """Section 5: stop c, move its data directory aside, start it
        empty; it must receive everything and write again."""
        gc.stop(c)
        data = os.path.join(c.dir, "data")
        os.rename(data, data + ".aside-%d" % len(os.listdir(c.dir)))
        gc.start(c)
        gc.wait_converged(timeout=90)
        self.assertIn("%d nodes" % len(gc.centers), gc.verify(c))

        def writes():
            rc, _, _ = gc.cli(c, "put", "event", "2026-12-01/rebuilt-%s" % c.name,
                              "title=Rebuilt", "kind=qa", "center=" + c.name,
                              "starts_at=2026-12-01T02:00:00Z")
            return rc == 0
        wait_until(writes, 60, "%s to write after its rebuild:\n%s"
                   % (c.name, c.log_tail()))
        gc.wait_converged()

    def probe(self, gc, target, key_path):
        """A full handshake with target as peer n2 using key_path. Returns
        msce-probe's exit code: 0 accepted, 2 refused."""
        r = subprocess.run(
            [MSCE_PROBE, "--target", "127.0.0.1:%d" % target.port,
             "--cluster", "deploytest", "--server-key", target.pub(),
             "--key", key_path, "--mode", "valid", "--timeout-ms", "5000"],
            capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout + r.stderr

    def test_rotate_one_center(self):
        gc = self.make_cluster(3)
        n1, n2, n3 = gc.centers
        for c in gc.centers:
            wait_until(lambda: all(gc.connected(c, o.id) for o in gc.centers
                                   if o is not c), 30, "%s linked" % c.name)
        gc.put(n2, "registration", "ITA:R0000001", name="Before Rotation",
               nationality="ITA", document_type="passport",
               document_number="R0000001")
        gc.wait_converged()
        old_pub = n2.pub()
        with open(n2.key[:-len(".key")] + ".sign.pub") as f:
            old_sign = f.read().strip()

        r = gc.rotate(n2)
        self.assertIn("restart these centers", r.stdout)
        self.assertNotEqual(n2.pub(), old_pub)
        self.assertTrue(os.path.exists(n2.key + ".old"))
        self.assertEqual(os.stat(n2.key).st_mode & 0o777, 0o600)
        for c in (n1, n3):
            with open(c.conf) as f:
                text = f.read()
            self.assertIn("public_key = " + n2.pub(), text)
            self.assertNotIn(old_pub, text)
            # What n2 signed before (and signs until its restart) must
            # still check: its old signing key stays listed after the new.
            with open(n2.key[:-len(".key")] + ".sign.pub") as f:
                new_sign = f.read().strip()
            self.assertNotEqual(new_sign, old_sign)
            self.assertIn("sign_key = %s, %s" % (new_sign, old_sign), text)

        # Half way: n1 and n3 know only the new key; n2 still runs with
        # the old one in memory and is refused by both.
        refused = {c.name: gc.counter(c, "refused_unknown_key") for c in (n1, n3)}
        gc.restart(n1)
        gc.restart(n3)
        for c in (n1, n3):
            wait_until(lambda: not gc.connected(c, 2) and
                       gc.counter(c, "refused_unknown_key") > 0, 30,
                       "%s to refuse n2's old key" % c.name)
        wait_until(lambda: gc.connected(n1, 3), 30, "n1-n3 link")
        # n2 keeps accepting writes while it is cut off.
        gc.put(n2, "registration", "ITA:R0000002", name="During Rotation",
               nationality="ITA", document_type="passport",
               document_number="R0000002")
        self.assertIsNone(gc.values(n1, "registration", "ITA:R0000002"))

        gc.restart(n2)  # now with the new key
        for c in (n1, n3):
            wait_until(lambda: gc.connected(c, 2), 30, "%s to accept n2's new key" % c.name)
        gc.wait_converged()
        self.assertIn("3 nodes", gc.verify(n1))
        self.assertEqual(gc.values(n3, "registration", "ITA:R0000002")["name"],
                         "During Rotation")

        # n2's own config lists its earlier key, and a rebuilt n2 takes
        # back what it signed with it (the peers hold it in their logs).
        with open(n2.conf) as f:
            self.assertIn("old_sign_key = " + old_sign, f.read())
        gc.put(n2, "registration", "ITA:R0000003", name="After Rotation",
               nationality="ITA", document_type="passport",
               document_number="R0000003")
        gc.wait_converged()
        self.rebuild(gc, n2)
        self.assertEqual(gc.values(n2, "registration", "ITA:R0000001")["name"],
                         "Before Rotation")

        require_binaries("MSCE_PROBE")
        before = gc.counter(n1, "refused_unknown_key")
        rc, out = self.probe(gc, n1, n2.key + ".old")
        self.assertNotEqual(rc, 0, "the old key was accepted:\n" + out)
        wait_until(lambda: gc.counter(n1, "refused_unknown_key") > before, 10,
                   "n1 to count the old key as unknown")
        # One live session per node key: the real n2 holds it, so the
        # probe with n2's new key is let in once n2 has stopped (and its
        # session is gone).
        gc.stop(n2)
        wait_until(lambda: not gc.connected(n1, 2), 30, "n1 to see n2 stop")
        rc, out = self.probe(gc, n1, n2.key)
        self.assertEqual(rc, 0, "the new key was refused:\n" + out)

    def test_center_with_its_own_key_rotated_twice_then_rebuilt(self):
        """deploy/README.md section 6, "If the center makes its own keys",
        as written, twice. Before that, n3 was rebuilt once, so that its
        first incarnation's last segment, signed with its first key, stays
        in every snapshot's cover for good. After the rotations n3 is
        rebuilt again and a center n4 is added, both with the logs
        truncated: each checks that cover with n3's first key."""
        gc = self.make_cluster(3, settings=("log_level=info", "log_retention=5"))
        n1, n2, n3 = gc.centers
        # "At the center": a directory of its own, holding n3's secret.
        center = os.path.join(gc.dir, "n3-center")
        os.makedirs(center)
        firsts = [sign_pub(n3)]
        for i in range(30):
            gc.put(n3, "registration", "FRA:K%07d" % i, name="Key0 %d" % i,
                   nationality="FRA", document_type="passport",
                   document_number="K%07d" % i, center="n3")
        gc.wait_converged()
        for c in gc.centers:
            wait_until(lambda: gc.counter(c, "log_truncated") > 0, 20,
                       "%s to truncate its log" % c.name)
        self.rebuild(gc, n3)  # a new incarnation; the first one is done
        # The center keeps its key: the operator's directory has none
        # (n3.key in n3's directory stands for /etc/msce/n3.key).
        shutil.move(n3.key, os.path.join(center, "n3.key"))

        for round_ in (1, 2):
            # At the center: msce keygen --out /etc/msce/n3.new; it sends
            # n3.new.pub and n3.new.sign.pub.
            r = subprocess.run([MSCE, "keygen", "--out",
                                os.path.join(center, "n3.new")],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            for f in ("n3.new.pub", "n3.new.sign.pub"):
                shutil.copy(os.path.join(center, f), n3.dir)
            # The operator saves both in out/n3/ as they are and runs
            # msce-gen rotate.
            r = gc.rotate(n3)
            self.assertIn("rename n3.new.key, n3.new.pub and n3.new.sign.pub "
                          "to n3.key, n3.pub and n3.sign.pub", r.stdout)
            with open(os.path.join(center, "n3.new.sign.pub")) as f:
                new_sign = f.read().strip()
            self.assertEqual(sign_pub(n3), new_sign)
            self.assertFalse(os.path.exists(os.path.join(n3.dir, "n3.new.pub")))
            # Every earlier signing key stays pinned, newest first.
            keys = [new_sign] + firsts[::-1]
            for c in (n1, n2):
                with open(c.conf) as f:
                    self.assertIn("sign_key = " + ", ".join(keys), f.read())
            with open(n3.conf) as f:
                self.assertIn("old_sign_key = " + ", ".join(firsts[::-1]),
                              f.read())
            # Step 2: the other centers, one at a time.
            gc.restart(n1)
            gc.restart(n2)
            # Step 3: at n3, the center renames its new files and restarts.
            for ext in (".key", ".pub", ".sign.pub"):
                os.replace(os.path.join(center, "n3.new" + ext),
                           os.path.join(center, "n3" + ext))
            gc.stop(n3)
            shutil.copy(os.path.join(center, "n3.key"), n3.key)
            gc.start(n3)
            for c in (n1, n2):
                wait_until(lambda: gc.connected(c, 3), 30,
                           "%s to accept n3's new key" % c.name)
            for i in range(10):
                gc.put(n3, "registration", "FRA:K%d%06d" % (round_, i),
                       name="Key%d %d" % (round_, i), nationality="FRA",
                       document_type="passport",
                       document_number="K%d%06d" % (round_, i), center="n3")
            gc.wait_converged()
            self.assertIn("3 nodes", gc.verify(n1))
            firsts.append(new_sign)
            # Only the center holds its key.
            os.unlink(n3.key)
        shutil.copy(os.path.join(center, "n3.key"), n3.key)

        self.rebuild(gc, n3)
        self.assertGreater(gc.counter(n3, "snapshots_received"), 0)
        self.assertEqual(gc.values(n3, "registration", "FRA:K0000000")["name"],
                         "Key0 0")
        self.assertEqual(gc.values(n3, "registration", "FRA:K2000009")["name"],
                         "Key2 9")

        # Section 7: a center added now pins all three of n3's keys.
        n4 = gc.add_center()
        with open(n4.conf) as f:
            self.assertIn("sign_key = " + ", ".join(firsts[::-1]), f.read())
        for c in (n1, n2, n3):
            gc.restart(c)
        gc.start(n4)
        gc.wait_converged(gc.centers, timeout=90)
        self.assertIn("4 nodes", gc.verify(n4))
        self.assertGreater(gc.counter(n4, "snapshots_received"), 0)
        self.assertEqual(gc.values(n4, "registration", "FRA:K0000000")["name"],
                         "Key0 0")


if __name__ == "__main__":
    unittest.main()
