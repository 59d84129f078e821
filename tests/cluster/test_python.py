# SPDX-License-Identifier: Apache-2.0
"""The Python package (client/python, importable as msce) against live
nodes: every operation, typed helpers and enums, exceptions with code and
message, watch as an iterator that survives a node restart, the case rule,
TCP with roles, a Client shared by threads; its ctypes structs against the
C header; the README's desk script; and `pip install` of the checkout into
a venv."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

from cluster import MSCE, ClusterTestCase, free_ports, wait_until

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYSRC = os.environ.get("MSCE_PYTHON_SRC") or os.path.join(SRC, "client", "python")
LIBRARY = os.environ.get("MSCE_LIBRARY") or os.path.join(SRC, "build", "client", "libmsce.so")
BUILD = os.path.dirname(os.path.dirname(LIBRARY))
INCLUDE = os.path.join(BUILD, "include")
SANITIZED = os.environ.get("MSCE_SANITIZED") in ("ON", "1", "TRUE")


def sanitizer_env():
    """A sanitized libmsce needs its runtime loaded first into a Python
    that is not; leaks of the interpreter itself are not ours."""
    if not SANITIZED:
        return {}
    rt = subprocess.run(["cc", "-print-file-name=libasan.so"], capture_output=True,
                        text=True).stdout.strip()
    return {"LD_PRELOAD": rt, "ASAN_OPTIONS": "detect_leaks=0"}


def run_python(code, env=None, python=sys.executable, timeout=120):
    e = dict(os.environ, MSCE_LIBRARY=LIBRARY, PYTHONPATH=PYSRC, **sanitizer_env())
    e.update(env or {})
    return subprocess.run([python, "-c", code], capture_output=True, text=True,
                          env=e, timeout=timeout)


class PythonTest(ClusterTestCase):
    def check(self, code, env=None, **kw):
        r = run_python(textwrap.dedent(code), env=env, **kw)
        if r.returncode != 0:
            self.fail("python exited %d\n%s\n%s" % (r.returncode, r.stdout, r.stderr))
        return r.stdout

    def test_struct_layouts_match_the_header(self):
        # Every ctypes struct against the C compiler's view of msce.h.
        probe = textwrap.dedent("""
            import ctypes
            from msce import _lib
            for name in ("Field WriteResult PutOpts Put Value ScanOpts PeerStatus "
                         "Conflict Cursor Event Registration Case CaseNote EventRec").split():
                cls = getattr(_lib, name)
                print(name, ctypes.sizeof(cls),
                      " ".join("%s=%d" % (f[0], getattr(cls, f[0]).offset) for f in cls._fields_))
        """)
        structs = {"Field": "msce_field", "WriteResult": "msce_write_result",
                   "PutOpts": "msce_put_opts", "Put": "msce_put", "Value": "msce_value",
                   "ScanOpts": "msce_scan_opts", "PeerStatus": "msce_peer_status",
                   "Conflict": "msce_conflict", "Cursor": "msce_cursor", "Event": "msce_event",
                   "Registration": "msce_registration", "Case": "msce_case",
                   "CaseNote": "msce_case_note", "EventRec": "msce_event_rec"}
        py = self.check(probe)
        lines = ['#include <stdio.h>', '#include <stddef.h>', '#include <msce/msce.h>',
                 'int main(void) {']
        for line in py.splitlines():
            name, size, *fields = line.split()
            c = structs[name]
            lines.append('printf("%s %%zu", sizeof(struct %s));' % (name, c))
            for f in fields:
                member = f.split("=")[0]
                lines.append('printf(" %s=%%zu", offsetof(struct %s, %s));'
                             % (member, c, member))
            lines.append('printf("\\n");')
        lines.append("return 0; }")
        d = tempfile.mkdtemp(prefix="msce-layout-")
        self.addCleanup(shutil.rmtree, d, True)
        with open(os.path.join(d, "probe.c"), "w") as f:
            f.write("\n".join(lines))
        subprocess.run(["cc", "-I", INCLUDE, "-o", os.path.join(d, "probe"),
                        os.path.join(d, "probe.c")], check=True)
        c_out = subprocess.run([os.path.join(d, "probe")], capture_output=True,
                               text=True, check=True).stdout
        self.assertEqual(c_out.split("\n"), py.split("\n"))

    def test_limits_match_the_header(self):
        with open(os.path.join(INCLUDE, "msce", "msce_limits.h")) as f:
            header = f.read()
        want = {}
        for name, expr in re.findall(r"#define MSCE_(\w+) (.*?)(?:/\*|$)", header, re.M):
            want[name] = eval(expr.strip().replace("u <<", " <<").replace("u)", ")"))
        out = self.check("""
            import msce
            print(sorted((k, v) for k, v in vars(msce).items()
                         if k.isupper() and isinstance(v, int)))
        """)
        self.assertEqual(dict(eval(out)), want)

    def test_operations(self):
        c = self.make_cluster(1)
        n1 = c.nodes[0]
        out = self.check("""
            import os, msce
            c = msce.Client(os.environ["SOCK"], timeout=10)
            print("center", c.center)
            r = c.put("t", "k1", {"a": "1", "b": b"\\x00\\xff"})
            assert r.seq > 0 and r.sites == 1, r
            rec = c.get("t", "k1")
            assert rec.text() == {"a": "1", "b": "\\x00\\xff".encode("latin1").decode("utf-8", "replace")}
            assert rec["b"].value == b"\\x00\\xff" and rec["a"].hlc == r.hlc
            assert rec.seen_by == [1], rec.seen_by
            assert list(c.get("t", "k1", fields=["a"])) == ["a"]
            # More names than a record can hold: refused before any
            # lookup (each name was compared with each field).
            try:
                c.get("t", "k1", fields=["f%d" % i for i in range(1025)])
                raise SystemExit("a get of 1025 field names was answered")
            except msce.TooBig as e:
                assert "at most 1024" in e.message, e.message
            c.delete("t", "k1")
            try:
                c.get("t", "k1")
                raise SystemExit("found a deleted record")
            except msce.NotFound as e:
                assert (e.code, e.name) == (4, "ENOTFOUND"), e
            res = c.batch([("t", "b%d" % i, {"i": str(i)}) for i in range(250)]
                          + [("registration", "DEU:X1", {"birth_date": "1990-13-45"})])
            assert all(isinstance(x, msce.WriteResult) for x in res[:250])
            assert isinstance(res[250], msce.InvalidArgument), res[250]
            keys = [r.key for r in c.scan("t", prefix="b", limit=7)]
            assert keys == sorted("b%d" % i for i in range(250)), keys[:5]
            page, nxt = c.scan_page("t", prefix="b", limit=10)
            assert len(page) == 10 and nxt == page[-1].key
            st = c.status()
            assert st.node == 1 and len(st.digest) == 64 and st.cursor.items()
            assert c.conflicts() == []
            c.resolve("t", "b1", "i", "one")
            assert str(c.get("t", "b1")["i"]) == "one"
            # Errors carry the code, its name and the rule broken.
            try:
                c.put("registration", "FRA:E1", {"birth_date": "1990-02-30"})
            except msce.InvalidArgument as e:
                print("refused", e.code, e.name, e.message)
            try:
                c.put("t", "k" * 300, {"a": "1"})
            except msce.TooBig as e:
                print("toobig", e.message)
            print("backup", c.backup(os.path.join(os.environ["DIR"], "bk")) > 0)
        """, env={"SOCK": n1.socket, "DIR": c.dir})
        self.assertIn("center unix:%s" % n1.socket, out)
        self.assertRegex(out, r"refused 2 EINVAL registration.birth_date: not an ISO 8601 date")
        self.assertIn("toobig key: 300 bytes, limit 256", out)
        self.assertIn("backup True", out)

    def test_typed_helpers_and_the_case_rule(self):
        c = self.make_cluster(2)
        n1, n2 = c.nodes
        wait_until(lambda: all(p["connected"] for n in (n1, n2)
                               for p in c.status(n)["peers"]), 30, "links up")
        out = self.check("""
            import os, msce
            a = msce.Client(os.environ["S1"])
            b = msce.Client(os.environ["S2"])
            assert [s.value for s in msce.CaseStatus] == [
                "open", "in_progress", "resolved", "closed"]
            assert msce.District.NANSHAN == "nanshan"
            assert len(msce.DocumentType) == 5 and len(msce.EventKind) == 5
            case = msce.Case(person="DEU:NEVER1", category=msce.CaseCategory.LEASE,
                             status=msce.CaseStatus.OPEN, center="n1")
            # A person no center has registered: refused everywhere.
            for cl in (a, b):
                try:
                    cl.case_put("n1-1", case)
                    raise SystemExit("case for an unknown person written")
                except msce.NotFound as e:
                    print("refused:", e.message)
            # Registered at n1: n1 takes the case at once; n2 once the
            # registration has arrived, or before with the override.
            reg = msce.Registration("DEU", "KNOWN1", name="Max Muster",
                                    document_type=msce.DocumentType.PASSPORT,
                                    district=msce.District.FUTIAN, center="n1")
            a.register(reg)
            a.case_put("n1-2", msce.Case(person=reg.key, category=msce.CaseCategory.TRAVEL,
                                         status=msce.CaseStatus.OPEN, center="n1"))
            b.case_put("n2-3", msce.Case(person="DEU:ELSEWHERE1", category="other",
                                         status="open", center="n2"),
                       allow_unknown_person=True)
            # The raw put and the batch follow the same rule.
            try:
                b.put("case", "n2-4", {"person": "DEU:NEVER2", "category": "other",
                                       "status": "open", "center": "n2"})
            except msce.NotFound:
                print("raw put refused")
            res = b.batch([("case", "n2-5", {"person": "DEU:NEVER3", "category": "other",
                                             "status": "open", "center": "n2"}),
                           ("t", "x", {"a": "1"})])
            print("batch", type(res[0]).__name__, type(res[1]).__name__)
            res = b.batch([("case", "n2-6", {"person": "DEU:NEVER3", "category": "other",
                                             "status": "open", "center": "n2"})],
                          allow_unknown_person=True)
            print("batch override", type(res[0]).__name__)
            # A name no collection can have: EINVAL, as for get, not an
            # empty list or a watch that never sees anything.
            for name, call in (("conflicts", lambda: a.conflicts("BAD")),
                               ("watch", lambda: a.watch("BAD").next(timeout=5))):
                try:
                    call()
                    print(name, "of BAD: taken")
                except msce.InvalidArgument:
                    print(name, "of BAD: InvalidArgument")
            # A put refused on its own refuses only itself.
            res = a.batch([("_audit", "forged", {"op": "erase"}), ("t", "y", {"a": "1"})])
            print("batch audit", type(res[0]).__name__, type(res[1]).__name__)
            # Updates that do not write the person are not checked.
            b.case_put("n2-3", msce.Case(status=msce.CaseStatus.IN_PROGRESS))
            nid = a.add_note("n1-2", "Called the embassy.\\nWaiting.", author="li.wei")
            a.add_note("n1-2", "Second")
            notes = a.notes("n1-2")
            print("notes", [n.text for n in notes], notes[0].id == nid, notes[0].center)
            a.event_put("2026-12-05", "qa-visa", msce.EventRecord(
                title="Visa Q&A", kind=msce.EventKind.QA, center="n1",
                starts_at="2026-12-05T01:00:00Z", capacity=40))
            print("event", a.get("event", "2026-12-05/qa-visa")["capacity"])
            try:
                a.register(msce.Registration("FRA", "E1", name="x",
                                             document_type="passport",
                                             birth_date="1990-13-45"))
            except msce.InvalidArgument as e:
                print("bad date:", e.message)
        """, env={"S1": n1.socket, "S2": n2.socket})
        self.assertEqual(out.count("refused: case.person: no registration \"DEU:NEVER1\""), 2)
        self.assertIn("allow_unknown_person", out)
        self.assertIn("raw put refused", out)
        self.assertIn("batch NotFound WriteResult", out)
        self.assertIn("batch override WriteResult", out)
        self.assertIn("batch audit PermissionDenied WriteResult", out)
        self.assertIn("conflicts of BAD: InvalidArgument", out)
        self.assertIn("watch of BAD: InvalidArgument", out)
        self.assertIn("notes ['Called the embassy.\\nWaiting.', 'Second'] True n1", out)
        self.assertIn("event 40", out)
        self.assertIn("bad date: registration.birth_date", out)
        c.wait_converged(timeout=60)
        self.assertEqual(c.values(n1, "case", "n2-3")["status"], "in_progress")

    def test_batch_registers_then_opens_the_case(self):
        # libmsce's batch: a case sees the registrations written before it
        # in the same batch, not those after it.
        c = self.make_cluster(1)
        out = self.check("""
            import os, msce
            a = msce.Client(os.environ["S1"])
            def reg(doc):
                return ("registration", "FRA:" + doc,
                        {"name": "A B", "nationality": "FRA",
                         "document_type": "passport", "document_number": doc})
            def case(key, doc):
                return ("case", key, {"person": "FRA:" + doc, "category": "travel",
                                      "status": "open", "center": "n1"})
            res = a.batch([reg("B1"), case("k1", "B1"), case("k2", "B2"), reg("B2")])
            print("batch", [type(x).__name__ for x in res])
            print("why", res[2].message)
            print("k1", a.get("case", "k1")["person"])
        """, env={"S1": c.nodes[0].socket})
        self.assertIn("batch ['WriteResult', 'WriteResult', 'NotFound', 'WriteResult']", out)
        # The refusal says why, in the node's words (msce_batch_errmsg).
        self.assertIn('why case.person: no registration "FRA:B2" has reached this '
                      'center', out)
        self.assertIn("k1 FRA:B1", out)

    def test_watch_iterator_survives_a_restart(self):
        c = self.make_cluster(1)
        n1 = c.nodes[0]
        code = """
            import os, sys, msce
            c = msce.Client(os.environ["SOCK"], timeout=20)
            w = c.watch("w")                    # from now
            for i in range(3):
                c.put("w", "a%d" % i, {"i": str(i)})
            got = [w.next(timeout=10).key for _ in range(3)]
            print("before", got, flush=True)
            saved = str(w.cursor)
            sys.stdin.readline()                # the node restarts here
            for i in range(3):                  # reconnects by itself
                c.put("w", "b%d" % i, {"i": str(i)})
            got = [w.next(timeout=20).key for _ in range(3)]
            print("after", got)
            assert w.next(timeout=0.5) is None  # nothing twice
            # From a saved cursor: what came after it, once.
            with c.watch("w", start=saved) as w2:
                print("resumed", [w2.next(timeout=10).key for _ in range(3)])
                assert w2.next(timeout=0.5) is None
            with c.watch("w", start="start") as w3:
                print("all", sorted(w3.next(timeout=10).key for _ in range(6)))
        """
        e = dict(os.environ, MSCE_LIBRARY=LIBRARY, PYTHONPATH=PYSRC, SOCK=n1.socket,
                 **sanitizer_env())
        p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=e,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.addCleanup(p.kill)
        line = p.stdout.readline()
        self.assertEqual(line.strip(), "before ['a0', 'a1', 'a2']", p.stderr.read()
                         if not line else line)
        c.restart(n1)
        p.stdin.write("go\n")
        p.stdin.flush()
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("after ['b0', 'b1', 'b2']", out)
        self.assertIn("resumed ['b0', 'b1', 'b2']", out)
        self.assertIn("all ['a0', 'a1', 'a2', 'b0', 'b1', 'b2']", out)

    def test_min_sites_put_answered_when_the_node_stops(self):
        """A put waiting for min_sites when its node stops is answered
        (Timeout: committed here, held by 1 of 2), not left to a closed
        connection that cannot tell committed from lost."""
        c = self.make_cluster(2)
        n1, n2 = c.nodes
        c.wait_connected(n1, [2])
        c.stop(n2)
        code = """
            import os, msce
            c = msce.Client(os.environ["SOCK"], timeout=60)
            print("ready", flush=True)
            try:
                c.put("t", "k", {"v": "1"}, min_sites=2, timeout=60)
                print("answered: ok")
            except msce.Timeout as e:
                print("answered: Timeout", e.message)
            except msce.MsceError as e:
                print("answered:", type(e).__name__, e.message)
        """
        e = dict(os.environ, MSCE_LIBRARY=LIBRARY, PYTHONPATH=PYSRC, SOCK=n1.socket,
                 **sanitizer_env())
        p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=e,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(p.kill)
        self.assertEqual(p.stdout.readline().strip(), "ready")
        time.sleep(1)  # the put is waiting
        c.stop(n1)
        out, err = p.communicate(timeout=60)
        self.assertIn("answered: Timeout committed here, but only 1 of the 2", out, err)

    def test_client_shared_by_threads(self):
        """A Client used by several threads at once: their calls take turns
        on its one connection (libmsce's client is not thread-safe: without
        the lock the interpreter crashed, or answers went to the wrong
        thread and the others timed out)."""
        c = self.make_cluster(1)
        out = self.check("""
            import os, threading, msce
            c = msce.Client(os.environ["SOCK"], timeout=5)
            c.batch([("s", "p%03d" % i, {"v": "x"}) for i in range(20)])
            errs = []
            def worker(i):
                try:
                    for j in range(100):
                        c.put("t", "t%d-%d" % (i, j), {"v": str(j)})
                        assert str(c.get("t", "t%d-%d" % (i, j))["v"]) == str(j)
                        assert len(c.scan_page("s", limit=5)[0]) == 5
                except Exception as e:
                    errs.append(repr(e))
            ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            print("errors", errs[:3])
        """, env={"SOCK": c.nodes[0].socket})
        self.assertIn("errors []", out)

    def test_tcp_and_roles(self):
        c = self.make_cluster(1, start=False)
        n1 = c.nodes[0]
        port = free_ports(1)[0]
        keys = {name: c.keygen(os.path.join(c.dir, name)) for name in ("desk-ro", "desk-rw")}
        c.write_config(n1, client_listen="127.0.0.1:%d" % port)
        with open(n1.config, "a") as f:
            f.write("\n[client desk-ro]\npublic_key = %s\nrole = ro\n" % keys["desk-ro"])
            f.write("\n[client desk-rw]\npublic_key = %s\nrole = rw\n" % keys["desk-rw"])
        c.start(n1)
        out = self.check("""
            import os, msce
            def tcp(name):
                return msce.Client(("127.0.0.1:" + os.environ["PORT"], os.environ["PUB"]),
                                   key_file=os.path.join(os.environ["DIR"], name + ".key"),
                                   cluster=os.environ["CLUSTER"])
            rw, ro = tcp("desk-rw"), tcp("desk-ro")
            rw.put("t", "k", {"v": "1"})
            print("ro reads", ro.get("t", "k")["v"])
            try:
                ro.put("t", "k", {"v": "2"})
            except msce.PermissionDenied as e:
                print("ro refused:", e.message)
            print("center", rw.center)
            st = ro.status()
            print("who", st.client, st.role, rw.status().role)
            # Personal records: ro and rw name a purpose to read them.
            rw.register(msce.Registration("FRA", "GL1012345601", name="Ann Lee",
                                          document_type=msce.DocumentType.PASSPORT))
            try:
                ro.get("registration", "FRA:GL1012345601")
            except msce.InvalidArgument as e:
                print("no purpose:", e.message)
            ro.set_purpose("service")
            print("purpose", ro.purpose, ro.get("registration", "FRA:GL1012345601")["name"])
            try:
                ro.set_purpose("curiosity")
            except msce.InvalidArgument as e:
                print("bad purpose:", e.message)
            v = msce.Client(("127.0.0.1:" + os.environ["PORT"], os.environ["PUB"]),
                            key_file=os.path.join(os.environ["DIR"], "desk-rw.key"),
                            cluster=os.environ["CLUSTER"], purpose="verification")
            print("verified", v.get("registration", "FRA:GL1012345601")["name"])
            print("purposes", len(msce.PURPOSES))
        """, env={"PORT": str(port), "PUB": n1.pub, "DIR": c.dir, "CLUSTER": c.name})
        self.assertIn("ro reads 1", out)
        self.assertIn("ro refused: client \"desk-ro\" has role ro", out)
        self.assertIn("center tcp:127.0.0.1:%d" % port, out)
        self.assertIn("who desk-ro ro rw", out)
        self.assertIn("no purpose: a purpose is required", out)
        self.assertIn("purpose service Ann Lee", out)
        self.assertIn("bad purpose:", out)
        self.assertIn("verified Ann Lee", out)
        self.assertIn("purposes 6", out)
        # The reads are in the audit log with who and why.
        _, log, _ = c.cli(n1, "audit", "--json", "--reveal")
        seen = {(e["client"], e["op"], e["purpose"]) for e in map(json.loads, log.splitlines())}
        self.assertIn(("desk-ro", "get", "service"), seen)
        self.assertIn(("desk-rw", "get", "verification"), seen)
        self.assertIn(("desk-rw", "put", "unspecified"), seen)

    def test_readme_desk_script(self):
        # The script shown in README.md, run as it is against a node.
        with open(os.path.join(SRC, "README.md")) as f:
            readme = f.read()
        m = re.search(r"```python\n(# desk\.py.*?)```", readme, re.S)
        self.assertTrue(m, "README.md has no ```python block starting # desk.py")
        c = self.make_cluster(1)
        out = self.check(m.group(1), env={"MSCE_SOCKET": c.nodes[0].socket})
        self.assertIn("registered FRA:E4242", out)
        self.assertRegex(out, r"\d{8}T\d{6}\.\d{3}Z-shekou-[0-9a-f]{16} li\.wei: "
                         r"Called the landlord")
        self.assertIn("refused: case.person: no registration \"DEU:C01X00T47\"", out)
        self.assertIn("changed shekou-2026-0042 status=in_progress", out)

    def test_pip_install_from_the_checkout(self):
        # pip install of client/python into a venv, with nothing fetched:
        # the build needs setuptools and wheel (Debian's python3-setuptools,
        # python3-wheel); whichever Python here has them is used.
        py = None
        for cand in (sys.executable, "/usr/bin/python3"):
            if cand and os.path.exists(cand) and subprocess.run(
                    [cand, "-c", "import setuptools, wheel, venv, ensurepip"],
                    capture_output=True).returncode == 0:
                py = cand
                break
        self.assertTrue(py, "no Python with setuptools, wheel and venv: "
                        "deploy/install-deps installs them")
        d = tempfile.mkdtemp(prefix="msce-venv-")
        self.addCleanup(shutil.rmtree, d, True)
        venv = os.path.join(d, "venv")
        subprocess.run([py, "-m", "venv", "--system-site-packages", venv], check=True,
                       capture_output=True)
        vpy = os.path.join(venv, "bin", "python")
        # A copy, so that the build leaves nothing in the checkout.
        src = os.path.join(d, "src")
        shutil.copytree(PYSRC, src, ignore=shutil.ignore_patterns("__pycache__", "build",
                                                                   "*.egg-info"))
        r = subprocess.run([vpy, "-m", "pip", "install", "--no-build-isolation",
                            "--no-index", "--no-deps", src],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        c = self.make_cluster(1)
        e = dict(os.environ, MSCE_LIBRARY=LIBRARY, SOCK=c.nodes[0].socket, **sanitizer_env())
        e.pop("PYTHONPATH", None)
        r = subprocess.run([vpy, "-c", "import os, msce; print(msce.__file__); "
                            "c = msce.Client(os.environ['SOCK']); "
                            "print(c.status().name)"],
                           capture_output=True, text=True, env=e, cwd=d, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(venv, r.stdout)
        self.assertIn("n1", r.stdout)


if __name__ == "__main__":
    unittest.main()
