# SPDX-License-Identifier: Apache-2.0
"""libmsce and the msce CLI against live nodes: every operation and error
path (msce-libtest), the example desk program built against the installed
library through pkg-config, CLI exit codes, import/export, case notes,
conflicts and resolve, and clients that send garbage or vanish mid-request."""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from cluster import MSCE, MSCE_LIBTEST as LIBTEST, ClusterTestCase, require_binaries, wait_until
from cluster import pb_bytes as _ld
from cluster import pb_varint as _varint


def _vi(num, n):
    return _varint(num << 3) + _varint(n)


def min_sites_put(rid, coll, key, min_sites, timeout_ms):
    """A framed (unix socket) ClientRequest: a put of v=x asking for
    min_sites centers within timeout_ms (proto/client.proto)."""
    put = (_ld(1, coll) + _ld(2, key) + _ld(3, _ld(1, "v") + _ld(2, "x")) +
           _vi(4, min_sites) + _vi(5, timeout_ms))
    msg = _vi(1, rid) + _vi(11, 1) + _ld(2, put)
    return len(msg).to_bytes(4, "big") + msg


def rss_anon_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


BUILD = os.path.dirname(os.path.dirname(MSCE)) if MSCE else None
SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ClientTest(ClusterTestCase):
    def run_checked(self, argv, **kw):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)
        if r.returncode != 0:
            self.fail("%s exited %d\n%s\n%s" % (argv, r.returncode, r.stdout, r.stderr))
        return r

    def test_libmsce_operations(self):
        require_binaries("MSCE_LIBTEST")
        c = self.make_cluster(2)
        n1, n2 = c.nodes
        # New stores take writes once a peer has greeted them.
        wait_until(lambda: all(p["connected"] for n in (n1, n2)
                               for p in c.status(n)["peers"]), 30, "links up")
        backup = os.path.join(c.dir, "backup")
        r = self.run_checked([LIBTEST, "up", n1.socket, n2.socket, backup])
        _, tag, digest = re.search(r"^backup (\S+) (\S+) ([0-9a-f]{64})$",
                                   r.stdout, re.M).groups()
        c.stop(n2)
        self.run_checked([LIBTEST, "down", n1.socket])

        # The backup, opened by a node of its own, holds what node 1 held
        # when it was taken: the same digest, and the records written.
        copy = os.path.join(c.dir, "restored")
        shutil.copytree(backup, copy)
        b = c.start_offline(n1, copy, "n1-backup")
        self.assertEqual(c.status(b)["digest"], digest)
        rows = [json.loads(l) for l in c.cli(b, "export", "scan")[1].splitlines()]
        self.assertEqual([(x["key"], x["fields"]) for x in rows
                          if x["key"].startswith(tag + "-")],
                         [("%s-%03d" % (tag, i), {"n": str(i)}) for i in range(40)])
        bulk = c.cli(b, "export", "bulk")[1].splitlines()
        self.assertEqual(sum(json.loads(l)["key"].startswith(tag + "-big-") for l in bulk),
                         10000)
        self.assertIsNone(c.get(b, "t", tag + "-pgd"))  # deleted before

    def test_libmsce_protocol_errors(self):
        # A reply that is no ClientResponse is EPROTO; a node that hangs up
        # is ECLOSED, and stays so (a fake node inside msce-libtest).
        require_binaries("MSCE_LIBTEST")
        self.run_checked([LIBTEST, "fake"])

    def test_example_builds_against_installed_library(self):
        # Installed like libpq or lmdb: headers under include/msce (and the
        # old <msce.h> still working), libmsce.so.1 exporting msce.h's
        # functions and nothing else, a libmsce.a that links on its own;
        # the example built both ways and run.
        for tool in ("pkg-config", "cc", "nm", "objdump"):
            self.assertTrue(shutil.which(tool), "%s is not installed" % tool)
        self.assertTrue(BUILD, "no build dir: MSCE is not set")
        prefix = tempfile.mkdtemp(prefix="msce-inst-")
        self.addCleanup(shutil.rmtree, prefix, True)
        self.run_checked(["cmake", "--install", BUILD, "--prefix", prefix])
        pc = [d for d in ("lib", "lib64", "lib/x86_64-linux-gnu")
              if os.path.exists(os.path.join(prefix, d, "pkgconfig", "msce.pc"))]
        self.assertTrue(pc, "msce.pc not installed")
        libdir = os.path.join(prefix, pc[0])
        inc = os.path.join(prefix, "include")
        for h in ("msce.h", "msce_errors.h", "msce_limits.h", "msce_domain.h",
                  "msce_version.h"):
            self.assertTrue(os.path.exists(os.path.join(inc, "msce", h)), h)
        self.assertTrue(os.path.exists(os.path.join(inc, "msce.h")), "compat msce.h")

        # The shared library: its SONAME, and exactly msce.h's functions.
        so = os.path.join(libdir, "libmsce.so")
        dyn = self.run_checked(["objdump", "-p", so]).stdout
        self.assertRegex(dyn, r"SONAME\s+libmsce\.so\.1\n")
        with open(os.path.join(inc, "msce", "msce.h")) as f:
            declared = set(re.findall(r"^[a-z][^;(]*?\b(msce_\w+)\(", f.read(), re.M))
        exported = {}
        for line in self.run_checked(["nm", "-D", "--defined-only", so]).stdout.splitlines():
            name = line.split()[-1]
            if "@" in name:
                base, _, ver = name.partition("@@")
                exported[base] = ver
            else:
                exported[name] = None
        exported.pop("MSCE_1.0", None)
        self.assertEqual(set(exported), declared)
        self.assertEqual(set(exported.values()), {"MSCE_1.0"})
        # The static library: only the API is global, nothing of ours
        # (config_load, channel_*, msce__* protobuf) can clash.
        ar = os.path.join(libdir, "libmsce.a")
        glob = {l.split()[-1] for l in self.run_checked(
            ["nm", "-g", "--defined-only", ar]).stdout.splitlines()
            if len(l.split()) == 3}
        self.assertEqual(glob, declared)

        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"))
        flags = self.run_checked(["pkg-config", "--cflags", "--libs", "msce"],
                                 env=env).stdout.split()
        static = self.run_checked(["pkg-config", "--static", "--cflags", "--libs", "msce"],
                                  env=env).stdout.split()
        static = [ar if f == "-lmsce" else f for f in static]
        # A sanitized libmsce needs a sanitized program around it.
        san = (["-fsanitize=address,undefined"]
               if os.environ.get("MSCE_SANITIZED") in ("ON", "1", "TRUE") else [])
        desk = os.path.join(SRC, "client/examples/desk.c")
        exe, exe_static = os.path.join(prefix, "desk"), os.path.join(prefix, "desk-static")
        self.run_checked(["cc", "-o", exe, desk] + san + flags)
        self.run_checked(["cc", "-o", exe_static, desk] + san + static)
        needed = self.run_checked(["objdump", "-p", exe_static]).stdout
        self.assertNotIn("libmsce", needed)
        # The old include still compiles.
        compat = os.path.join(prefix, "compat.c")
        with open(compat, "w") as f:
            f.write("#include <msce.h>\nint main(void) { return msce_version()[0] == 0; }\n")
        self.run_checked(["cc", "-o", compat + ".bin", compat] + san + flags)

        c = self.make_cluster(1)
        for i, (prog, env_run) in enumerate(
                ((exe, dict(os.environ, LD_LIBRARY_PATH=libdir)),
                 (exe_static, dict(os.environ)))):
            r = self.run_checked([prog, c.nodes[0].socket, "E424%d" % i], env=env_run)
            self.assertIn("registered FRA:E424%d" % i, r.stdout)
            self.assertIn("bad birth date refused", r.stdout)
            self.assertRegex(r.stdout, r"note \d{8}T\d{6}\.\d{3}Z-shekou-[0-9a-f]{16}: "
                             r"Called the landlord; meeting on Friday\.")
            self.assertEqual(c.values(c.nodes[0], "registration", "FRA:E424%d" % i)["name"],
                             "Amelie Laurent")

    def test_cli_exit_codes_import_export(self):
        c = self.make_cluster(2)
        n1, n2 = c.nodes
        cli = lambda node, *a: subprocess.run([MSCE, "-c", node.config] + list(a),
                                              capture_output=True, text=True, timeout=60)
        wait_until(lambda: cli(n1, "status").returncode == 0, 20, "healthy status")
        # Import JSON lines, with one refused and one unreadable line.
        path = os.path.join(c.dir, "in.jsonl")
        with open(path, "w") as f:
            for i in range(1200):
                f.write(json.dumps({"collection": "registration", "key": "USA:P%04d" % i,
                                    "fields": {"name": "Person %d" % i, "nationality": "USA",
                                               "document_type": "passport",
                                               "document_number": "P%04d" % i}}) + "\n")
            f.write(json.dumps({"collection": "registration", "key": "USA:Q1",
                                "fields": {"name": "No Type"}}) + "\n")
            f.write("{not json\n")
        r = cli(n1, "import", path)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("imported 1200, refused 1, unreadable lines 1", r.stdout)
        c.wait_converged(timeout=60)
        r = cli(n2, "export", "registration")
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual(len(rows), 1200)
        self.assertEqual(rows[0]["fields"]["nationality"], "USA")
        # verify passes on a converged cluster.
        self.assertEqual(cli(n1, "verify", "--timeout", "20").returncode, 0)
        # Degraded (a peer down) is 1; an unreachable node is 2.
        c.stop(n2)
        wait_until(lambda: cli(n1, "status").returncode == 1, 20, "degraded status")
        self.assertEqual(cli(n2, "status").returncode, 2)
        self.assertEqual(cli(n2, "put", "t", "k", "a=1").returncode, 2)
        # A refused write is 1, with the reason.
        r = cli(n1, "put", "registration", "FRA:Z9", "birth_date=2020-02-30")
        self.assertEqual(r.returncode, 1)
        self.assertIn("birth_date", r.stderr)
        self.assertEqual(cli(n1, "get", "t", "nothing-here").returncode, 1)

    def test_cli_case_notes(self):
        c = self.make_cluster(1)
        n1 = c.nodes[0]
        c.put(n1, "registration", "FRA:N1", name="A B", nationality="FRA",
              document_type="passport", document_number="N1")
        c.put(n1, "case", "n1-7", person="FRA:N1", category="lease", status="open",
              center="n1")
        ids = []
        for text in ("first\nof two lines", "second"):
            rc, out, _ = c.cli(n1, "note", "add", "n1-7", text, "--author", "li.wei")
            self.assertRegex(out, r"^\d{8}T\d{6}\.\d{3}Z-n1-[0-9a-f]{16}\n$")
            ids.append(out.strip())
        _, out, _ = c.cli(n1, "note", "list", "n1-7", "--json")
        rows = [json.loads(l) for l in out.splitlines()]
        self.assertEqual([r["id"] for r in rows], ids)
        self.assertEqual(rows[0]["fields"], {"text": "first\nof two lines", "center": "n1",
                                             "author": "li.wei"})
        _, out, _ = c.cli(n1, "note", "list", "n1-7")
        self.assertIn("%s li.wei\nfirst\nof two lines\n" % ids[0], out)
        # Each note is a record of its own; the case holds no note field.
        self.assertEqual(set(c.values(n1, "case", "n1-7")),
                         {"person", "category", "status", "center"})
        self.assertEqual(c.values(n1, "case_note", "n1-7/" + ids[1])["text"], "second")
        _, out, _ = c.cli(n1, "export")
        self.assertEqual(sum(json.loads(l)["collection"] == "case_note"
                             for l in out.splitlines()), 2)
        # A note whose center is not the one in its id is refused.
        rc, _, err = c.cli(n1, "put", "case_note", "n1-7/" + ids[0], "center=futian",
                           check=False)
        self.assertEqual(rc, 1)
        self.assertIn("does not match the center in the note id", err)
        rc, _, err = c.cli(n1, "note", "add", "n1-7", "", check=False)
        self.assertEqual(rc, 1)
        self.assertIn("case_note.text", err)

    def test_garbage_and_vanishing_clients_do_not_disturb_others(self):
        c = self.make_cluster(1)
        n1 = c.nodes[0]
        socks = []
        for payload in (b"\xff\xff\xff\xff", b"\x00\x00\x00\x05hello", b"\x00\x00",
                        b"\x00\x00\x10\x00" + b"\x01" * 100):
            s = socket.socket(socket.AF_UNIX)
            s.connect(n1.socket)
            s.sendall(payload)
            socks.append(s)
        # One sends half a request and vanishes.
        s = socket.socket(socket.AF_UNIX)
        s.connect(n1.socket)
        s.sendall(b"\x00\x00\x00\x40" + b"\x08\x01")
        s.close()
        # A decodable-length but malformed request gets an error answer,
        # id 0 and EPROTO, and the connection goes on serving (decoded by
        # msce-libtest raw).
        require_binaries("MSCE_LIBTEST")
        self.run_checked([LIBTEST, "raw", n1.socket])
        for _ in range(20):
            c.put(n1, "t", "still-ok", {"v": "1"})
        self.assertEqual(c.values(n1, "t", "still-ok"), {"v": "1"})
        for s in socks:
            s.close()
        c.check_alive(n1)

    def test_clients_gone_before_min_sites_are_forgotten(self):
        # With a center down, a put asking for every center waits (here a
        # timeout of 2^62 ms: for good). A client that sends such puts and
        # goes away left each one waiting, holding its connection too:
        # about 100 bytes a put and 2 KiB a connection, round after round
        # (1 MB a round of 6,000 here). Now the node forgets them at its
        # next tick, and the memory of one round serves the next.
        c = self.make_cluster(2, start=False).begin()  # both write
        n1, n2 = c.nodes
        c.stop(n2)
        pid = n1.proc.pid
        marks = []
        writer = str(c.status(n1)["writer"])
        done = 0
        for rnd in range(4):
            for batch in range(15):  # 150 clients, 10 at a time
                socks = []
                for i in range(10):
                    s = socket.socket(socket.AF_UNIX)
                    s.connect(n1.socket)
                    s.sendall(b"".join(
                        min_sites_put(j + 1, "t", "w%d-%d-%d-%d" % (rnd, batch, i, j),
                                      2, 1 << 62) for j in range(40)))
                    socks.append(s)
                done += 400
                wait_until(lambda: c.status(n1)["vv"].get(writer, 0) >= done, 60,
                           "%d puts committed" % done)
                for s in socks:
                    s.close()
            time.sleep(2)  # a tick or two after the closes
            c.check_alive(n1)
            marks.append(rss_anon_kib(pid))
        # Rounds 2 to 4 find the first round's memory free again (about
        # 2 MB more without the fix; allow a quarter of that). Not under
        # AddressSanitizer: its quarantine keeps freed memory resident,
        # so RssAnon measures the sanitizer (as in test_shield).
        if os.environ.get("MSCE_SANITIZED") not in ("ON", "1", "TRUE"):
            self.assertLess(marks[-1] - marks[0], 512,
                            "RssAnon KiB after each round: %s" % marks)

    def test_conflicts_listed_and_resolved(self):
        c = self.make_cluster(2, proxy=True)
        n1, n2 = c.nodes
        c.wait_converged(timeout=30)
        c.put(n1, "t", "doc", {"phone": "0"})
        c.wait_converged(timeout=30)
        c.proxy.cut("*")
        c.put(n1, "t", "doc", {"phone": "111"})
        c.put(n2, "t", "doc", {"phone": "222"})
        c.proxy.resume("*")
        c.wait_converged(timeout=60)
        listed = lambda node: [json.loads(l) for l in subprocess.run(
            [MSCE, "-c", node.config, "conflicts", "--json"], capture_output=True,
            text=True, timeout=60).stdout.splitlines()]
        for node in (n1, n2):
            rows = listed(node)
            self.assertEqual(len(rows), 1, rows)
            self.assertEqual(rows[0]["field"], "phone")
            self.assertEqual({rows[0]["winner"]["value"], rows[0]["loser"]["value"]},
                             {"111", "222"})
        r = subprocess.run([MSCE, "-c", n1.config, "resolve", "t", "doc", "phone", "333"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        c.wait_converged(timeout=60)
        for node in (n1, n2):
            self.assertEqual(listed(node), [])
            self.assertEqual(c.values(node, "t", "doc")["phone"], "333")

    def test_roles_over_tcp(self):
        c = self.make_cluster(1, start=False)
        n1 = c.nodes[0]
        port = __import__("cluster").free_ports(1)[0]
        keys = {}
        for name in ("desk-ro", "desk-rw", "stranger"):
            keys[name] = c.keygen(os.path.join(c.dir, name))
        c.write_config(n1, client_listen="127.0.0.1:%d" % port)
        with open(n1.config, "a") as f:
            f.write("\n[client desk-ro]\npublic_key = %s\nrole = ro\n" % keys["desk-ro"])
            f.write("\n[client desk-rw]\npublic_key = %s\nrole = rw\n" % keys["desk-rw"])
        c.start(n1)
        c.put(n1, "t", "shared", {"v": "1"})

        def tcp(name, *args):
            return subprocess.run(
                [MSCE, "--node", "127.0.0.1:%d" % port, "--key",
                 os.path.join(c.dir, name + ".key"), "--node-key", n1.pub,
                 "--cluster", c.name] + list(args),
                capture_output=True, text=True, timeout=60)

        r = tcp("desk-ro", "get", "t", "shared", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["fields"]["v"]["value"], "1")
        r = tcp("desk-ro", "put", "t", "shared", "v=2")
        self.assertEqual(r.returncode, 1)
        self.assertIn("role ro", r.stderr)
        r = tcp("desk-rw", "put", "t", "shared", "v=3")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = tcp("desk-rw", "backup", os.path.join(c.dir, "bk"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("role rw", r.stderr)
        # A key the node does not know never gets a session.
        r = tcp("stranger", "get", "t", "shared")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(c.values(n1, "t", "shared"), {"v": "3"})

    def test_no_core_dumps(self):
        # The node's memory holds its secret key: no core file may carry it.
        c = self.make_cluster(1)
        pid = c.nodes[0].proc.pid
        with open("/proc/%d/limits" % pid) as f:
            core = [l for l in f if l.startswith("Max core file size")][0]
        self.assertEqual(core.split()[4:6], ["0", "0"], core)

    def test_metrics_endpoint(self):
        import urllib.error
        import urllib.request
        c = self.make_cluster(2, start=False)
        n1, n2 = c.nodes
        port = __import__("cluster").free_ports(1)[0]
        c.write_config(n1, metrics_listen="127.0.0.1:%d" % port)
        c.start_all()
        c.wait_converged(timeout=30)
        for i in range(20):
            c.put(n2, "t", "m%d" % i, {"v": str(i)})
        c.wait_converged(timeout=30)

        def scrape():
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                        timeout=10) as r:
                self.assertIn("text/plain", r.headers["Content-Type"])
                return r.read().decode()
        text = scrape()
        self.assertIn('msce_peer_connected{center="n1",peer="2",peer_center="n2"} 1', text)
        self.assertIn("msce_commit_seconds_bucket{le=", text)
        self.assertIn('msce_handshake_failures_total{reason="unknown_key"} 0', text)
        applied = [l for l in text.splitlines() if l.startswith("msce_changes_applied_total ")]
        self.assertTrue(applied and int(applied[0].split()[1]) >= 20, applied)
        c.stop(n2)
        wait_until(lambda: 'msce_peer_connected{center="n1",peer="2",peer_center="n2"} 0' in scrape(), 20,
                   "peer down in metrics")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen("http://127.0.0.1:%d/nope" % port, timeout=10)
        self.assertEqual(cm.exception.code, 404)
        cm.exception.close()
        self.assertIn('msce_peer_connected{center="n1",peer="2",peer_center="n2"} 0', scrape())  # still serving


if __name__ == "__main__":
    unittest.main()
