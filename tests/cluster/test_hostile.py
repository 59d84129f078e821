# SPDX-License-Identifier: Apache-2.0
"""Hostile connections: each msce-probe mode against a running node is
refused, counted under the matching status counter, logged, and the node
keeps replicating with its real peers.

Every node's config lists an extra peer "probe" (id 9) that never runs;
the probe uses its key where it needs to be a configured peer (to get past
the handshake before misbehaving)."""

import re
import subprocess
import time
import unittest

from cluster import MSCE_PROBE, ClusterTestCase, require_binaries, spawn, wait_until

PROBE_PEER = {"probe": 9}


class HostileTest(ClusterTestCase):
    def setUp(self):
        require_binaries("MSCE_PROBE")
        # The probe is a configured peer that never greets: the city
        # begins without it (an empty store waits for every peer listed).
        self.c = self.make_cluster(3, extra_peers=PROBE_PEER, start=False).begin()
        self.target = self.c.nodes[0]

    def attack(self, mode, counters, log_pattern, min_rise=1, timeout_ms=5000):
        """Runs one probe mode against n1 and checks the node's reaction:
        the probe saw it refuse, the sum of counters rose by min_rise, a new
        log line matches log_pattern, and n1 still replicates."""
        c, n1 = self.c, self.target
        before = c.counters(n1)
        log_offset = n1.log_size()
        rc, out = c.probe(n1, mode, "probe", timeout_ms)
        self.assertEqual(rc, 0, "msce-probe --mode %s:\n%s" % (mode, out))

        def risen():
            now = c.counters(n1)
            rise = sum(now.get(k, 0) - before.get(k, 0) for k in counters)
            return rise >= min_rise and now
        after = wait_until(risen, 10, "%s to rise by %d after %s (before: %s)" % (
            "+".join(counters), min_rise, mode, {k: before.get(k) for k in counters}))
        wait_until(lambda: re.search(log_pattern, n1.log_since(log_offset), re.I),
                   5, "a log line matching /%s/ after %s" % (log_pattern, mode))
        self.assert_still_serving(mode)
        return before, after

    def assert_still_serving(self, tag):
        c, n1 = self.c, self.target
        c.check_alive()
        # A write at a real peer still reaches n1, and one at n1 leaves it.
        c.put(c.nodes[1], "t", "after-%s" % tag, {"v": "from-n2"})
        c.wait_value(n1, "t", "after-%s" % tag, "v", "from-n2", timeout=30)
        c.put(n1, "t", "after-%s-back" % tag, {"v": "from-n1"})
        c.wait_value(c.nodes[2], "t", "after-%s-back" % tag, "v", "from-n1", timeout=30)
        c.wait_converged()

    def test_forged_origin(self):
        # An insider (the probe has a configured peer key) writes in the
        # name of node 2, signing with its own key: refused, counted, the
        # link closed, nothing stored, and n1 still replicates.
        c, n1, n2 = self.c, self.target, self.c.nodes[1]
        origin = 2 | (777 << 16)  # an incarnation of node 2 nobody holds
        before = c.counters(n1)
        rc, out = c.probe(n1, "forge", "probe",
                          extra=["--origin", str(origin)])
        self.assertEqual(rc, 0, out)
        wait_until(lambda: c.counters(n1).get("forged_refusals", 0) >
                   before.get("forged_refusals", 0), 10,
                   "forged_refusals to rise")
        st = c.status(n1)
        probe = [p for p in st["peers"] if p["node"] == 9][0]
        self.assertGreaterEqual(probe["refused_forged"], 1, probe)
        self.assertNotIn(str(origin), st["vv"])
        self.assertIsNone(c.get(n1, "t", "forged"))
        self.assert_still_serving("forge")
        self.assertIsNone(c.get(n2, "t", "forged"))

    def test_unasked_inflated_snapshot(self):
        # A snapshot chunk nobody asked for, claiming node 2's origin up
        # to seq 2^40: refused, counted, vectors untouched.
        c, n1, n2 = self.c, self.target, self.c.nodes[1]
        c.put(n2, "t", "before-snapshot", {"v": "x"})
        c.wait_value(n1, "t", "before-snapshot", "v", "x", timeout=30)
        w2 = c.status(n2)["writer"]
        held = c.status(n1)["vv"]
        before = c.counters(n1)
        rc, out = c.probe(n1, "snapshot", "probe", extra=["--origin", str(w2)])
        self.assertEqual(rc, 0, out)
        wait_until(lambda: c.counters(n1).get("snapshot_refusals", 0) >
                   before.get("snapshot_refusals", 0), 10,
                   "snapshot_refusals to rise")
        after = c.status(n1)["vv"]
        self.assertLess(after[str(w2)], 1 << 40)
        self.assertEqual(after, held)
        probe = [p for p in c.status(n1)["peers"] if p["node"] == 9][0]
        self.assertGreaterEqual(probe["refused_snapshots"], 1, probe)
        self.assert_still_serving("snapshot")

    def test_valid_handshake(self):
        # Sanity of the probe and of the keys: a correct handshake works,
        # so the refusals below are the node's doing.
        before = self.c.counters(self.target).get("sessions_established", 0)
        rc, out = self.c.probe(self.target, "valid", "probe")
        self.assertEqual(rc, 0, out)
        self.c.wait_counter(self.target, "sessions_established", before)

    def test_wrong_key(self):
        self.attack("wrong-key", ["refused_unknown_key"],
                    r"unknown|not (a )?configured|not a peer")

    def test_random(self):
        # Two connections: 1 KiB of noise (wrong length: a bad handshake),
        # then a message-1-sized frame of noise (refused at mac1, before
        # any Diffie-Hellman).
        n1 = self.target
        log_offset = n1.log_size()
        self.attack("random", ["refused_bad_handshake", "refused_bad_mac"],
                    r"bad handshake|malformed")
        wait_until(lambda: re.search(r"bad mac1", n1.log_since(log_offset)),
                   5, "a log line about the bad mac1")

    def test_truncated(self):
        # Half of message 1, then silence: the node's handshake timeout
        # (5 s) must end it, so the probe waits longer than that.
        self.attack("truncated", ["handshake_timeouts"], r"time(d)?[ -]?out|not done in",
                    timeout_ms=9000)

    def test_oversized(self):
        # A 65535 length prefix before the handshake, then an application
        # message over 4 MiB after a valid one.
        before, after = self.attack("oversized", ["oversized_frames", "refused_bad_handshake"],
                                    r"oversiz|too (big|large)|size limit", min_rise=2)
        for k in ("oversized_frames", "refused_bad_handshake"):
            self.assertGreater(after.get(k, 0), before.get(k, 0), k)

    def test_corrupt(self):
        self.attack("corrupt", ["decrypt_failures"], r"decrypt|authenticat")

    def test_replay(self):
        self.attack("replay", ["refused_replay"], r"replay")

    def test_unconfirmed(self):
        # A message 1 the node has not seen (as a replay of one caught on
        # the way would be): it may be answered, but without the
        # initiator's confirmation nothing is established (the probe's peer
        # is never shown connected) and the node closes the connection at
        # its handshake timeout.
        c, n1 = self.c, self.target
        log_offset = n1.log_size()
        p = spawn([MSCE_PROBE, "--target", "127.0.0.1:%d" % n1.port,
                   "--cluster", c.name, "--server-key", n1.pub, "--mode", "unconfirmed",
                   "--timeout-ms", "9000", "--key", c.extra["probe"][1]],
                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        shown = []
        while p.poll() is None:
            peers = {x["node"]: x for x in c.status(n1)["peers"]}
            if peers[9]["connected"]:
                shown.append(peers[9])
            time.sleep(0.1)
        out = p.communicate(timeout=30)[0].decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("message 2 came back", out)
        self.assertEqual(shown, [], "the probe's peer shown connected")
        wait_until(lambda: re.search(r"not confirmed|before confirming",
                                     n1.log_since(log_offset)),
                   5, "a log line about the unconfirmed connection")
        self.assert_still_serving("unconfirmed")

    def test_flood(self):
        # Many hostile connections at once, half of them holding a
        # half-open handshake: the node bounds them and stays available.
        # (All from 127.0.0.1: the per-address cap is lifted here so that
        # they reach the handshake; test_slowloris covers it.)
        c, n1 = self.c, self.target
        c.stop(n1)
        c.write_config(n1, max_pending_per_address=64)
        c.start(n1)
        c.wait_connected(n1, [2, 3])
        before = c.counters(n1)
        procs = []
        for i in range(40):
            mode = ("truncated", "random", "truncated", "wrong-key")[i % 4]
            argv = [MSCE_PROBE, "--target", "127.0.0.1:%d" % n1.port,
                    "--cluster", c.name, "--server-key", n1.pub, "--mode", mode,
                    "--timeout-ms", "9000", "--key", c.extra["probe"][1]]
            procs.append(spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        # While they hang on, the real link and the client socket work.
        c.put(c.nodes[1], "t", "during-flood", {"v": "1"})
        c.wait_value(n1, "t", "during-flood", "v", "1", timeout=30)
        failures = []
        for p in procs:
            out, _ = p.communicate(timeout=60)
            if p.returncode != 0:
                failures.append(out.decode("utf-8", "replace"))
        self.assertEqual(failures, [], "probes the node did not refuse")
        after = c.counters(n1)
        refused = sum(after.get(k, 0) - before.get(k, 0) for k in (
            "refused_unknown_key", "refused_bad_handshake", "decrypt_failures",
            "handshake_timeouts", "refused_too_many_pending", "refused_replay"))
        self.assertGreaterEqual(refused, 40, after)
        self.assert_still_serving("flood")


if __name__ == "__main__":
    unittest.main()
