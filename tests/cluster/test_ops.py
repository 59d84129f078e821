# SPDX-License-Identifier: Apache-2.0
"""What an operator relies on, on live nodes (issue 13): the CLI never
hangs on a frozen node and says so (exit 2), tells permission denied
apart (exit 3), answers --json with JSON on stdout whatever happens,
names centers next to ids, says "never" for a peer never reached, refuses
unknown options and bad numbers, follows changes (watch), reports each
line of an import it did not write with the node's reason in line order,
and shows progress only on a terminal. msced: a node catching up says
so itself, SIGHUP reloads what it can and names what needs a restart,
systemd hears ready/reloading/stopping and watchdog pings, and under
journald every line carries its syslog priority."""

import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import cluster
from cluster import MSCE, MSCED, ClusterTestCase, free_ports, reap, spawn, wait_until

LIBFAKETIME = next((p for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                                 "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1")
                    if os.path.exists(p)), None)
COMMANDS = ["status", "verify", "get", "put", "del", "scan", "conflicts", "resolve",
            "note", "watch", "import", "export", "backup", "keygen"]


def msce(*args, env=None, timeout=30, **kw):
    return subprocess.run([MSCE] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL, **kw)


def registration(i, **extra):
    fields = {"name": "Person %d" % i, "nationality": "USA",
              "document_type": "passport", "document_number": "P%05d" % i}
    fields.update(extra)
    return {"collection": "registration", "key": "USA:P%05d" % i, "fields": fields}


class CliTest(ClusterTestCase):
    def test_help_version_and_refused_options(self):
        cluster.require_binaries()
        r = msce("--help")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertTrue(r.stdout.startswith("usage: msce"), r.stdout)
        for cmd in COMMANDS:
            self.assertIn("  %s " % cmd, r.stdout)
            for argv in ([cmd, "--help"], ["help", cmd], ["-h", cmd]):
                h = msce(*argv)
                self.assertEqual((h.returncode, h.stderr), (0, ""), argv)
                self.assertTrue(h.stdout.startswith("usage: msce [OPTIONS] %s" % cmd),
                                (argv, h.stdout))
                self.assertIn("--timeout", h.stdout)
        v = msce("--version")
        self.assertEqual(v.returncode, 0)
        self.assertRegex(v.stdout, r"^msce \d+\.\d+\.\d+\n$")
        for flag in ("--version", "--help"):
            d = subprocess.run([MSCED, flag], capture_output=True, text=True, timeout=10)
            self.assertEqual((d.returncode, d.stderr), (0, ""), flag)
            self.assertRegex(d.stdout, r"^msced \d+\.\d+\.\d+ |^usage: msced")
        # Refused before any connection: exit 2 and what was wrong.
        bad = [
            (["status", "--bogus"], "unknown option --bogus"),
            (["get", "--max-lag", "5", "t", "k"], "unknown option --max-lag"),
            (["scan", "--limit", "abc", "t"], '--limit: "abc" is not a whole number'),
            (["scan", "--limit", "0", "t"], '--limit: "0" is not a whole number'),
            (["scan", "--limit", "10x", "t"], '--limit: "10x"'),
            (["status", "--max-lag", "soon"], '--max-lag: "soon"'),
            (["--timeout", "-1", "status"], '--timeout: "-1"'),
            (["status", "extra"], 'unexpected argument "extra"'),
            (["get", "t"], "missing arguments"),
            (["frobnicate"], 'unknown command "frobnicate"'),
            (["put", "t", "k", "novalue"], '"novalue" is not NAME=VALUE'),
        ]
        for argv, want in bad:
            r = msce("-c", "/nonexistent.conf", *argv)
            self.assertEqual(r.returncode, 2, (argv, r.stderr))
            self.assertIn(want, r.stderr, argv)
            self.assertEqual(r.stdout, "", argv)
            # The same as JSON on stdout.
            j = msce("-c", "/nonexistent.conf", "--json", *argv)
            self.assertEqual(j.returncode, 2, argv)
            err = json.loads(j.stdout)["error"]
            self.assertEqual(err["exit"], 2)
            self.assertIn(want, err["message"])

    def test_frozen_node_times_out(self):
        c = self.make_cluster(1)
        n1 = c.nodes[0]
        pid = n1.proc.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            for argv in (["status"], ["get", "t", "k"], ["put", "t", "k", "v=1"],
                         ["conflicts"], ["verify", "--timeout", "1"]):
                t0 = time.monotonic()
                try:
                    r = msce("-c", n1.config, "--timeout", "1", *argv, timeout=20)
                except subprocess.TimeoutExpired:
                    self.fail("msce %s hung on a stopped node" % " ".join(argv))
                self.assertLess(time.monotonic() - t0, 6, argv)
                self.assertEqual(r.returncode, 2, (argv, r.stderr))
                self.assertIn("did not answer within 1 s", r.stderr, argv)
            r = msce("-c", n1.config, "--json", "-t", "0.5", "status", timeout=20)
            self.assertEqual(r.returncode, 2)
            self.assertEqual(json.loads(r.stdout)["error"]["code"], "ETIMEOUT")
        finally:
            os.kill(pid, signal.SIGCONT)
        self.assertEqual(msce("-c", n1.config, "status").returncode, 0)

    def test_permission_denied(self):
        c = self.make_cluster(1)
        n1 = c.nodes[0]
        d = tempfile.mkdtemp(prefix="msce-perm-")
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o755)
        conf = os.path.join(d, "node.conf")
        shutil.copy(n1.config, conf)
        os.chmod(conf, 0o644)
        prog = MSCE
        if os.geteuid() == 0:
            # root opens everything: ask as nobody, who may read the
            # config and reach the socket's directory but not the socket
            # (and runs a copy of msce: the build dir may be closed to it).
            prog = os.path.join(d, "msce")
            shutil.copy(MSCE, prog)
            os.chmod(prog, 0o755)
            for p in (c.dir, n1.dir):
                mode = os.stat(p).st_mode & 0o7777
                os.chmod(p, mode | 0o711)
                self.addCleanup(os.chmod, p, mode)

            def as_nobody():
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            kw = {"preexec_fn": as_nobody}
        else:
            os.chmod(n1.socket, 0)
            self.addCleanup(os.chmod, n1.socket, 0o660)
            kw = {}
        run = lambda *a: subprocess.run([prog] + list(a), capture_output=True, text=True,
                                        timeout=30, stdin=subprocess.DEVNULL, **kw)
        r = run("-c", conf, "status")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("permission denied", r.stderr)
        self.assertIn("usermod -aG msce", r.stderr)
        r = run("-c", conf, "--json", "status")
        self.assertEqual(r.returncode, 3)
        self.assertEqual(json.loads(r.stdout)["error"]["exit"], 3)
        if os.geteuid() == 0:
            # A config nobody may read is the same kind of problem.
            os.chmod(conf, 0o600)
            r = run("-c", conf, "status")
            self.assertEqual(r.returncode, 3, r.stderr)
            self.assertIn("permission denied: cannot read %s" % conf, r.stderr)

    def test_names_never_and_json_errors(self):
        c = self.make_cluster(3, start=False)
        n1, n2, n3 = c.nodes
        c.begin(n1, n2)  # n3, added later, never runs
        c.wait_connected(n1, [2])
        # Text: names next to ids; a peer never reached says so.
        rc, out, _ = c.cli(n1, "status", check=False)
        self.assertEqual(rc, 1)
        self.assertIn("link to n3 (3) down (no contact since this node started)", out)
        # The peer table: between its header and the node table's.
        text = out.split("\npeer ", 1)[1].split("\nnode ", 1)[0]
        rows = {" ".join(l.split()[:2]): l for l in text.splitlines()[1:]}
        self.assertRegex(rows["2 n2"], r" up .* ago ")
        self.assertRegex(rows["3 n3"], r" DOWN .* never ")
        self.assertNotIn("-1.0s", out)
        st = c.status(n1)
        peers = {p["node"]: p for p in st["peers"]}
        self.assertEqual((peers[2]["name"], peers[3]["name"]), ("n2", "n3"))
        self.assertIsNone(peers[3]["last_contact_age_ms"])
        self.assertIsInstance(peers[2]["last_contact_age_ms"], (int, float))
        self.assertEqual({n["node"]: n["name"] for n in st["nodes"]},
                         {1: "n1", 2: "n2", 3: "n3"})
        self.assertRegex(st["problem_list"][0],
                         r"^link to n3 \(3\) down \(no contact since this node started\): "
                         r"dial to 127\.0\.0\.1:\d+ failed: connection refused$")
        self.assertRegex(peers[3]["link_error"], r"^dial to .* failed: connection refused$")
        self.assertIsNone(peers[2]["link_error"])
        # A conflict names the centers that wrote each value: both writes
        # are based on the same version, so they are concurrent.
        c.put(n1, "t", "k", {"v": "base"})
        c.wait_value(n2, "t", "k", "v", "base")
        f = c.get(n1, "t", "k")["fields"]["v"]
        self.assertEqual(f["center"], "n1")
        base = "%s/%d" % (f["hlc"], f["origin"])
        c.put(n1, "t", "k", {"v": "one"})
        imp = os.path.join(c.dir, "conflict.jsonl")
        with open(imp, "w") as fh:
            fh.write(json.dumps({"collection": "t", "key": "k", "fields": {"v": "two"},
                                 "base": {"v": base}}) + "\n")
        c.cli(n2, "import", imp)
        wait_until(lambda: c.status(n1)["conflicts"] == 1, 30, "the conflict at n1")
        _, out, _ = c.cli(n1, "conflicts")
        self.assertRegex(out, r'^t/k v: "(one|two)" \(n[12] \(\d\)\) won over '
                         r'"(one|two)" \(n[12] \(\d\)\)$'.replace("$", "\n"))
        self.assertIn("(n1 (1))", out)
        self.assertIn("(n2 (2))", out)
        _, out, _ = c.cli(n1, "conflicts", "--json")
        k = json.loads(out.splitlines()[0])
        self.assertEqual({k["winner"]["center"], k["loser"]["center"]}, {"n1", "n2"})
        # A node that is not running: JSON on stdout all the same.
        for argv in (["status"], ["verify", "--timeout", "1"], ["get", "t", "k"],
                     ["conflicts"], ["export"]):
            r = msce("-c", n3.config, "--json", *argv)
            self.assertEqual(r.returncode, 2, argv)
            err = json.loads(r.stdout)["error"]
            self.assertEqual((err["exit"], err["code"]), (2, "EUNAVAIL"), argv)
            self.assertIn("node unreachable", err["message"])
        # MSCE_CONFIG stands in for -c.
        r = msce("--json", "status", env=dict(os.environ, MSCE_CONFIG=n1.config))
        self.assertEqual(json.loads(r.stdout)["name"], "n1")

    def test_a_long_reason_is_said_whole(self):
        """A new store waiting for centers that never come: the reason
        (one of the longest a status gives) is whole in the problem list
        and in the text, as the write gate has it."""
        c = self.make_cluster(3, start=False)
        n1 = c.nodes[0]
        c.start(n1)
        wait_until(lambda: "peers greeted" in c.status(n1)["write_gate"], 30,
                   "n1 to say what its writes wait for")
        st = c.status(n1)
        self.assertGreater(len(st["write_gate"]), 180, st["write_gate"])
        self.assertTrue(st["write_gate"].endswith("(0 of 2 peers greeted, 0 of them writing)"),
                        st["write_gate"])
        self.assertIn("not writing yet: " + st["write_gate"], st["problem_list"])
        rc, out, _ = c.cli(n1, "status", check=False)
        self.assertEqual(rc, 1)
        self.assertIn("not writing yet: " + st["write_gate"], out)

    def test_watch_follows_changes(self):
        c = self.make_cluster(2)
        n1, n2 = c.nodes
        c.put(n1, "t", "old", {"v": "0"})
        p = spawn([MSCE, "-c", n1.config, "watch", "t"], stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        self.addCleanup(reap, p, 5)
        lines = []

        def drain():
            while select.select([p.stdout], [], [], 0.1)[0]:
                line = p.stdout.readline()
                if not line:
                    break
                lines.append(json.loads(line))

        def got(key, delete=False):
            drain()
            return any(e["key"] == key and e["delete"] == delete for e in lines)
        # The watch starts from now: probe until it sees a write.
        i = 0

        def probe():
            nonlocal i
            i += 1
            c.put(n1, "t", "probe-%d" % i, {"v": str(i)})
            return got("probe-%d" % i)
        wait_until(probe, 20, "the watch to start")
        c.put(n2, "t", "from-n2", {"v": "2"})
        wait_until(lambda: got("from-n2"), 20, "n2's write in n1's watch")
        ev = [e for e in lines if e["key"] == "from-n2"][0]
        self.assertEqual((ev["collection"], ev["center"], ev["fields"], ev["delete"]),
                         ("t", "n2", {"v": "2"}, False))
        self.assertEqual(ev["origin"] & 0xffff, 2)
        self.assertNotIn("old", [e["key"] for e in lines])  # not from the start
        c.delete(n1, "t", "from-n2")
        wait_until(lambda: got("from-n2", delete=True), 20, "the delete")
        self.assertEqual(reap(p, 10), 0)  # SIGTERM ends it cleanly
        # --from-start replays every change the node holds (origin by
        # origin, so not in the order the live watch saw them), including
        # the probes made before the live watch began; --count stops.
        made = ([("old", False)] + [("probe-%d" % k, False) for k in range(1, i + 1)]
                + [("from-n2", False), ("from-n2", True)])
        seen = [(e["key"], e["delete"]) for e in lines]
        self.assertLessEqual(set(seen), set(made))
        r = msce("-c", n1.config, "watch", "t", "--from-start", "--count", len(made))
        self.assertEqual(r.returncode, 0, r.stderr)
        replay = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual(sorted((e["key"], e["delete"]) for e in replay), sorted(made))

    def test_filtered_watch_passes_over_other_collections(self):
        # A desk watching one collection from the start of a log that
        # holds many more changes of others (more than one pump reads,
        # from two origins) gets exactly its events, each once.
        c = self.make_cluster(2)
        n1, n2 = c.nodes
        for node, tag in ((n1, "a"), (n2, "b")):
            path = os.path.join(c.dir, "bulk-%s.jsonl" % tag)
            with open(path, "w") as f:
                for i in range(1500):
                    f.write(json.dumps({"collection": "other", "key": "%s%d" % (tag, i),
                                        "fields": {"v": str(i)}}) + "\n")
                    if i % 500 == 250:
                        f.write(json.dumps({"collection": "wanted",
                                            "key": "%s%d" % (tag, i),
                                            "fields": {"v": str(i)}}) + "\n")
            r = msce("-c", node.config, "import", path)
            self.assertEqual(r.returncode, 0, r.stderr)
        want = sorted("%s%d" % (t, i) for t in "ab" for i in (250, 750, 1250))
        c.wait_converged(timeout=60)
        r = msce("-c", n1.config, "watch", "wanted", "--from-start", "--count",
                 len(want), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual(sorted(e["key"] for e in got), want)
        self.assertEqual({e["collection"] for e in got}, {"wanted"})

    def test_import_reports_each_line_in_order(self):
        c = self.make_cluster(1)
        n1 = c.nodes[0]
        path = os.path.join(c.dir, "in.jsonl")
        lines = ["{not json",                                          # 1
                 json.dumps(registration(1)),                          # 2
                 json.dumps(registration(2, birth_date="2020-02-30")),  # 3
                 "",                                                   # 4
                 json.dumps({"collection": "t"}),                      # 5
                 json.dumps({"collection": "registration", "key": "USA:P00003",
                             "fields": {"name": "No Type"}})]          # 6
        lines += [json.dumps(registration(i)) for i in range(10, 700)]  # 7..696
        lines.append(json.dumps(registration(5, email="not an email")))  # 697
        lines.append(json.dumps({"collection": "t", "key": "k", "fields": {"v": 1}}))  # 698
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = msce("-c", n1.config, "import", path)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout.strip(), "imported 691, refused 3, unreadable lines 3")
        got = r.stderr.splitlines()
        self.assertEqual([int(re.match(r"^line (\d+): ", l).group(1)) for l in got],
                         [1, 3, 5, 6, 697, 698], r.stderr)
        self.assertEqual(got[0], "line 1: unreadable: not JSON")
        self.assertRegex(got[1], r"^line 3: registration/USA:P00002 refused: .*birth_date")
        self.assertIn("unreadable: not {", got[2])
        self.assertRegex(got[3], r"^line 6: registration/USA:P00003 refused: .*"
                         r"(nationality|document_type|document_number)")
        self.assertRegex(got[4], r"^line 697: registration/USA:P00005 refused: .*email")
        self.assertEqual(got[5], 'line 698: unreadable: field "v": values must be strings')
        self.assertNotIn("invalid argument\n", r.stderr)
        # --json: each of them, then the summary, on stdout.
        r = msce("-c", n1.config, "--json", "import", path)
        out = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual([o.get("line") for o in out[:-1]], [1, 3, 5, 6, 697, 698])
        self.assertEqual(out[1]["error"]["code"], "EINVAL")
        self.assertIn("birth_date", out[1]["error"]["message"])
        self.assertEqual(out[-1], {"imported": 691, "refused": 3, "unreadable": 3,
                                   "complete": True})

    def test_import_registration_then_its_case(self):
        # One batch of an import file takes a case whose registration an
        # earlier line of it writes, exactly as one line per request does:
        # a case before its registration, on nobody, or on a registration
        # refused is refused on its own line with the person rule.
        c = self.make_cluster(2)
        n1, n2 = c.nodes
        c.wait_connected(n1, [2])

        def case(key, person):
            return {"collection": "case", "key": key,
                    "fields": {"person": person, "category": "lease",
                               "status": "open", "center": "n1"}}

        def lines(p):
            return [registration(p + 1),                                  # 1
                    case("c%d-1" % p, "USA:P%05d" % (p + 1)),             # 2
                    case("c%d-2" % p, "USA:P%05d" % (p + 2)),             # 3
                    registration(p + 2),                                  # 4
                    case("c%d-3" % p, "USA:P%05d" % (p + 9)),             # 5
                    registration(p + 3, birth_date="2020-02-30"),         # 6
                    case("c%d-4" % p, "USA:P%05d" % (p + 3)),             # 7
                    case("c%d-5" % p, "USA:P%05d" % (p + 2))]             # 8

        def refused(r):
            return [(int(m.group(1)), m.group(2)) for m in
                    (re.match(r"^line (\d+): \S+ refused: (.*)$", l)
                     for l in r.stderr.splitlines()) if m]

        # The whole file in one batch.
        path = os.path.join(c.dir, "batch.jsonl")
        with open(path, "w") as f:
            f.write("".join(json.dumps(l) + "\n" for l in lines(100)))
        r = msce("-c", n1.config, "import", path)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout.strip(), "imported 4, refused 4, unreadable lines 0",
                         r.stderr)
        got = refused(r)
        self.assertEqual([n for n, _ in got], [3, 5, 6, 7], r.stderr)
        for n, why in got:
            if n != 6:
                self.assertIn("case.person: no registration", why)
        self.assertIn("birth_date", got[2][1])
        # The same lines one request each give the same answers.
        one = []
        for i, l in enumerate(lines(200)):
            path = os.path.join(c.dir, "one-%d.jsonl" % i)
            with open(path, "w") as f:
                f.write(json.dumps(l) + "\n")
            r = msce("-c", n1.config, "import", path)
            one += [(i + 1, "case.person" in why) for _, why in refused(r)]
        self.assertEqual(one, [(n, "case.person" in why) for n, why in got])
        # Both replicate like any write: the other center holds each case
        # with its person.
        c.wait_converged()
        for p in (100, 200):
            for k, person in (("c%d-1" % p, p + 1), ("c%d-5" % p, p + 2)):
                self.assertEqual(c.values(n2, "case", k)["person"], "USA:P%05d" % person)
            self.assertIsNone(c.values(n2, "case", "c%d-2" % p))
            self.assertIsNone(c.values(n2, "case", "c%d-4" % p))

    def test_progress_only_on_a_terminal(self):
        c = self.make_cluster(1)
        n1 = c.nodes[0]
        path = os.path.join(c.dir, "in.jsonl")
        with open(path, "w") as f:
            for i in range(3000):
                f.write(json.dumps({"collection": "t", "key": "k%05d" % i,
                                    "fields": {"v": "x" * 100}}) + "\n")
        # In a pipe: the summary only.
        r = msce("-c", n1.config, "import", path)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(r.stdout, "imported 3000, refused 0, unreadable lines 0\n")
        r = msce("-c", n1.config, "export", "t")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        # On a terminal: count, rate and time left, on one rewritten line.
        for argv, want in ((["import", path], r"import: \d+ lines, \d+/s, \d+%, ETA \d+ s"),
                           (["export", "t"], r"export: \d+ records, \d+/s")):
            master, slave = pty.openpty()
            try:
                p = subprocess.run([MSCE, "-c", n1.config] + argv, stdout=subprocess.PIPE,
                                   stderr=slave, stdin=subprocess.DEVNULL, timeout=60)
                os.close(slave)
                slave = None
                text = b""
                while select.select([master], [], [], 0.2)[0]:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:
                        break
                    if not chunk:
                        break
                    text += chunk
            finally:
                if slave is not None:
                    os.close(slave)
                os.close(master)
            self.assertEqual(p.returncode, 0)
            self.assertRegex(text.decode(), want)
            self.assertIn("\r\x1b[K", text.decode())


class DaemonTest(ClusterTestCase):
    @unittest.skipUnless(LIBFAKETIME, "libfaketime is not installed")
    def test_a_node_catching_up_says_so(self):
        c = self.make_cluster(2, start=False)
        n1, n2 = c.nodes
        # n2 runs 45 s ahead, and n1 takes changes at most 30 s ahead of its
        # clock: n1 learns what n2 holds but refuses to apply it, so n1
        # stays behind. (n1's dial to n2 passes n2's 60 s handshake window,
        # and wins the crossed dials, so the link is up.)
        c.write_config(n1, max_clock_skew="30s")
        n2.env = {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": "+45s",
                  "ASAN_OPTIONS": "verify_asan_link_order=0:" +
                  os.environ.get("ASAN_OPTIONS", "")}
        c.start_all()
        c.wait_connected(n1, [2])
        self.assertEqual(c.cli(n1, "status", "--max-lag", "1", check=False)[0], 0)
        path = os.path.join(c.dir, "in.jsonl")
        with open(path, "w") as f:
            for i in range(1500):
                f.write(json.dumps({"collection": "t", "key": "k%d" % i,
                                    "fields": {"v": "x"}}) + "\n")
        c.cli(n2, "import", path)
        wait_until(lambda: c.status(n1)["inbound_lag_changes"] >= 1500, 30,
                   "n1 to learn what n2 holds")
        st = c.status(n1)
        self.assertFalse(st["healthy"])
        self.assertTrue(any(p.startswith("catching up: peers hold 1500 changes we lack")
                            for p in st["problem_list"]), st["problem_list"])
        for argv in (["status"], ["status", "--max-lag", "1"]):
            rc, out, _ = c.cli(n1, *argv, check=False)
            self.assertEqual(rc, 1, argv)
            self.assertIn("DEGRADED", out)
        # The first line counts what n1 knew then: the first batch n2 sent
        # may tell it before n2's status does.
        wait_until(lambda: re.search(r"catching up: peers hold \d+ changes we lack",
                                     n1.log_text()), 10, "the catch-up in n1's log")

    def test_sighup_reloads_what_it_can(self):
        c = self.make_cluster(2, start=False)
        n1, n2 = c.nodes
        dead = free_ports(1)[0]

        def config(node, peer_port=None, **kw):
            c.write_config(node, **kw)
            if peer_port is not None:
                with open(node.config) as f:
                    text = f.read()
                text = re.sub(r"address = 127\.0\.0\.1:\d+", "address = 127.0.0.1:%d" % peer_port,
                              text)
                with open(node.config, "w") as f:
                    f.write(text)
        # Neither can dial the other: the link stays down.
        config(n1, dead)
        config(n2, dead)
        c.start_all()
        self.assertFalse({p["node"]: p for p in c.status(n1)["peers"]}[2]["connected"])
        # The same config again: nothing to apply, nothing to restart.
        off = n1.log_size()
        n1.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload:" in n1.log_since(off), 10, "the reload")
        self.assertIn("reload: configuration unchanged", n1.log_since(off))
        self.assertNotIn("need a restart", n1.log_since(off))
        # n1 gets n2's address and reloads: the link comes up; log_level too.
        config(n1, n2.port, log_level="debug")
        off = n1.log_size()
        n1.proc.send_signal(signal.SIGHUP)
        c.wait_connected(n1, [2], timeout=20)
        log = n1.log_since(off)
        self.assertIn("reload: peer n2 (2) address 127.0.0.1:%d -> 127.0.0.1:%d"
                      % (dead, n2.port), log)
        self.assertIn("reload: log_level info -> debug", log)
        # The node's own earlier signing keys (after a rotation): applied.
        config(n1, n2.port, log_level="debug", old_sign_key=n2.sign_pub)
        off = n1.log_size()
        n1.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload: done" in n1.log_since(off), 10, "the reload")
        self.assertIn("reload: this node's old signing keys changed (1 now)",
                      n1.log_since(off))
        self.assertNotIn("need a restart", n1.log_since(off))
        # What cannot change while running is named, and nothing happens.
        config(n1, n2.port, log_level="debug", listen="127.0.0.1:%d" % dead,
               log_retention=5)
        off = n1.log_size()
        n1.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "need a restart" in n1.log_since(off), 10, "the reload")
        self.assertRegex(n1.log_since(off), r"need a restart .*: listen, log_retention")
        # So is a limit, backup_dir or a retention rule: never "unchanged".
        config(n1, n2.port, log_level="debug", handshake_timeout="7s",
               backup_dir=c.dir)
        with open(n1.config, "a") as f:
            f.write("\n[retention]\nregistration = visa_expiry + 5y\n")
        off = n1.log_size()
        n1.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "need a restart" in n1.log_since(off), 10, "the reload")
        self.assertRegex(n1.log_since(off), r"need a restart .*: handshake_timeout, "
                         r"backup_dir, \[retention\] registration")
        self.assertNotIn("configuration unchanged", n1.log_since(off))
        # A config that does not parse changes nothing either.
        with open(n1.config, "a") as f:
            f.write("[bogus\n")
        off = n1.log_size()
        n1.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "the running configuration stays" in n1.log_since(off), 10,
                   "the refused reload")
        c.check_alive(n1)
        config(n1, n2.port)  # msce reads it too
        self.assertEqual(c.cli(n1, "status")[0], 0)

    def test_systemd_notify_and_watchdog(self):
        c = self.make_cluster(1, start=False)
        n1 = c.nodes[0]
        path = os.path.join(c.dir, "notify.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(s.close)
        s.bind(path)
        n1.env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}
        got = []

        def heard(what, times=1):
            while select.select([s], [], [], 0.05)[0]:
                got.append(s.recv(4096).decode())
            return sum(what in m.split("\n") for m in got) >= times
        c.start(n1, wait=False)
        wait_until(lambda: heard("READY=1"), 20, "READY=1")
        ready = [m for m in got if "READY=1" in m.split("\n")][0]
        self.assertRegex(ready, r"STATUS=0/0 links up")
        self.assertTrue(os.path.exists(n1.socket), "ready before the socket exists")
        # Pings every half second (half of WatchdogSec).
        t0 = time.monotonic()
        wait_until(lambda: heard("WATCHDOG=1", 3), 10, "three watchdog pings")
        self.assertLess(time.monotonic() - t0, 5)
        got.clear()
        n1.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: heard("RELOADING=1") and heard("READY=1"), 10, "a reload")
        got.clear()
        n1.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: heard("STOPPING=1"), 10, "STOPPING=1")
        self.assertEqual(reap(n1.proc, 15, term=False), 0)
        n1.proc = None

    def test_journald_priorities_and_log_file(self):
        c = self.make_cluster(1, start=False)
        n1 = c.nodes[0]
        # stderr is "the journal": JOURNAL_STREAM names its file.
        open(n1.log_path, "ab").close()
        st = os.stat(n1.log_path)
        n1.env = {"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)}
        c.start(n1)
        c.write_config(n1, log_retention=5)
        n1.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "need a restart" in n1.log_text(), 10, "the reload warning")
        ours = [l for l in n1.log_text().splitlines() if not l.startswith("----")]
        self.assertIn("<6>node 1 (n1) of cluster test started: 0 peers, data in %s"
                      % n1.data_dir, ours)
        self.assertTrue(any(l.startswith("<4>reload: these changes need a restart")
                            for l in ours), ours)
        self.assertTrue(all(re.match(r"^<[3467]>", l) for l in ours), ours)
        c.stop(n1)
        # --log-file: appended to, and opened again on SIGHUP (logrotate).
        log = os.path.join(n1.dir, "node.log")
        p = spawn([MSCED, "-c", n1.config, "--log-file", log], stdin=subprocess.DEVNULL,
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=n1.dir)
        self.addCleanup(reap, p, 5)
        wait_until(lambda: os.path.exists(log) and "started" in open(log).read(), 20,
                   "the log file")
        os.rename(log, log + ".1")
        p.send_signal(signal.SIGHUP)
        wait_until(lambda: os.path.exists(log) and "reloading" in open(log).read(), 10,
                   "a new log file")
        self.assertRegex(open(log).read().splitlines()[0],
                         r"^\d{4}-\d\d-\d\dT[\d:.]+Z n1 INFO SIGHUP: reloading ")
        self.assertEqual(reap(p, 15), 0)
        self.assertIn("stopped", open(log).read())


if __name__ == "__main__":
    unittest.main()
