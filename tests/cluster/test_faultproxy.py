# SPDX-License-Identifier: Apache-2.0
"""The fault proxy itself, against an echo server: the other cluster tests
trust it to forward, cut, delay and resume links."""

import os
import signal
import socket
import threading
import time
import unittest

from cluster import FaultProxy, reap, wait_until


class Echo:
    """Threaded echo server on a free loopback port."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.echo, args=(c,), daemon=True).start()

    @staticmethod
    def echo(c):
        with c:
            try:
                while True:
                    d = c.recv(65536)
                    if not d:
                        return
                    c.sendall(d)
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.sock.close()


def roundtrip(port, data=b"ping", timeout=2.0):
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.settimeout(timeout)
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            d = s.recv(65536)
            if not d:
                break
            got += d
        return got


def is_dead(s, timeout=2.0):
    """True if the peer closed or reset s within timeout."""
    s.settimeout(timeout)
    try:
        s.sendall(b"x")
        return s.recv(1) == b""
    except socket.timeout:
        return False
    except OSError:
        return True


class FaultProxyTest(unittest.TestCase):
    def setUp(self):
        self.echo = Echo()
        self.addCleanup(self.echo.close)
        self.fp = FaultProxy()
        self.addCleanup(self.fp.close)
        self.port = self.fp.add("a->b", self.echo.port)

    def test_forwards_bytes_both_ways(self):
        self.assertEqual(roundtrip(self.port), b"ping")
        big = os.urandom(3 << 20)  # bigger than the queue bound
        self.assertEqual(roundtrip(self.port, big, timeout=10), big)
        info = self.fp.list()["a->b"]
        self.assertEqual(info["state"], "up")
        self.assertGreaterEqual(info["bytes"], 2 * len(big))

    def test_cut_closes_existing_and_refuses_new(self):
        s = socket.create_connection(("127.0.0.1", self.port), 2)
        self.addCleanup(s.close)
        s.sendall(b"hi")
        s.settimeout(2)
        self.assertEqual(s.recv(2), b"hi")
        self.fp.cut("a->b")
        self.assertTrue(is_dead(s))
        with socket.create_connection(("127.0.0.1", self.port), 2) as s2:
            self.assertTrue(is_dead(s2))
        self.assertGreaterEqual(self.fp.list()["a->b"]["refused"], 1)
        self.fp.resume("a->b")
        self.assertEqual(roundtrip(self.port), b"ping")

    def test_blackhole_drops_silently(self):
        self.fp.cut("a->b", mode="blackhole")
        with socket.create_connection(("127.0.0.1", self.port), 2) as s:
            s.settimeout(0.5)
            s.sendall(b"lost")
            with self.assertRaises(socket.timeout):
                s.recv(4)
        self.fp.resume("a->b")
        self.assertEqual(roundtrip(self.port), b"ping")

    def test_delay(self):
        # A delay only ever adds time, so the lower bound is exact: held
        # once each way.
        self.fp.delay("a->b", 1000)
        t0 = time.monotonic()
        self.assertEqual(roundtrip(self.port, timeout=10), b"ping")
        self.assertGreaterEqual(time.monotonic() - t0, 2.0)
        # Back to 0: a round trip comes back faster than one delayed way
        # could (tried until it does, so that a slow moment of a loaded
        # machine is not taken for a delay still in force).
        self.fp.delay("a->b", 0)

        def fast():
            t0 = time.monotonic()
            self.assertEqual(roundtrip(self.port, timeout=10), b"ping")
            return time.monotonic() - t0 < 1.0
        wait_until(fast, 30, "a round trip without the delay")

    def test_many_proxies_and_wildcard(self):
        ports = [self.fp.add("p%d" % i, self.echo.port) for i in range(20)]
        self.assertEqual(len(set(ports)), 20)
        self.fp.cut("*")
        with socket.create_connection(("127.0.0.1", ports[7]), 2) as s:
            self.assertTrue(is_dead(s))
        self.fp.resume("*")
        for p in ports:
            self.assertEqual(roundtrip(p), b"ping")

    def test_target_down(self):
        port = self.fp.add("dead", 1)  # nothing listens on port 1
        with socket.create_connection(("127.0.0.1", port), 2) as s:
            self.assertTrue(is_dead(s))

    def test_bad_requests_get_errors(self):
        for req in ({"cmd": "cut", "names": ["nope"]}, {"cmd": "frobnicate"},
                    {"cmd": "add", "name": "a->b", "target": 1},
                    {"cmd": "delay", "name": "a->b", "ms": -1}):
            with self.assertRaises(RuntimeError):
                self.fp.call(**req)
        # Words work too, and the proxy is still fine.
        self.fp.sock.sendall(b"list\n")
        self.assertIn(b'"ok": true', self.fp.rfile.readline())
        self.fp.sock.sendall(b"garbage here\n")
        self.assertIn(b'"ok": false', self.fp.rfile.readline())
        self.assertEqual(roundtrip(self.port), b"ping")

    def test_sigterm_exits_promptly(self):
        s = socket.create_connection(("127.0.0.1", self.port), 2)
        self.addCleanup(s.close)
        proc = self.fp.proc
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)
        self.assertEqual(proc.returncode, 0)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertTrue(is_dead(s))
        reap(proc, 0)


if __name__ == "__main__":
    unittest.main()
