#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What the audit log (issue 15) costs a request: a 2-node cluster (fsync
on) from the test harness, one client on node 1's unix socket (admin),
requests one at a time. Each phase does N gets or single puts of either
registrations (personal: every request leaves an _audit entry) or an
untyped collection "plain" with the same fields (never audited), so the
two compare in the same run. Per phase: latency p50/p99 seen by the
client, and the CPU time both msced spend per request (all threads,
/proc/PID/task/*/schedstat, measured until both nodes agree, so the
replica's share is in; an idle phase shows the floor).

    tests/bench/audit_cost.py [--build DIR] [-n N]

--build: the build directory (default: build next to this tree); point it
at another tree's build, e.g. one without the audit log, to compare (the
harness and the Python package are taken from the tree of that build's
CMakeCache). Prints one JSON object. Figures: docs/BENCHMARKS.md."""

import argparse
import glob
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def tree_of(build):
    with open(os.path.join(build, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith("CMAKE_HOME_DIRECTORY:"):
                return line.split("=", 1)[1].strip()
    raise SystemExit("audit_cost: %s has no CMakeCache.txt" % build)


ap = argparse.ArgumentParser()
ap.add_argument("--build", default=os.path.join(HERE, "..", "..", "build"))
ap.add_argument("-n", type=int, default=2000)
args = ap.parse_args()
build = os.path.abspath(args.build)
tree = tree_of(build)
os.environ.update(MSCED=build + "/server/msced", MSCE=build + "/client/msce",
                  MSCE_LIBRARY=build + "/client/libmsce.so.1")
sys.path.insert(0, os.path.join(tree, "tests", "cluster"))
sys.path.insert(0, os.path.join(tree, "client", "python"))
from cluster import Cluster  # noqa: E402
import msce  # noqa: E402


def cpu_ns(pids):
    t = 0
    for pid in pids:
        for f in glob.glob("/proc/%d/task/*/schedstat" % pid):
            try:
                with open(f) as s:
                    t += int(s.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass  # a thread that just ended
    return t


def fields(i, tag):
    return {"name": "%s %d" % (tag, i), "nationality": "FRA",
            "document_type": "passport", "document_number": "GL%08d" % i,
            "phone": "+86138%08d" % i, "address": "%d Sea World Road" % i}


def key(i):
    return "FRA:GL%08d" % i


c = Cluster(2)
try:
    c.start_all()
    c.wait_converged(timeout=30)
    pids = [x.proc.pid for x in c.nodes]
    cl = msce.Client(config=c.nodes[0].config)
    out = {"n": args.n, "tree": tree}

    def phase(name, fn):
        c.wait_converged(timeout=120)
        time.sleep(0.3)
        lat = []
        before = cpu_ns(pids)
        for i in range(args.n):
            t0 = time.perf_counter()
            fn(i)
            lat.append((time.perf_counter() - t0) * 1e3)
        c.wait_converged(timeout=120)
        time.sleep(0.3)
        lat.sort()
        out[name] = {"cpu_us": round((cpu_ns(pids) - before) / args.n / 1e3, 1),
                     "p50_ms": round(lat[len(lat) // 2], 3),
                     "p99_ms": round(lat[int(len(lat) * 0.99)], 3)}

    phase("idle", lambda i: time.sleep(0.0005))
    phase("put_personal", lambda i: cl.put("registration", key(i), fields(i, "A")))
    phase("put_plain", lambda i: cl.put("plain", key(i), fields(i, "A")))
    phase("get_personal", lambda i: cl.get("registration", key(i)))
    phase("get_plain", lambda i: cl.get("plain", key(i)))
    phase("put_personal_again", lambda i: cl.put("registration", key(i), fields(i, "B")))
    phase("put_plain_again", lambda i: cl.put("plain", key(i), fields(i, "B")))
    out["load"] = round(os.getloadavg()[0], 2)
    cl.close()
    print(json.dumps(out, indent=1))
finally:
    c.close()
    c.finish()
