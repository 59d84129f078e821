# SPDX-License-Identifier: Apache-2.0
"""Rotating one center's key, by the procedure in deploy/README.md:
`msce-gen rotate`, restart the other centers with their new configs, then
the rotated center with its new key. While the rollout is half done the
updated centers refuse the old key; afterwards the new key works, the
old one is refused for good, and what the rotated center wrote while cut
off reaches everyone."""

import os
import subprocess
import unittest

from deployutil import MSCE_PROBE, DeployTestCase, require_binaries, wait_until


class RotateTest(DeployTestCase):
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


if __name__ == "__main__":
    unittest.main()
