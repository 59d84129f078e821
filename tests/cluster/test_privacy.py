# SPDX-License-Identifier: Apache-2.0
"""Personal data (issue 15) on live clusters: every read and write of a
registration, case or case note leaves an audit entry, replicated and
identical on every center; reads need a purpose; _audit is append-only and
read by admins only; erasure reaches every center and leaves an entry
without values; retention preview and apply; person export; masked output
with --reveal for admins only."""

import json
import os
import shutil
import subprocess
import unittest

from cluster import MSCE, ClusterTestCase, free_ports, wait_until

PERSON = "FRA:GL1012345601"
PERSON_FIELDS = {"name": "Ann Lee", "nationality": "FRA", "document_type": "passport",
                 "document_number": "GL1012345601", "phone": "+8613800000001",
                 "address": "12 Sea World Road", "birth_date": "1990-05-17"}
# Values that must never appear in the audit log.
SECRETS = ["Ann Lee", "13800000001", "Sea World", "1990-05-17", "Called the landlord"]
WHO = ("op", "client", "role", "center", "purpose")


def reg_args(key, **fields):
    nat, doc = key.split(":")
    f = {"name": "Someone", "nationality": nat, "document_type": "passport",
         "document_number": doc}
    f.update(fields)
    return ["put", "registration", key] + ["%s=%s" % kv for kv in f.items()]


class PrivacyTest(ClusterTestCase):
    def cluster(self, n, clients=None, retention=None, **kw):
        """n nodes; node 1 also listens for TCP clients {name: role}; every
        node gets the [retention] lines given."""
        c = self.make_cluster(n, start=False, **kw)
        n1 = c.nodes[0]
        self.port = free_ports(1)[0]
        self.keys = {}
        for name in clients or {}:
            c.keygen(os.path.join(c.dir, name))
        for node in c.nodes:
            over = {"client_listen": "127.0.0.1:%d" % self.port} if node is n1 else {}
            c.write_config(node, **over)
            with open(node.config, "a") as f:
                for name, role in (clients or {}).items():
                    with open(os.path.join(c.dir, name + ".pub")) as p:
                        pub = p.read().strip()
                    f.write("\n[client %s]\npublic_key = %s\nrole = %s\n" % (name, pub, role))
                if retention:
                    f.write("\n[retention]\n" + "".join("%s = %s\n" % kv
                                                          for kv in retention.items()))
        c.start_all()
        c.wait_converged(timeout=30)
        return c

    def tcp(self, c, name, *args):
        """The CLI over TCP as client `name` of node 1: (rc, out, err)."""
        r = subprocess.run(
            [MSCE, "--node", "127.0.0.1:%d" % self.port, "--key",
             os.path.join(c.dir, name + ".key"), "--node-key", c.nodes[0].pub,
             "--cluster", c.name] + [str(a) for a in args],
            capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout, r.stderr

    def tcp_ok(self, c, name, *args):
        rc, out, err = self.tcp(c, name, *args)
        self.assertEqual(rc, 0, "%s %s: %s" % (name, args, err))
        return out

    def audit(self, c, node, *args):
        """`msce audit --json --reveal` as a list of entries."""
        _, out, _ = c.cli(node, "audit", "--json", "--reveal", *args)
        return [json.loads(l) for l in out.splitlines()]

    def audit_dump(self, c, node):
        """The raw _audit records, with every version: what must be equal
        on every center."""
        _, out, _ = c.cli(node, "scan", "_audit", "--json", "--reveal", "--limit", "10000")
        return out

    def who(self, e):
        return tuple(e.get(k) for k in WHO) + (tuple(e["records"]),)

    # ------------------------------------------------------------------

    def test_every_personal_access_audited_and_replicated(self):
        c = self.cluster(3, {"desk-ro": "ro", "desk-rw": "rw"})
        n1, n2, n3 = c.nodes
        rw = lambda *a: self.tcp_ok(c, "desk-rw", *a)
        ro = lambda *a: self.tcp_ok(c, "desk-ro", *a)
        rw(*reg_args(PERSON, **{k: v for k, v in PERSON_FIELDS.items()
                                if k not in ("nationality", "document_number")}),
           "--purpose", "service")
        rw("put", "case", "n1-c1", "person=" + PERSON, "category=lease", "status=open",
           "center=n1")  # no purpose: recorded as unspecified
        note = rw("note", "add", "n1-c1", "Called the landlord", "--purpose", "case-work").strip()
        ro("get", "registration", PERSON, "--purpose", "verification")
        ro("scan", "case", "--purpose", "case-work")
        rw("del", "case_note", "n1-c1/" + note, "--purpose", "case-work")
        rc, _, err = self.tcp(c, "desk-ro", "get", "t", "nothing")
        self.assertEqual(rc, 1, err)  # not found; not personal: no purpose, no entry
        self.assertIn("not found", err)
        rc, _, err = self.tcp(c, "desk-rw", "put", "registration", "FRA:ZZ1", "birth_date=1990-13-01",
                              "--purpose", "service")
        self.assertEqual(rc, 1, err)  # refused: nothing written, nothing recorded
        c.wait_converged(timeout=60)
        c.cli(n2, "get", "case", "n1-c1")  # an admin on the unix socket of n2
        c.wait_converged(timeout=60)

        entries = self.audit(c, n3)
        expected = [
            ("put", "desk-rw", "rw", "n1", "service", ("registration/" + PERSON,)),
            ("put", "desk-rw", "rw", "n1", "unspecified", ("case/n1-c1",)),
            ("put", "desk-rw", "rw", "n1", "case-work", ("case_note/n1-c1/" + note,)),
            ("get", "desk-ro", "ro", "n1", "verification", ("registration/" + PERSON,)),
            ("scan", "desk-ro", "ro", "n1", "case-work", ("case/n1-c1",)),
            ("delete", "desk-rw", "rw", "n1", "case-work", ("case_note/n1-c1/" + note,)),
            ("get", "local", "admin", "n2", "admin", ("case/n1-c1",)),
        ]
        # Note ids come from the CLI's clock; everything else is in order.
        self.assertEqual([self.who(e) for e in entries], expected)
        keys = [e["key"] for e in entries]
        self.assertEqual(keys, sorted(keys))
        self.assertEqual(len(set(keys)), len(keys))
        # Identical on every center, versions and all.
        dumps = {x.name: self.audit_dump(c, x) for x in c.nodes}
        self.assertEqual(len(set(dumps.values())), 1, dumps)
        for secret in SECRETS:
            self.assertNotIn(secret, dumps["n1"])
        # Filters.
        self.assertEqual([self.who(e) for e in self.audit(c, n2, "--client", "desk-ro")],
                         expected[3:5])
        self.assertEqual([self.who(e) for e in
                          self.audit(c, n1, "--record", "registration/" + PERSON)],
                         [expected[0], expected[3]])
        self.assertEqual(self.audit(c, n1, "--since", "2999-01-01"), [])
        # A watch delivery is a read too: audited before it is sent.
        out = rw("watch", "registration", "--from-start", "--count", "1", "--purpose", "service")
        self.assertEqual(json.loads(out)["key"], "FRA:GL10****01")
        wait_until(lambda: any(e["op"] == "watch" for e in self.audit(c, n1, "--client", "desk-rw")),
                   20, "the watch's audit entry")
        e = [e for e in self.audit(c, n1) if e["op"] == "watch"][0]
        self.assertEqual(self.who(e)[:5], ("watch", "desk-rw", "rw", "n1", "service"))
        self.assertIn("registration/" + PERSON, e["records"])

    def test_purpose_required_and_audit_log_protected(self):
        c = self.cluster(1, {"desk-ro": "ro", "desk-rw": "rw"})
        n1 = c.nodes[0]
        c.cli(n1, *reg_args(PERSON))
        for who, args in (("desk-ro", ["get", "registration", PERSON]),
                          ("desk-rw", ["scan", "case"]),
                          ("desk-ro", ["scan", "case_note"]),
                          ("desk-rw", ["watch", "registration", "--from-start", "--count", "1"]),
                          ("desk-ro", ["conflicts"])):
            rc, out, err = self.tcp(c, who, *args)
            self.assertEqual(rc, 1, (who, args, out, err))
            self.assertIn("a purpose is required", err)
            self.assertIn("service, case-work, verification, legal-request, "
                          "subject-access, maintenance", err)
        # With a purpose it is served; a purpose off the list never leaves.
        out = self.tcp_ok(c, "desk-ro", "get", "registration", PERSON, "--purpose", "service")
        self.assertIn("name = Someone", out)
        rc, _, err = self.tcp(c, "desk-ro", "get", "registration", PERSON, "--purpose", "curiosity")
        self.assertEqual(rc, 2)
        self.assertIn("is not one of: service, case-work", err)
        rc, _, err = self.tcp(c, "desk-ro", "get", "t", "nothing-needed")
        self.assertEqual(rc, 1)  # not found, but no purpose needed
        self.assertIn("not found", err)

        before = self.audit_dump(c, n1)
        key = self.audit(c, n1)[0]["key"]
        # Only admins read _audit.
        for who in ("desk-ro", "desk-rw"):
            for args in (["scan", "_audit"], ["get", "_audit", key],
                         ["watch", "_audit", "--from-start", "--count", "1"]):
                rc, _, err = self.tcp(c, who, *args, "--purpose", "maintenance")
                self.assertEqual(rc, 1, (who, args, err))
                self.assertIn("only admin clients may", err)
        # Nobody writes, deletes or resolves it, admins included.
        rc, _, err = self.tcp(c, "desk-rw", "put", "_audit", key, "op=nothing")
        self.assertEqual(rc, 1)
        self.assertIn("append-only", err)
        for args in (["put", "_audit", key, "op=nothing"], ["del", "_audit", key],
                     ["resolve", "_audit", key, "op", "nothing"],
                     ["put", "_audit", "new-entry", "op=forged"]):
            rc, _, err = c.cli(n1, *args, check=False)
            self.assertEqual(rc, 1, (args, err))
            self.assertIn("append-only", err)
        # A watch of every collection by a desk never shows _audit: the
        # first two changes it gets are the registration and t/x, though
        # audit entries were written between them.
        c.cli(n1, "put", "t", "x", "v=1")
        out = self.tcp_ok(c, "desk-rw", "watch", "--from-start", "--count", "2",
                          "--purpose", "service")
        self.assertEqual([json.loads(l)["collection"] for l in out.splitlines()],
                         ["registration", "t"])
        after = self.audit_dump(c, n1)
        self.assertTrue(after.startswith(before.rstrip("\n")), "entries changed")

    def test_erase_reaches_every_center(self):
        c = self.cluster(3, {"desk-rw": "rw"})
        n1, n2, n3 = c.nodes
        c.cli(n1, *reg_args(PERSON, **{k: v for k, v in PERSON_FIELDS.items()
                                       if k not in ("nationality", "document_number")}))
        c.cli(n2, *reg_args("DEU:KEEP0001", name="Kept Person"))
        c.cli(n1, "put", "case", "n1-c1", "person=" + PERSON, "category=lease",
              "status=open", "center=n1")
        c.cli(n2, "put", "case", "n2-c2", "person=" + PERSON, "category=travel",
              "status=closed", "center=n2")
        c.cli(n2, "put", "case", "n2-keep", "person=DEU:KEEP0001", "category=lease",
              "status=open", "center=n2")
        notes = [c.cli(x, "note", "add", k, "Called the landlord")[1].strip()
                 for x, k in ((n1, "n1-c1"), (n2, "n1-c1"), (n2, "n2-c2"), (n3, "n2-keep"))]
        c.wait_converged(timeout=60)

        rc, _, err = self.tcp(c, "desk-rw", "erase", "registration", PERSON)
        self.assertEqual(rc, 1)
        self.assertIn("role rw", err)
        _, out, _ = c.cli(n3, "erase", "registration", PERSON, "--json", "--reveal")
        erased = json.loads(out)["erased"]
        gone = (["case_note/n1-c1/" + notes[0], "case_note/n1-c1/" + notes[1],
                 "case_note/n2-c2/" + notes[2], "case/n1-c1", "case/n2-c2",
                 "registration/" + PERSON])
        self.assertEqual(sorted(erased), sorted(gone))
        self.assertEqual(erased[-1], "registration/" + PERSON)  # last: what the rest hangs on
        c.wait_converged(timeout=60)
        for x in c.nodes:
            for rec in gone:
                coll, key = rec.split("/", 1)
                self.assertIsNone(c.get(x, coll, key), (x.name, rec))
            self.assertEqual(c.values(x, "registration", "DEU:KEEP0001")["name"], "Kept Person")
            self.assertEqual(c.values(x, "case", "n2-keep")["person"], "DEU:KEEP0001")
            self.assertIsNotNone(c.get(x, "case_note", "n2-keep/" + notes[3]))
            # The erasure entry: who, the subject, what went; no value.
            e = [e for e in self.audit(c, x, "--record", "registration/" + PERSON)
                 if e["op"] == "erase"]
            self.assertEqual(len(e), 1, x.name)
            self.assertEqual((e[0]["client"], e[0]["role"], e[0]["center"], e[0]["purpose"],
                              e[0]["subject"]),
                             ("local", "admin", "n3", "admin", "registration/" + PERSON))
            self.assertEqual(e[0]["records"], erased)
            dump = self.audit_dump(c, x)
            for secret in SECRETS:
                self.assertNotIn(secret, dump, x.name)
        c.wait_converged(timeout=60)  # the gets above are audited too
        dumps = {self.audit_dump(c, x) for x in c.nodes}
        self.assertEqual(len(dumps), 1)
        # Logs carry no personal data: the erasure is logged without its key.
        for x in c.nodes:
            self.assertNotIn("GL1012345601", x.log_text(), x.name)
        # No byte of the person's values in any center's data file (values
        # are sealed under per-record keys, and the erased records' keys
        # are gone; record keys themselves are not sealed: PROTOCOL.md).
        for x in c.nodes:
            with open(os.path.join(x.data_dir, "data.mdb"), "rb") as f:
                data = f.read()
            for secret in ("Ann Lee", "+8613800000001", "12 Sea World Road",
                           "1990-05-17"):
                self.assertNotIn(secret.encode(), data, x.name)
        # Nothing left: a second erase says so.
        rc, _, err = c.cli(n1, "erase", "registration", PERSON, check=False)
        self.assertEqual(rc, 1)
        self.assertIn("nothing to erase", err)

    def test_erase_without_master_key_redacts_the_log(self):
        """Without [node] master_key there is no data key to destroy: a
        watch replaying the log from before an erasure still gets the
        erased puts redacted, on the center that erased and on the one
        that applied the erasure (docs/PROTOCOL.md, "Erasure")."""
        c = self.cluster(2, master=False)
        n1, n2 = c.nodes
        c.cli(n1, *reg_args(PERSON, name="Ann Lee", phone="+8613800000001"))
        c.cli(n2, "put", "registration", PERSON, "address=12 Sea World Road")
        c.cli(n2, *reg_args("DEU:KEEP0001", name="Kept Person"))
        c.wait_converged(timeout=60)
        c.cli(n1, "erase", "registration", PERSON)
        c.wait_converged(timeout=60)
        for x in c.nodes:
            r = subprocess.run([MSCE, "-c", x.config, "watch", "registration",
                                "--from-start", "--count", "4", "--reveal"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            lines = [json.loads(l) for l in r.stdout.splitlines()]
            self.assertEqual(len(lines), 4, r.stdout)
            for secret in ("Ann Lee", "13800000001", "Sea World"):
                self.assertNotIn(secret, r.stdout, x.name)
            # The puts come redacted (Change.redacted; the CLI shows no
            # fields), the erasure as a delete; origin by origin.
            person = sorted((e["delete"], e["center"], e["seq"], e["fields"])
                            for e in lines if e["key"] == PERSON)
            self.assertEqual([(d, f) for d, _, _, f in person],
                             [(False, {}), (False, {}), (True, {})], r.stdout)
            kept = [e for e in lines if e["key"] == "DEU:KEEP0001"]
            self.assertIn("Kept Person", json.dumps(kept), r.stdout)

    def test_restore_after_erasure(self):
        """A center restored from a backup taken before an erasure shows
        nobody the person while it catches up (its personal reads cannot be
        audited), and catching up from a center that saw the erasure
        removes them (docs/PROTOCOL.md, "A restore after an erasure")."""
        c = self.cluster(2)
        n1, n2 = c.nodes
        c.cli(n1, *reg_args(PERSON, name="Ann Lee"))
        c.cli(n1, "put", "case", "n1-c1", "person=" + PERSON, "category=lease",
              "status=open", "center=n1")
        c.put(n1, "t", "plain", {"v": "1"})
        c.wait_converged(timeout=60)
        backup = os.path.join(c.dir, "backup-n2")
        c.cli(n2, "backup", backup)
        c.cli(n1, "erase", "registration", PERSON)
        c.wait_converged(timeout=60)
        self.assertIsNone(c.get(n2, "registration", PERSON))
        c.stop(n1)
        c.stop(n2)
        shutil.rmtree(n2.data_dir)
        shutil.copytree(backup, n2.data_dir)
        c.start(n2)
        # Alone, it has not caught up: no writer, so no audit entry, so no
        # personal read; other collections stay readable.
        for coll, key in (("registration", PERSON), ("case", "n1-c1")):
            r = subprocess.run([MSCE, "-c", n2.config, "get", coll, key, "--reveal"],
                               capture_output=True, text=True, timeout=60)
            self.assertNotEqual(r.returncode, 0, r.stdout)
            self.assertIn("audit entry", r.stderr)
            self.assertIn("no writer yet", r.stderr)
            self.assertNotIn("Ann Lee", r.stdout)
        self.assertEqual(c.values(n2, "t", "plain"), {"v": "1"})
        c.start(n1)
        c.wait_converged(timeout=60)
        for x in c.nodes:
            self.assertIsNone(c.get(x, "registration", PERSON), x.name)
            self.assertIsNone(c.get(x, "case", "n1-c1"), x.name)

    def test_retention_preview_and_apply(self):
        c = self.cluster(2, retention={"registration": "visa_expiry + 5y",
                                       "case": "closed+0d"})
        n1, n2 = c.nodes
        c.cli(n1, *reg_args("FRA:OLD00001", visa_expiry="2015-01-01"))
        c.cli(n1, *reg_args("FRA:NEW00001", visa_expiry="2099-01-01"))
        c.cli(n2, *reg_args("FRA:NOVISA01"))
        c.cli(n1, "put", "case", "k-old-open", "person=FRA:OLD00001", "category=lease",
              "status=open", "center=n1")
        c.cli(n2, "put", "case", "k-new-closed", "person=FRA:NEW00001", "category=lease",
              "status=closed", "center=n2")
        c.cli(n2, "put", "case", "k-new-open", "person=FRA:NEW00001", "category=lease",
              "status=open", "center=n2")
        note = c.cli(n1, "note", "add", "k-old-open", "first visit")[1].strip()
        c.wait_converged(timeout=60)

        _, out, _ = c.cli(n2, "retention", "preview", "--json", "--reveal")
        pv = json.loads(out)
        rules = {r["collection"]: r for r in pv["rules"]}
        self.assertEqual(rules["registration"]["rule"], "visa_expiry+5y")
        self.assertEqual(rules["registration"]["keys"], ["FRA:OLD00001"])
        self.assertEqual(rules["case"]["keys"], ["k-new-closed"])
        self.assertEqual((pv["applied"], pv["erased"]), (False, []))
        self.assertIsNotNone(c.get(n2, "registration", "FRA:OLD00001"))  # preview only
        _, out, _ = c.cli(n2, "retention", "preview")
        self.assertIn("registration: visa_expiry+5y, cutoff ", out)
        self.assertIn("registration/FRA:OLD0****01", out)  # masked

        _, out, _ = c.cli(n2, "retention", "apply", "--json", "--reveal")
        ap = json.loads(out)
        self.assertTrue(ap["applied"])
        self.assertEqual(sorted(ap["erased"]),
                         sorted(["registration/FRA:OLD00001", "case/k-old-open",
                                 "case_note/k-old-open/" + note, "case/k-new-closed"]))
        c.wait_converged(timeout=60)
        for x in c.nodes:
            for coll, key in (("registration", "FRA:OLD00001"), ("case", "k-old-open"),
                              ("case", "k-new-closed")):
                self.assertIsNone(c.get(x, coll, key), (x.name, key))
            for coll, key in (("registration", "FRA:NEW00001"), ("registration", "FRA:NOVISA01"),
                              ("case", "k-new-open")):
                self.assertIsNotNone(c.get(x, coll, key), (x.name, key))
            rules = {e["subject"]: e["rule"] for e in self.audit(c, x) if e["op"] == "erase"}
            self.assertEqual(rules, {"registration/FRA:OLD00001": "visa_expiry+5y",
                                     "case/k-new-closed": "closed+0d"})
        _, out, _ = c.cli(n1, "retention", "preview", "--json")
        self.assertEqual([r["keys"] for r in json.loads(out)["rules"]], [[], []])

    def test_audit_masks_many_short_keys(self):
        """An erasure's audit entry lists its records; masked, a key with an
        8-character document number is 2 bytes longer than the key
        (AB00****00): `msce audit` wrote past its buffer and aborted."""
        c = self.cluster(1, retention={"registration": "visa_expiry + 5y"})
        n1 = c.nodes[0]
        path = os.path.join(c.dir, "old.jsonl")
        with open(path, "w") as f:
            for i in range(300):
                f.write(json.dumps({"collection": "registration", "key": "FRA:AB%06d" % i,
                                    "fields": {"name": "Someone", "nationality": "FRA",
                                               "document_type": "passport",
                                               "document_number": "AB%06d" % i,
                                               "visa_expiry": "2015-01-01"}}) + "\n")
        c.cli(n1, "import", path)
        c.cli(n1, "retention", "apply")
        rc, out, err = c.cli(n1, "audit", check=False)
        self.assertEqual(rc, 0, err)
        self.assertIn("registration/FRA:AB00****00", out)
        self.assertNotIn("AB000000", out)

    def test_person_export(self):
        c = self.cluster(1, {"desk-ro": "ro", "desk-rw": "rw"})
        n1 = c.nodes[0]
        c.cli(n1, *reg_args(PERSON, **{k: v for k, v in PERSON_FIELDS.items()
                                       if k not in ("nationality", "document_number")}))
        c.cli(n1, *reg_args("DEU:OTHER001"))
        c.cli(n1, "put", "case", "c1", "person=" + PERSON, "category=lease", "status=open",
              "center=n1")
        c.cli(n1, "put", "case", "c1/x", "person=" + PERSON, "category=travel", "status=open",
              "center=n1")
        c.cli(n1, "put", "case", "c2", "person=DEU:OTHER001", "category=lease", "status=open",
              "center=n1")
        n_c1 = c.cli(n1, "note", "add", "c1", "Called the landlord")[1].strip()
        n_c1x = c.cli(n1, "note", "add", "c1/x", "second case")[1].strip()
        c.cli(n1, "note", "add", "c2", "not theirs")

        _, out, _ = c.cli(n1, "person", "export", PERSON, "--reveal")
        doc = json.loads(out)
        self.assertEqual(doc["person"], PERSON)
        self.assertEqual(doc["registration"], dict(PERSON_FIELDS))
        self.assertEqual([x["key"] for x in doc["cases"]], ["c1", "c1/x"])
        self.assertEqual(doc["cases"][0]["fields"]["category"], "lease")
        self.assertEqual(sorted(x["key"] for x in doc["notes"]),
                         sorted(["c1/" + n_c1, "c1/x/" + n_c1x]))
        # Its audit entries: the writes of its records (not of others').
        recs = [r for e in doc["audit"] for r in e["records"]]
        self.assertEqual(sorted(recs), sorted(["registration/" + PERSON, "case/c1", "case/c1/x",
                                               "case_note/c1/" + n_c1,
                                               "case_note/c1/x/" + n_c1x]))
        # Masked by default.
        _, out, _ = c.cli(n1, "person", "export", PERSON)
        masked = json.loads(out)
        self.assertEqual(masked["person"], "FRA:GL10****01")
        self.assertEqual(masked["registration"]["document_number"], "GL10****01")
        self.assertEqual(masked["registration"]["phone"], "+86****01")
        self.assertEqual(masked["cases"][0]["fields"]["person"], "FRA:GL10****01")
        self.assertNotIn("GL1012345601", out)
        # The export was audited: one entry naming every record it held.
        e = [e for e in self.audit(c, n1) if e["op"] == "export"]
        self.assertEqual(len(e), 2)
        self.assertEqual(sorted(e[0]["records"]), sorted(
            ["registration/" + PERSON, "case/c1", "case/c1/x", "case_note/c1/" + n_c1,
             "case_note/c1/x/" + n_c1x]))
        # A desk exports only for the person's own request; ro never.
        rc, _, err = self.tcp(c, "desk-rw", "person", "export", PERSON, "--purpose", "service")
        self.assertEqual(rc, 1)
        self.assertIn("only with purpose subject-access", err)
        out = self.tcp_ok(c, "desk-rw", "person", "export", PERSON, "--purpose", "subject-access")
        self.assertEqual(len(json.loads(out)["cases"]), 2)
        rc, _, err = self.tcp(c, "desk-ro", "person", "export", PERSON, "--purpose",
                              "subject-access")
        self.assertEqual(rc, 1)
        self.assertIn("role ro", err)
        rc, _, err = c.cli(n1, "person", "export", "FRA:NOBODY1", check=False)
        self.assertEqual(rc, 1)
        self.assertIn("no registration FRA:NOBODY1", err)

    def test_masking_and_reveal(self):
        c = self.cluster(1, {"desk-rw": "rw"})
        n1 = c.nodes[0]
        c.cli(n1, *reg_args(PERSON, phone="+8613800000001"))
        c.cli(n1, "put", "case", "c1", "person=" + PERSON, "category=lease", "status=open",
              "center=n1")
        full, masked = "GL1012345601", "GL10****01"
        outputs = {
            "get": ["get", "registration", PERSON],
            "get --json": ["get", "registration", PERSON, "--json"],
            "scan": ["scan", "registration"],
            "scan case": ["scan", "case", "--json"],
            "export": ["export", "registration", "case"],
            "watch": ["watch", "registration", "--from-start", "--count", "1"],
            "audit": ["audit"],
        }
        for what, args in outputs.items():
            _, out, _ = c.cli(n1, *args)
            self.assertIn(masked, out, what)
            self.assertNotIn(full, out, what)
            self.assertNotIn("13800000001", out, what)
            _, out, _ = c.cli(n1, *args, "--reveal")
            self.assertIn(full, out, what)
        _, out, _ = c.cli(n1, "get", "registration", PERSON)
        self.assertIn("phone = +86****01\n", out)
        # A desk sees masked output; --reveal is refused, nothing printed.
        out = self.tcp_ok(c, "desk-rw", "get", "registration", PERSON, "--purpose", "service")
        self.assertIn("document_number = GL10****01", out)
        rc, out, err = self.tcp(c, "desk-rw", "get", "registration", PERSON, "--purpose",
                                "service", "--reveal")
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("admin clients only", err)
        self.assertIn("role rw", err)


if __name__ == "__main__":
    unittest.main()
