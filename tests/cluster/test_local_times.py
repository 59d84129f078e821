# SPDX-License-Identifier: Apache-2.0
"""Local times in domain data: a desk writes an event's times as its clock
shows them (Shenzhen, +08:00) and every center reads them back in UTC, the
fraction kept exactly; import and resolve go through the same rule; times
that are no instant in the accepted range are refused naming the field
(docs/PROTOCOL.md "Times")."""

import json
import os
import subprocess
import unittest

from cluster import MSCE, ClusterTestCase, wait_until

EVENT = {"title": "Visa Q&A", "kind": "qa", "center": "shekou"}


class LocalTimesTest(ClusterTestCase):
    def test_offsets_stored_in_utc_everywhere(self):
        c = self.make_cluster(2)
        n1, n2 = c.nodes
        c.put(n1, "event", "2026-12-01/qa-sz", dict(
            EVENT, starts_at="2026-12-01T10:00:00+08:00",
            ends_at="2026-12-01T11:30:00.250+08:00"))
        want = {"starts_at": "2026-12-01T02:00:00Z",
                "ends_at": "2026-12-01T03:30:00.250Z"}
        for node in (n1, n2):
            c.wait_value(node, "event", "2026-12-01/qa-sz", "starts_at",
                         want["starts_at"])
            got = c.values(node, "event", "2026-12-01/qa-sz")
            self.assertEqual({k: got[k] for k in want}, want, node)

        # An update with another offset: the same instant, stored the same.
        c.put(n2, "event", "2026-12-01/qa-sz", ends_at="2026-11-30T22:30:00.250-05:00")
        c.wait_value(n1, "event", "2026-12-01/qa-sz", "ends_at",
                     "2026-12-01T03:30:00.250Z")

        # The order of two times written together is checked as instants:
        # 09:00+08:00 is before 02:00Z, however the text sorts.
        rc, _, err = c.cli(n1, "put", "event", "2026-12-01/qa-sz",
                           "starts_at=2026-12-01T02:00:00Z",
                           "ends_at=2026-12-01T09:00:00+08:00", check=False)
        self.assertEqual(rc, 1)
        self.assertIn("event.ends_at", err)
        self.assertIn("is before starts_at", err)

        # Refused: beyond +14:00, a leap second, a time without a zone.
        for bad in ("2026-12-01T10:00:00+15:00", "2026-12-31T23:59:60+08:00",
                    "2026-12-01T10:00:00"):
            rc, _, err = c.cli(n1, "put", "event", "2026-12-02/qa-x",
                               *["%s=%s" % kv for kv in EVENT.items()],
                               "starts_at=" + bad, check=False)
            self.assertEqual(rc, 1, bad)
            self.assertIn("event.starts_at: not an ISO 8601 timestamp", err)
            self.assertIn(bad, err)

        # Import (batched puts) goes through the same rule; a plain
        # collection's values stay opaque.
        path = os.path.join(c.dir, "in.jsonl")
        with open(path, "w") as f:
            f.write(json.dumps({"collection": "registration", "key": "IND:Z1234567",
                                "fields": {"name": "Asha Rao", "nationality": "IND",
                                           "document_type": "passport",
                                           "document_number": "Z1234567",
                                           "registered_at": "2026-03-01T09:15:00-05:30"}})
                    + "\n")
            f.write(json.dumps({"collection": "notes", "key": "n1",
                                "fields": {"at": "2026-03-01T09:15:00-05:30"}}) + "\n")
        r = subprocess.run([MSCE, "-c", n1.config, "import", path],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        c.wait_value(n2, "registration", "IND:Z1234567", "registered_at",
                     "2026-03-01T14:45:00Z")
        self.assertEqual(c.values(n1, "notes", "n1"), {"at": "2026-03-01T09:15:00-05:30"})

        # Resolve writes a value like a put.
        c.cli(n1, "resolve", "event", "2026-12-01/qa-sz", "starts_at",
              "2026-12-01T09:45:00+08:00")
        wait_until(lambda: c.values(n2, "event", "2026-12-01/qa-sz")["starts_at"]
                   == "2026-12-01T01:45:00Z", 30, "resolved time at node 2")


if __name__ == "__main__":
    unittest.main()
