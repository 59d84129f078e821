# SPDX-License-Identifier: Apache-2.0
"""deploy/msce-gen without daemons: what it writes for the eight centers,
where the secrets go, that a rerun changes nothing, and that each mistake
in a centers file is refused with its line named."""

import base64
import os
import re
import shutil
import socket
import subprocess
import tempfile
import unittest

from deployutil import MSCE, require_binaries, run_gen

EIGHT = """\
# The eight centers of Shenzhen
shekou        1  10.0.1.10:7401   metrics_listen=127.0.0.1:9401
shenzhen-bay  2  10.0.2.10:7401
nanshan       3  10.0.3.10:7401
futian        4  10.0.4.10:7401
luohu         5  10.0.5.10:7401
baoan         6  10.0.6.10:7401
longgang      7  [fd00::7]:7401   listen=[::]:7401
longhua       8  10.0.8.10:7401   # opens in spring
pingshan      9  retired
client frontdesk-1 shekou rw
client ops * admin
client audit futian,luohu ro
"""
NAMES = ["shekou", "shenzhen-bay", "nanshan", "futian", "luohu", "baoan",
         "longgang", "longhua"]


def sections(text):
    """{section header: {key: value}} of an INI text. A key on several
    lines (the lists of keys) has its values joined by ", ", as msced adds
    them up."""
    out, cur = {}, None
    for line in text.splitlines():
        line = line.split(";", 1)[0].strip()
        if line.startswith("["):
            cur = out.setdefault(line, {})
        elif "=" in line:
            k, v = line.split("=", 1)
            k, v = k.strip(), v.strip()
            cur[k] = cur[k] + ", " + v if k in cur else v
    return out


def list_value(v):
    return [t for t in re.split(r"[,\s]+", v) if t]


def parses(conf):
    """msce -c CONF status reads CONF as msced does, then finds no node:
    a config it refuses is named with the line instead."""
    r = subprocess.run([MSCE, "-c", conf, "status", "--timeout", "1"],
                       capture_output=True, text=True, timeout=30)
    return r.returncode == 2 and "node unreachable" in r.stderr, r.stderr


class GenTest(unittest.TestCase):
    def setUp(self):
        require_binaries("MSCE")
        self.dir = tempfile.mkdtemp(prefix="msce-gen-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.out = os.path.join(self.dir, "out")

    def centers(self, text):
        path = os.path.join(self.dir, "centers")
        with open(path, "w") as f:
            f.write(text)
        return path

    def read(self, name, suffix=".conf"):
        with open(os.path.join(self.out, name, name + suffix)) as f:
            return f.read()

    def test_eight_centers(self):
        run_gen(self.centers(EIGHT), self.out)
        self.assertEqual(sorted(os.listdir(self.out)), sorted(NAMES + ["_clients"]))
        self.assertEqual(sorted(os.listdir(os.path.join(self.out, "_clients"))),
                         ["audit.key", "audit.pub", "audit.sign.pub", "ops.key",
                          "ops.pub", "ops.sign.pub"])
        pubs = {n: self.read(n, ".pub").strip() for n in NAMES}
        self.assertEqual(len(set(pubs.values())), 8)
        for n in NAMES:
            d = os.path.join(self.out, n)
            self.assertEqual(os.stat(d).st_mode & 0o777, 0o700)
            self.assertEqual(os.stat(os.path.join(d, n + ".key")).st_mode & 0o777, 0o600)
            self.assertEqual(os.stat(os.path.join(d, n + ".conf")).st_mode & 0o777, 0o640)
            # Only its own secret key in a center's directory.
            keys = [os.path.relpath(os.path.join(r, f), d)
                    for r, _, fs in os.walk(d) for f in fs if f.endswith(".key")]
            want = [n + ".key"] + (["clients/frontdesk-1.key"] if n == "shekou" else [])
            self.assertEqual(sorted(keys), sorted(want))
            conf = sections(self.read(n))
            node = conf["[node]"]
            self.assertEqual(conf["[cluster]"]["name"], "shenzhen-msce")
            self.assertEqual(node["id"], str(NAMES.index(n) + 1))
            self.assertEqual(node["name"], n)
            self.assertEqual(node["key"], "/etc/msce/%s.key" % n)
            self.assertEqual(node["data_dir"], "/var/lib/msce/" + n)
            self.assertEqual(node["socket"], "/run/msce/%s.sock" % n)
            peers = {h[6:-1]: v for h, v in conf.items() if h.startswith("[peer ")}
            self.assertEqual(sorted(peers), sorted(set(NAMES) - {n}))
            for p, v in peers.items():
                self.assertEqual(v["public_key"], pubs[p])
                self.assertEqual(v["id"], str(NAMES.index(p) + 1))
            self.assertNotIn(pubs[n], self.read(n))
            self.assertNotIn("pingshan", self.read(n))
        shekou = sections(self.read("shekou"))
        self.assertEqual(shekou["[node]"]["metrics_listen"], "127.0.0.1:9401")
        self.assertEqual(shekou["[client frontdesk-1]"]["role"], "rw")
        self.assertNotIn("[client frontdesk-1]", self.read("futian"))
        with open(os.path.join(self.out, "_clients", "ops.pub")) as f:
            ops = f.read().strip()
        for n in NAMES:
            conf = sections(self.read(n))
            self.assertEqual(conf["[client ops]"],
                             {"public_key": ops, "role": "admin"})
            self.assertEqual("[client audit]" in conf, n in ("futian", "luohu"))
        self.assertEqual(sections(self.read("longgang"))["[node]"]["listen"], "[::]:7401")
        self.assertEqual(sections(self.read("futian"))["[peer longgang]"]["address"],
                         "[fd00::7]:7401")

    def test_rerun_keeps_keys_and_reports_changes(self):
        path = self.centers(EIGHT)
        run_gen(path, self.out)
        before = {n: self.read(n, ".key") for n in NAMES}
        r = run_gen(path, self.out)
        self.assertIn("configs unchanged", r.stdout)
        self.assertEqual(before, {n: self.read(n, ".key") for n in NAMES})
        with open(path, "a") as f:
            f.write("dapeng 10 10.0.10.10:7401\n")
        r = run_gen(path, self.out)
        changed = re.search(r"restart these centers\): (.*)", r.stdout).group(1).split()
        self.assertEqual(sorted(changed), sorted(NAMES + ["dapeng"]))
        self.assertEqual(before, {n: self.read(n, ".key") for n in NAMES})

    def test_center_made_key(self):
        # The center ran `msce keygen` itself and sent only its .pub.
        path = self.centers("a 1 10.0.0.1:7401\nb 2 10.0.0.2:7401\n")
        pre = os.path.join(self.dir, "own")
        os.makedirs(pre)
        subprocess.run([MSCE, "keygen", "--out", os.path.join(pre, "b")],
                       check=True, capture_output=True)
        os.makedirs(os.path.join(self.out, "b"))
        shutil.copy(os.path.join(pre, "b.pub"), os.path.join(self.out, "b", "b.pub"))
        # Without its signing key the others could not check its changes.
        r = run_gen(path, self.out, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("b.sign.pub is missing", r.stderr)
        self.assertIn("msce keygen --sign-pub", r.stderr)
        shutil.copy(os.path.join(pre, "b.sign.pub"),
                    os.path.join(self.out, "b", "b.sign.pub"))
        run_gen(path, self.out)
        self.assertFalse(os.path.exists(os.path.join(self.out, "b", "b.key")))
        with open(os.path.join(pre, "b.pub")) as f:
            self.assertIn("public_key = " + f.read().strip(), self.read("a"))
        with open(os.path.join(pre, "b.sign.pub")) as f:
            self.assertIn("sign_key = " + f.read().strip(), self.read("a"))
        r = run_gen("rotate", path, self.out, "b", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("keeps its own key", r.stderr)
        self.assertIn("send b.new.pub and b.new.sign.pub", r.stderr)
        # deploy/README.md section 6: the center makes the new pair and
        # sends both public files; rotate takes them.
        with open(os.path.join(pre, "b.sign.pub")) as f:
            old_sign = f.read().strip()
        subprocess.run([MSCE, "keygen", "--out", os.path.join(pre, "b.new")],
                       check=True, capture_output=True)
        for f in ("b.new.pub", "b.new.sign.pub"):
            shutil.copy(os.path.join(pre, f), os.path.join(self.out, "b", f))
        r = run_gen("rotate", path, self.out, "b")
        self.assertIn("rename b.new.key, b.new.pub and b.new.sign.pub", r.stdout)
        with open(os.path.join(pre, "b.new.sign.pub")) as f:
            new_sign = f.read().strip()
        with open(os.path.join(pre, "b.new.pub")) as f:
            self.assertIn("public_key = " + f.read().strip(), self.read("a"))
        self.assertIn("sign_key = %s, %s" % (new_sign, old_sign), self.read("a"))
        self.assertEqual(sections(self.read("b"))["[node]"]["old_sign_key"], old_sign)
        self.assertEqual(self.read("b", ".sign.pub.old").split(), [old_sign])
        self.assertFalse(os.path.exists(os.path.join(self.out, "b", "b.key")))
        self.assertFalse(os.path.exists(os.path.join(self.out, "b", "b.new.pub")))
        # Run twice by mistake: nothing sent, nothing rotated.
        r = run_gen("rotate", path, self.out, "b", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("send b.new.pub and b.new.sign.pub", r.stderr)
        self.assertIn("sign_key = %s, %s" % (new_sign, old_sign), self.read("a"))
        # Removed (section 8): what it wrote is checked with both keys.
        path = self.centers("a 1 10.0.0.1:7401\nb 2 retired\n")
        run_gen(path, self.out)
        self.assertEqual(sections(self.read("a"))["[cluster]"]["retired"],
                         "2:%s, 2:%s" % (new_sign, old_sign))

    def test_rotations_keep_every_signing_key(self):
        """Earlier signing keys stay pinned for good (snapshot covers
        hold what they signed): each rotation adds one, past the four a
        config line holds (the list goes on, over lines msced adds up);
        a rotation past msced's 16 is refused, changing nothing; the
        rotated center's own config lists its earlier ones (old_sign_key),
        and a change to that or to a peer's list alone is a reload, while
        a new center is a restart."""
        path = self.centers("a 1 10.0.0.1:7401\nb 2 10.0.0.2:7401\n")
        run_gen(path, self.out)
        keys = [self.read("b", ".sign.pub").strip()]
        self.assertNotIn("old_sign_key", self.read("b"))
        for i in range(5):
            run_gen("rotate", path, self.out, "b")
            keys.insert(0, self.read("b", ".sign.pub").strip())
            self.assertEqual(sections(self.read("a"))["[peer b]"]["sign_key"],
                             ", ".join(keys))
            self.assertEqual(sections(self.read("b"))["[node]"]["old_sign_key"],
                             ", ".join(keys[1:]))
            self.assertEqual(self.read("b", ".sign.pub.old").split(), keys[1:])
            for n in ("a", "b"):
                ok, err = parses(os.path.join(self.out, n, n + ".conf"))
                self.assertTrue(ok, "%s after rotation %d: %s" % (n, i + 1, err))
            r = run_gen("--check", self.out, check=False)
            self.assertEqual(r.returncode, 0, r.stderr)
        # Six keys: two lines, four on the first, newest first.
        self.assertEqual(re.findall(r"^sign_key = (.*)$", self.read("a"), re.M),
                         [", ".join(keys[:4]), ", ".join(keys[4:])])
        self.assertEqual(len(re.findall(r"^old_sign_key = ", self.read("b"),
                                        re.M)), 2)
        # Up to msced's 16: ten earlier keys more (as if rotated), then a
        # new center pins all 16, and is a restart for the others.
        more = [base64.b64encode(os.urandom(32)).decode() for _ in range(10)]
        with open(os.path.join(self.out, "b", "b.sign.pub.old"), "a") as f:
            f.write("".join(k + "\n" for k in more))
        keys += more
        path = self.centers("a 1 10.0.0.1:7401\nb 2 10.0.0.2:7401\n"
                            "c 3 10.0.0.3:7401\n")
        r = run_gen(path, self.out)
        self.assertIn("configs changed (restart these centers): a b c\n",
                      r.stdout)
        for n in ("a", "c"):
            self.assertEqual(sections(self.read(n))["[peer b]"]["sign_key"],
                             ", ".join(keys))
        for n in ("a", "b", "c"):
            text = self.read(n)
            self.assertLessEqual(max(len(ln) for ln in text.splitlines()), 199)
            ok, err = parses(os.path.join(self.out, n, n + ".conf"))
            self.assertTrue(ok, "%s with 16 keys: %s" % (n, err))
        self.assertEqual(run_gen("--check", self.out).returncode, 0)
        a_before, pub_before = self.read("a"), self.read("b", ".pub")
        r = run_gen("rotate", path, self.out, "b", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("has had 16 signing keys", r.stderr)
        self.assertIn("msced pins at most 16 a center", r.stderr)
        self.assertEqual(self.read("a"), a_before)
        self.assertEqual(self.read("b", ".pub"), pub_before)
        self.assertFalse(os.path.exists(os.path.join(self.out, "b", "b.new.key")))
        # A change to a list alone, one of its lines: a reload. msced
        # reads the configs.
        for n, key in (("b", "old_sign_key"), ("a", "sign_key")):
            conf = os.path.join(self.out, n, n + ".conf")
            with open(conf) as f:
                text = f.read()
            with open(conf, "w") as f:
                f.write(re.sub(r"\n%s = .*\n" % key, "\n", text, count=1))
            r = run_gen(path, self.out)
            self.assertIn("configs changed (reload these centers, no restart "
                          "needed): %s\n" % n, r.stdout)
            self.assertNotIn("restart these", r.stdout)
            self.assertTrue(parses(conf)[0])
        # Not a setting of the centers file: msce-gen writes it.
        r = run_gen("--set", "old_sign_key=" + keys[1], path, self.out,
                    check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("old_sign_key is not given here", r.stderr)

    def test_five_centers_retired(self):
        """Every retired center's signing keys stay in [cluster] retired
        for good; past three (what a 199-character line holds) the list
        goes on over lines msced adds up: every config still parses and
        --check, which reads the list to leave retired centers out,
        passes."""
        names = ["a", "b", "c", "d", "e", "f", "g"]
        live = "".join("%s %d 10.0.0.%d:7401\n" % (n, i + 1, i + 1)
                       for i, n in enumerate(names))
        path = self.centers(live)
        run_gen(path, self.out)
        run_gen("rotate", path, self.out, "c")  # c leaves two keys
        signs = {n: self.read(n, ".sign.pub").strip() for n in names}
        old_c = self.read("c", ".sign.pub.old").strip()
        want = []
        for i, n in enumerate(names[2:]):
            live = live.replace("%s %d 10.0.0.%d:7401" % (n, i + 3, i + 3),
                                "%s %d retired" % (n, i + 3))
            path = self.centers(live)
            run_gen(path, self.out)
            want += ["%d:%s" % (i + 3, signs[n])]
            if n == "c":
                want += ["3:" + old_c]
            for m in ("a", "b"):
                text = self.read(m)
                self.assertEqual(sections(text)["[cluster]"]["retired"],
                                 ", ".join(want))
                self.assertLessEqual(max(len(ln) for ln in text.splitlines()),
                                     199)
                self.assertNotIn("[peer %s]" % n, text)
                ok, err = parses(os.path.join(self.out, m, m + ".conf"))
                self.assertTrue(ok, "%s after retiring %s: %s" % (m, n, err))
            r = run_gen("--check", self.out, check=False)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("check: %d configs agree" % (6 - i), r.stdout)
            for j, gone in enumerate(names[2:3 + i]):
                self.assertIn("check: %s (id %d) is retired in the others' "
                              "configs" % (gone, j + 3), r.stdout)
        self.assertEqual(len(want), 6)
        self.assertEqual(len(re.findall(r"^retired = ", self.read("a"), re.M)), 2)
        # msced pins 64 retired keys at most: 58 more fit, 59 are refused.
        for n in range(1, 60):
            d = os.path.join(self.out, "old%d" % n)
            os.makedirs(d)
            with open(os.path.join(d, "old%d.sign.pub" % n), "w") as f:
                f.write(base64.b64encode(os.urandom(32)).decode() + "\n")
        more = "".join("old%d %d retired\n" % (n, 100 + n) for n in range(1, 59))
        run_gen(self.centers(live + more), self.out)
        self.assertEqual(len(list_value(sections(self.read("a"))["[cluster]"]
                                        ["retired"])), 64)
        for m in ("a", "b"):
            ok, err = parses(os.path.join(self.out, m, m + ".conf"))
            self.assertTrue(ok, "%s with 64 retired keys: %s" % (m, err))
        a_before = self.read("a")
        r = run_gen(self.centers(live + more + "old59 159 retired\n"), self.out,
                    check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("the retired centers have 65 signing keys in all; msced "
                      "pins at most 64", r.stderr)
        self.assertEqual(self.read("a"), a_before)

    def test_system_paths_and_local_layout(self):
        path = self.centers("a 1 127.0.0.1:7401\nb 2 127.0.0.1:7402\n")
        run_gen("--layout", "local", "--cluster", "test-1", "--set", "fsync=false",
                "--set", "log_level=debug", path, self.out)
        node = sections(self.read("a"))["[node]"]
        a = os.path.join(os.path.abspath(self.out), "a")
        self.assertEqual(node["key"], os.path.join(a, "a.key"))
        self.assertEqual(node["data_dir"], os.path.join(a, "data"))
        self.assertEqual(node["socket"], os.path.join(a, "a.sock"))
        self.assertEqual(node["fsync"], "false")
        self.assertEqual(node["log_level"], "debug")

    def test_mistakes_are_refused(self):
        cases = [
            ("a 1 10.0.0.1:7401\nb 1 10.0.0.2:7401\n", "centers:2: id 1 already used"),
            ("a 1 10.0.0.1:7401\na 2 10.0.0.2:7401\n", "centers:2: center a already"),
            ("a 1 10.0.0.1:7401\nold 2 retired\nb 2 10.0.0.3:7401\n",
             "centers:3: id 2 already used"),
            ("a 1 10.0.0.1\n", "is not host:port"),
            ("a 1 10.0.0.1:99999\n", "is not host:port"),
            ("a 0 10.0.0.1:7401\n", "is not a node id"),
            ("A 1 10.0.0.1:7401\n", "is not a center name"),
            ("a 1 10.0.0.1:7401 colour=blue\n", "\"colour\" is no setting msce-gen writes"),
            ("a 1 10.0.0.1:7401\nclient fd a superuser\n", "role \"superuser\""),
            ("a 1 10.0.0.1:7401\nclient fd b rw\n", "\"b\" is not a live center"),
            ("a 1 10.0.0.1:7401\nclient fd a rw\nclient fd * ro\n", "client fd given twice"),
            ("# nothing\n", "no centers"),
        ]
        for text, want in cases:
            with self.subTest(text=text):
                r = run_gen(self.centers(text), self.out, check=False)
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertIn(want, r.stderr)
        r = run_gen("--cluster", "bad name", self.centers("a 1 10.0.0.1:7401\n"),
                    self.out, check=False)
        self.assertIn("is not a cluster name", r.stderr)


    def test_host_names_resolved_or_refused(self):
        # msced takes IP addresses only: a name is resolved here or refused.
        r = run_gen(self.centers("a 1 10.0.0.1:7401\nb 2 nosuch.invalid:7401\n"),
                    self.out, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r'centers:2: host name "nosuch.invalid" does not '
                         r'resolve .*msced needs IP addresses')
        host = socket.gethostname()
        try:
            ips = sorted({i[4][0] for i in socket.getaddrinfo(host, 7401,
                                                               type=socket.SOCK_STREAM)})
        except socket.gaierror:
            ips = []
        r = run_gen(self.centers("a 1 10.0.0.1:7401\nb 2 %s:7402\n" % host), self.out,
                    check=False)
        if len(ips) == 1:
            self.assertEqual(r.returncode, 0, r.stderr)
            ip = ips[0] if ":" not in ips[0] else "[%s]" % ips[0]
            self.assertIn("centers:2: %s resolved to %s:7402" % (host, ip), r.stdout)
            self.assertEqual(sections(self.read("a"))["[peer b]"]["address"], "%s:7402" % ip)
            self.assertEqual(sections(self.read("b"))["[node]"]["listen"], "%s:7402" % ip)
        else:  # no single address for this machine's name: refused
            self.assertEqual(r.returncode, 1)
            self.assertIn('host name "%s"' % host, r.stderr)

    def test_clients_without_a_listener_are_warned_about(self):
        r = run_gen(self.centers(EIGHT), self.out)
        self.assertIn("centers:11: client frontdesk-1 has a key for shekou, but shekou "
                      "has no client_listen: nothing to connect to", r.stderr)
        self.assertIn("client audit has a key for futian", r.stderr)
        shutil.rmtree(self.out)
        r = run_gen("--set", "client_listen=0.0.0.0:7402", self.centers(EIGHT), self.out)
        self.assertNotIn("warning", r.stderr)

    def test_every_setting_reload_or_restart_and_a_removed_center(self):
        """Every [node] setting msced reads and the retention rules can be
        given (and msce parses what comes out); a rerun says which
        centers a reload serves and which need a restart; --check passes
        over a removed center's config left in OUTDIR."""
        path = self.centers(
            "a 1 10.0.0.1:7401 backup_dir=/var/backups/msce "
            "retention.registration=visa_expiry+5y\n"
            "b 2 10.0.0.2:7401\nc 3 10.0.0.3:7401\n")
        run_gen("--set", "handshake_timeout=7s", "--set",
                "client_max_partial_total=64MiB", path, self.out)
        a = sections(self.read("a"))
        self.assertEqual(a["[node]"]["backup_dir"], "/var/backups/msce")
        self.assertEqual(a["[node]"]["handshake_timeout"], "7s")
        self.assertEqual(a["[node]"]["client_max_partial_total"], "64MiB")
        self.assertEqual(a["[retention]"], {"registration": "visa_expiry+5y"})
        self.assertNotIn("[retention]", self.read("b"))
        # msce reads each config as msced does: a bad line would be named.
        for n in ("a", "b"):
            r = subprocess.run([MSCE, "-c", os.path.join(self.out, n, n + ".conf"),
                                "status", "--timeout", "1"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("node unreachable", r.stderr)
        r = run_gen("--set", "bogus=1", path, self.out, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('"bogus" is no setting msce-gen writes', r.stderr)
        # log_level: a reload; a limit: a restart.
        with open(path, "w") as f:
            f.write("a 1 10.0.0.1:7401 backup_dir=/var/backups/msce "
                    "retention.registration=visa_expiry+5y log_level=debug\n"
                    "b 2 10.0.0.2:7401 max_pending_handshakes=64\n"
                    "c 3 10.0.0.3:7401\n")
        r = run_gen("--set", "handshake_timeout=7s", "--set",
                    "client_max_partial_total=64MiB", path, self.out)
        self.assertIn("configs changed (restart these centers): b\n", r.stdout)
        self.assertIn("configs changed (reload these centers, no restart needed): a\n",
                      r.stdout)
        # c removed: its config stays in OUTDIR; --check leaves it out.
        with open(path) as f:
            text = f.read()
        text = text.replace("c 3 10.0.0.3:7401", "c 3 retired")
        with open(path, "w") as f:
            f.write(text)
        r = run_gen("--set", "handshake_timeout=7s", "--set",
                    "client_max_partial_total=64MiB", path, self.out)
        self.assertIn("a retired center; left as is", r.stdout)
        self.assertTrue(os.path.exists(os.path.join(self.out, "c", "c.conf")))
        r = run_gen("--check", self.out, check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("check: c (id 3) is retired in the others' configs", r.stdout)
        self.assertIn("check: 2 configs agree", r.stdout)

    def test_an_id_is_never_reused(self):
        """An id names the origin of every change its center made: once in
        OUTDIR, it is refused for another center, even after its center
        is retired and dropped from the file; a center keeps its id."""
        path = self.centers("a 1 10.0.0.1:7401\nb 2 10.0.0.2:7401\n"
                            "c 3 10.0.0.3:7401\n")
        run_gen(path, self.out)
        before = self.read("a")
        # c retired, then its line dropped; d takes its id.
        self.centers("a 1 10.0.0.1:7401\nb 2 10.0.0.2:7401\nc 3 retired\n")
        run_gen(path, self.out)
        self.centers("a 1 10.0.0.1:7401\nb 2 10.0.0.2:7401\n"
                     "d 3 10.0.0.4:7401\n")
        r = run_gen(path, self.out, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("id 3 was center c's (%s): ids are never reused"
                      % os.path.join(self.out, "c", "c.conf"), r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.out, "d")))
        # a renumbered.
        self.centers("a 7 10.0.0.1:7401\nb 2 10.0.0.2:7401\nc 3 retired\n")
        r = run_gen(path, self.out, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("center a had id 1", r.stderr)
        self.assertNotEqual(self.read("a"), before.replace("id = 1", "id = 7"))
        # A new id is fine.
        self.centers("a 1 10.0.0.1:7401\nb 2 10.0.0.2:7401\nc 3 retired\n"
                     "d 4 10.0.0.4:7401\n")
        run_gen(path, self.out)
        self.assertIn("id = 4", self.read("d"))

    def test_the_cluster_name_is_kept(self):
        """A rerun (or rotate) without the first run's --cluster is
        refused, configs untouched: it would rename the city in every
        config and cut every link."""
        path = self.centers("a 1 10.0.0.1:7401\nb 2 10.0.0.2:7401\n")
        run_gen("--cluster", "mycity", path, self.out)
        before = self.read("a")
        for argv in ([path, self.out], ["rotate", path, self.out, "a"]):
            r = run_gen(*argv, check=False)
            self.assertEqual(r.returncode, 1)
            self.assertIn("is of cluster mycity, not shenzhen-msce: give "
                          "--cluster mycity", r.stderr)
            self.assertEqual(self.read("a"), before)
        r = run_gen("--cluster", "mycity", path, self.out)
        self.assertIn("configs unchanged", r.stdout)

    def test_every_setting_msced_reads_can_be_given(self):
        """The [node] and [retention] keys msced reads (common/config.c),
        read from its key tables: msce-gen takes each (but id and name,
        which it writes itself), so a setting added to msced and not to
        msce-gen fails here."""
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        with open(os.path.join(repo, "common", "config.c")) as f:
            src = f.read()

        def table(name):
            body = re.search(r"static const struct key_def %s\[\] = \{(.*?)\n\};" % name,
                             src, re.S).group(1)
            return set(re.findall(r'\{"([a-z_]+)",', body))
        # id, name and old_sign_key (from NAME.sign.pub.old) are msce-gen's.
        want = (table("node_keys") - {"id", "name", "old_sign_key"}) | {
            "retention." + k for k in table("retention_keys")}
        self.assertIn("backup_dir", want)
        path = self.centers("a 1 10.0.0.1:7401\n")
        for k in sorted(want):
            r = run_gen("--set", "%s=x" % k, path, self.out, check=False)
            self.assertNotIn("is no setting msce-gen writes", r.stderr, k)
        r = run_gen("--set", "id=7", path, self.out, check=False)
        self.assertIn('"id" is no setting msce-gen writes', r.stderr)
        self.assertIn("old_sign_key", table("node_keys"))

    def test_check_a_deployment(self):
        run_gen("--set", "client_listen=0.0.0.0:7402", self.centers(EIGHT), self.out)
        r = run_gen("--check", self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith(
            "check: 8 configs agree (cluster shenzhen-msce; ids shekou=1, "
            "shenzhen-bay=2, nanshan=3"), r.stdout)

        def edit(name, old, new):
            path = os.path.join(self.out, name, name + ".conf")
            with open(path) as f:
                text = f.read()
            self.assertIn(old, text)
            with open(path, "w") as f:
                f.write(text.replace(old, new, 1))
        edit("futian", "address = 10.0.1.10:7401", "address = 10.0.1.11:7401")
        edit("luohu", "id = 5", "id = 4")
        edit("nanshan", "address = 10.0.2.10:7401", "address = bay.example:7401")
        pub = self.read("baoan", ".pub").strip()
        other = self.read("luohu", ".pub").strip()
        edit("longhua", pub, other)
        r = run_gen("--check", self.out, check=False)
        self.assertEqual(r.returncode, 1)
        for want in ("futian dials shekou at 10.0.1.11:7401, but shekou listens on "
                     "10.0.1.10:7401",
                     "futian and luohu both have id 4",
                     "nanshan: peer shenzhen-bay address bay.example:7401 is not an IP "
                     "address",
                     "longhua pins a public key for baoan that is not baoan.pub",
                     "the centers pin 2 different keys for baoan",
                     "shekou gives luohu id 5, but luohu has id 4"):
            self.assertIn("msce-gen: check: " + want, r.stderr)
        self.assertRegex(r.stderr, r"msce-gen: check: \d+ problems in 8 configs")
        # Configs named one by one work the same; a mistake in one is found.
        one = [os.path.join(self.out, n, n + ".conf") for n in ("futian", "shekou")]
        r = run_gen("--check", *one, check=False)
        self.assertIn("futian dials shekou at 10.0.1.11:7401", r.stderr)


if __name__ == "__main__":
    unittest.main()
