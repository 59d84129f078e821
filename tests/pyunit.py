# SPDX-License-Identifier: Apache-2.0
"""Runs one Python test module for ctest: python3 pyunit.py MODULE.

A skipped test is never a pass: each skip is printed with its reason and
the run exits 77 (ctest's SKIP_RETURN_CODE: shown as skipped). Under
CI=true a skip fails the run unless tests/allowed-skips lists the test.
An unexpected success (an expectedFailure whose bug is fixed) fails too."""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP_RC = 77


def allowed_skips():
    """{test id: why} from tests/allowed-skips."""
    allowed = {}
    with open(os.path.join(HERE, "allowed-skips")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, why = line.partition(" ")
                allowed[name] = why.strip()
    return allowed


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: pyunit.py MODULE\n")
        return 2
    sys.path.insert(0, os.getcwd())
    suite = unittest.defaultTestLoader.loadTestsFromName(sys.argv[1])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    ci = os.environ.get("CI") == "true"
    allowed = allowed_skips()
    refused = []
    for test, reason in result.skipped:
        name = test.id()
        ok = not ci or name in allowed
        sys.stdout.write("SKIPPED %s: %s%s\n" % (
            name, reason, "" if ok else "  (not allowed under CI=true)"))
        if not ok:
            refused.append(name)
    for test, _ in result.expectedFailures:
        sys.stdout.write("EXPECTED FAILURE %s (a known bug; see the test)\n"
                         % test.id())
    if not result.wasSuccessful():
        return 1
    if refused:
        sys.stdout.write("%d skip(s) not in tests/allowed-skips: fail under "
                         "CI=true\n" % len(refused))
        return 1
    return SKIP_RC if result.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
