# SPDX-License-Identifier: Apache-2.0
"""A burst against a running node: 1,000 connections sending random bytes
and 1,000 complete Noise handshakes with unknown keys. Every one is refused
and counted, memory stays bounded (the peak is reported), and the node's
configured peers and its clients keep working throughout."""

import os
import random
import socket
import subprocess
import sys
import time
import unittest

from cluster import (MSCE_PROBE, ClusterTestCase, peak_rss_kb, require_binaries, spawn,
                     wait_until)

N = 1000
REFUSALS = ("refused_unknown_key", "refused_bad_handshake", "decrypt_failures",
            "handshake_timeouts", "refused_too_many_pending", "refused_replay",
            "refused_clock_skew", "bad_frames", "oversized_frames")


class BurstTest(ClusterTestCase):
    def test_random_bytes_and_unknown_keys(self):
        require_binaries("MSCE_PROBE")
        c = self.make_cluster(2, start=False)
        n1, n2 = c.nodes
        # Every connection comes from 127.0.0.1: lift the per-address cap
        # so that they all reach the handshake (test_shield covers it).
        c.write_config(n1, max_pending_per_address=64)
        c.start_all()
        c.wait_converged(timeout=30)
        rss0 = peak_rss_kb(n1.proc.pid)
        before = c.counters(n1)
        rng = random.Random(int(os.environ.get("MSCE_SEED", "7")))

        # 1,000 connections of random bytes, 100 open at a time; each is
        # kept until the node closes it, so every one is seen and refused.
        t0 = time.monotonic()
        open_socks = []
        for i in range(N):
            s = socket.socket()
            s.settimeout(10)
            s.connect(("127.0.0.1", n1.port))
            s.sendall(bytes(rng.getrandbits(8) for _ in range(rng.randrange(2, 300))))
            open_socks.append(s)
            if len(open_socks) == 100 or i == N - 1:
                for s in open_socks:
                    try:
                        while s.recv(4096):
                            pass
                    except OSError:
                        pass
                    s.close()
                open_socks = []
            if i == N // 2:
                # Mid-burst, the real link and the client socket still work.
                c.put(n2, "t", "mid-burst", {"v": "1"})
        random_s = time.monotonic() - t0

        # 1,000 handshakes with keys the node does not know, 25 at a time.
        t0 = time.monotonic()
        failures = 0
        for start in range(0, N, 25):
            procs = [spawn([MSCE_PROBE, "--target", "127.0.0.1:%d" % n1.port,
                            "--cluster", c.name, "--server-key", n1.pub,
                            "--mode", "wrong-key", "--timeout-ms", "8000"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for _ in range(min(25, N - start))]
            for p in procs:
                failures += p.wait(timeout=60) != 0
        keys_s = time.monotonic() - t0
        self.assertEqual(failures, 0, "probes the node did not refuse")

        # The node counts a refusal when it closes the connection, which
        # may come after the client gave up: poll until the counters reach
        # the 2,000 refusals (bounded), then they must be exactly these.
        rise = {}

        def counted():
            after = c.counters(n1)
            rise.update({k: after.get(k, 0) - before.get(k, 0) for k in REFUSALS})
            return sum(rise.values()) >= 2 * N
        wait_until(counted, 60, "2,000 refusals counted")
        self.assertEqual(rise["refused_unknown_key"], N, rise)
        self.assertEqual(sum(rise.values()), 2 * N, rise)
        c.wait_value(n1, "t", "mid-burst", "v", "1", timeout=30)
        c.put(n1, "t", "after-burst", {"v": "2"})
        c.wait_value(n2, "t", "after-burst", "v", "2", timeout=30)
        rss1 = peak_rss_kb(n1.proc.pid)
        sys.stderr.write("\nburst: random %.1f s, unknown keys %.1f s; peak RSS "
                         "%d KiB before, %d KiB after; refusals %s\n"
                         % (random_s, keys_s, rss0, rss1, rise))
        # Bounded: the burst may not grow the node by more than 64 MiB.
        self.assertLess(rss1 - rss0, 64 * 1024)
        c.check_alive()


if __name__ == "__main__":
    unittest.main()
