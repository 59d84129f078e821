# SPDX-License-Identifier: Apache-2.0
"""Front ends on libmsce: the event-loop API against a live node and fake
ones (msce-asynctest), the libuv example writing and watching on one loop
through a node restart and a failover without losing or duplicating a
change, and the worked example of docs/PROTOCOL.md replayed byte for byte
against a node."""

import os
import re
import socket
import struct
import subprocess

from cluster import ClusterTestCase, pb_fields, read_unix_frame, wait_until

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))


def binary(env, *rel):
    path = os.environ.get(env) or os.path.join(SRC, "build", *rel)
    if not os.access(path, os.X_OK):
        raise AssertionError("%s: %s is not built" % (env, path))
    return path


ASYNCTEST = lambda: binary("MSCE_ASYNCTEST", "tests", "cluster", "msce-asynctest")
UVDESK = lambda: binary("MSCE_UVDESK", "client", "examples", "msce-uvdesk")


def protocol_example():
    """(request bytes, reply bytes) of docs/PROTOCOL.md's worked example:
    the hex lines of its ```hex blocks marked request and reply."""
    with open(os.path.join(SRC, "docs", "PROTOCOL.md")) as f:
        doc = f.read()
    out = []
    for which in ("request", "reply"):
        m = re.search(r"```\n# worked example: %s\n(.*?)```" % which, doc, re.S)
        assert m, "docs/PROTOCOL.md: no worked example %s block" % which
        hexs = "".join(l.split("#")[0] for l in m.group(1).splitlines())
        out.append(bytes.fromhex("".join(hexs.split())))
    return out


ETOOBIG = 3  # MSCE_ETOOBIG, common/msce_errors.h


class FrontendTest(ClusterTestCase):
    def run_checked(self, argv, timeout=180):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            self.fail("%s exited %d\n%s\n%s" % (argv, r.returncode, r.stdout, r.stderr))
        return r

    def test_async_api_against_a_node(self):
        c = self.make_cluster(1)
        self.run_checked([ASYNCTEST(), "live", c.nodes[0].socket])

    def test_async_api_against_fake_nodes(self):
        # Timeouts, connections lost mid-request, reads sent again, writes
        # not; msce_connect clients that reconnect.
        self.run_checked([ASYNCTEST(), "fake"])

    def uvdesk(self, argv, on_acked, at=75):
        """Runs msce-uvdesk; calls on_acked once `at` writes are acked.
        Returns (exit code, output lines)."""
        p = subprocess.Popen([UVDESK()] + argv, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.addCleanup(p.kill)
        lines = []
        for line in p.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("acked %d\n" % at):
                on_acked()
        rc = p.wait(timeout=120)
        if rc != 0:
            lines.append(p.stderr.read())
        return rc, lines

    def check_desk(self, rc, lines, tag, count):
        out = "\n".join(lines)
        self.assertEqual(rc, 0, out[-3000:])
        self.assertRegex(out, r"done: wrote %d, acked %d, saw %d changes, "
                         r"duplicates 0" % (count, count, count))
        # Every change of this run printed once, whatever the reconnects.
        keys = [l.split()[1] for l in lines if l.startswith("change %s-" % tag)]
        self.assertEqual(sorted(keys), sorted("%s-%d" % (tag, i) for i in range(count)))
        self.assertGreaterEqual(int(re.search(r"reconnects (\d+)", out).group(1)), 1)
        return out

    def test_uvdesk_survives_a_node_restart(self):
        c = self.make_cluster(1)
        n1 = c.nodes[0]
        rc, lines = self.uvdesk(["-n", "300", "-i", "10", "-t", "rs", n1.socket],
                                lambda: c.restart(n1))
        out = self.check_desk(rc, lines, "rs", 300)
        self.assertIn("state down", out)
        self.assertIn("state ready unix:%s" % n1.socket, out)
        # What the node holds: every record, once.
        rows = c.cli(n1, "export", "desk")[1].splitlines()
        self.assertEqual(len([r for r in rows if '"rs-' in r]), 300)

    def test_uvdesk_fails_over_to_another_center(self):
        c = self.make_cluster(2)
        n1, n2 = c.nodes
        wait_until(lambda: all(p["connected"] for n in (n1, n2)
                               for p in c.status(n)["peers"]), 30, "links up")
        # Acknowledged once both hold a write: whichever center the desk
        # fails over to has every change it was told about.
        rc, lines = self.uvdesk(["-n", "200", "-i", "10", "-s", "2", "-t", "fo",
                                 n1.socket, n2.socket], lambda: c.stop(n1), at=50)
        out = self.check_desk(rc, lines, "fo", 200)
        self.assertIn("state ready unix:%s" % n2.socket, out)

    def test_protocol_worked_example_replayed(self):
        # The request bytes of docs/PROTOCOL.md, sent to a fresh node over
        # its unix socket, bring back exactly the reply bytes shown there.
        request, reply = protocol_example()
        c = self.make_cluster(1)
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(c.nodes[0].socket)
        s.sendall(struct.pack(">I", len(request)) + request)
        got = read_unix_frame(s)
        s.close()
        self.assertEqual(got.hex(), reply.hex())

    def test_error_texts_are_utf8(self):
        # An error that quotes the client's bytes is still valid UTF-8 (a
        # proto3 string): an unknown purpose of multi-byte characters,
        # cut mid-character where the node cuts it, and one of bytes that
        # are no UTF-8 at all.
        c = self.make_cluster(1)
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(c.nodes[0].socket)
        for purpose in ("a" + "\u00e9" * 20).encode(), b"\xff\xfeabc\xc3":
            get = b"\x0a\x01t\x12\x01k"  # collection "t", key "k"
            req = (b"\x08\x07" + b"\x1a" + bytes([len(get)]) + get +
                   b"\xa2\x01" + bytes([len(purpose)]) + purpose)  # field 20
            s.sendall(struct.pack(">I", len(req)) + req)
            got = read_unix_frame(s)
            # ClientResponse: id (1), code (2), error (3, a string).
            fields = pb_fields(got)
            self.assertEqual(fields[1], 7)
            text = fields[3].decode("utf-8")  # raises if not UTF-8
            self.assertIn("is not one of", text)
        s.close()

    def test_watches_per_connection_bounded(self):
        # Each open watch is pumped on every commit: a connection holds at
        # most 16 (MSCE_MAX_WATCHES); the 17th is refused with ETOOBIG and
        # the others go on.
        c = self.make_cluster(1)
        n1 = c.nodes[0]
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(n1.socket)
        watch = b"\x12\x01t"  # WatchRequest: collection "t"
        for i in range(1, 18):
            req = bytes([0x08, i, 0x3a, len(watch)]) + watch  # id, watch (7)
            s.sendall(struct.pack(">I", len(req)) + req)
        got = read_unix_frame(s)
        self.assertEqual(got[:2], b"\x08\x11", got)  # id 17
        self.assertEqual(got[2:4], bytes([0x10, ETOOBIG]), got)
        self.assertIn(b"too many watches open", got)
        # The 16 stay open: a change reaches them (one event each).
        c.put(n1, "t", "k", {"v": "1"})
        ids = set()
        while len(ids) < 16:
            ids.add(read_unix_frame(s)[1])
        self.assertEqual(ids, set(range(1, 17)))
        s.close()
