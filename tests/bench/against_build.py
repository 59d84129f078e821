#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""One build against another on the same machine in the same run: runs
`msce-bench all --json` of each in turn, ABBA (before, after, after,
before) per round, and prints each figure's runs, medians and the ratio
after / before (a figure of time or latency: lower is better). Each
msce-bench starts its own tree's msced. Machines here differ by a factor
of three, so a release's figure means something only next to another
build's figure of the same run: this is how docs/BENCHMARKS.md compares
with wave 1.

    git worktree add /tmp/wave1 8a864b7      # the end of wave 1
    cmake -S /tmp/wave1 -B /tmp/wave1/build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build /tmp/wave1/build -j2
    tests/bench/against_build.py --before /tmp/wave1/build [--rounds 2]

--after defaults to the build next to this tree. --json prints one JSON
object (every run's results and the medians) instead of the table."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# (title, bench, key, what the bench's other keys must be)
FIGURES = [
    ("store: local writes/s", "store", "local_writes_per_s", {}),
    ("store: apply from another origin, changes/s", "store",
     "apply_changes_per_s", {}),
    ("store: raw LMDB puts/s (the yardstick)", "store",
     "raw_lmdb_puts_per_s", {}),
    ("2 nodes: records/s, all durable at the second", "replicate",
     "end_to_end_records_per_s", {"nodes": 2}),
    ("8 nodes: seconds until all hold 100,000", "replicate",
     "all_nodes_durable_seconds", {"nodes": 8}),
    ("lag to 2 other centers: p50 ms", "lag", "p50_ms", {}),
    ("lag to 2 other centers: p99 ms", "lag", "p99_ms", {}),
    ("catch-up from the log: records/s", "catchup",
     "catchup_records_per_s", {"path": "log"}),
    ("catch-up by snapshot: records/s", "catchup",
     "catchup_records_per_s", {"path": "snapshot"}),
    ("client pipelined: writes/s", "client", "pipelined_writes_per_s", {}),
    ("client single put: p50 ms", "client", "single_put_p50_ms", {}),
    ("client single put: p99 ms", "client", "single_put_p99_ms", {}),
]


def bench_of(build):
    path = os.path.join(build, "tests", "bench", "msce-bench")
    if not os.access(path, os.X_OK):
        sys.exit("against_build: no msce-bench in %s (build it first)" % build)
    return path


def run_all(bench):
    """The results of one `all`, or None when it failed (said on stderr:
    the run counts for nothing, the others go on)."""
    out = subprocess.run([bench, "all", "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    if out.returncode != 0:
        print("against_build: %s all failed (%d), its figures left out:\n%s"
              % (bench, out.returncode, out.stderr[-2000:]), file=sys.stderr)
        return None
    return json.loads(out.stdout)["results"]


def figure(results, bench, key, match):
    for r in results:
        if r.get("bench") == bench and all(
                r.get(k) == v for k, v in match.items()):
            return r.get(key)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="the older build dir")
    ap.add_argument("--after",
                    default=os.path.join(HERE, "..", "..", "build"))
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.rounds < 1:
        sys.exit("against_build: --rounds must be at least 1")
    benches = {"before": bench_of(a.before), "after": bench_of(a.after)}
    runs = {"before": [], "after": []}
    order = []
    for _ in range(a.rounds):
        for who in ("before", "after", "after", "before"):
            with open("/proc/loadavg") as f:
                load = float(f.read().split()[0])
            t0 = time.time()
            res = run_all(benches[who])
            if res is not None:
                runs[who].append(res)
            order.append({"build": who, "start": t0, "load_1m": load,
                          "failed": res is None})
            print("against_build: %s %s (load %.2f at its start)" %
                  (who, "failed" if res is None else "done", load),
                  file=sys.stderr)
    rows = []
    for title, bench, key, match in FIGURES:
        row = {"figure": title}
        for who in runs:
            xs = [figure(r, bench, key, match) for r in runs[who]]
            xs = [x for x in xs if x is not None]
            row[who] = xs
            row[who + "_median"] = statistics.median(xs) if xs else None
        b, f = row["before_median"], row["after_median"]
        row["ratio"] = f / b if b and f is not None else None
        rows.append(row)
    if a.json:
        print(json.dumps({"before": a.before, "after": a.after,
                          "order": order, "figures": rows,
                          "runs": runs}, indent=1))
        return
    print("| figure | before | after | after / before (medians) |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        cells = []
        for who in ("before", "after"):
            xs = row[who]
            cells.append(", ".join(
                "{:,.0f}".format(x) if x >= 100 else "{:.2f}".format(x)
                for x in xs) if xs else "not measured")
        ratio = "%.2f" % row["ratio"] if row["ratio"] is not None else ""
        print("| %s | %s | %s | %s |" % (row["figure"], cells[0], cells[1],
                                          ratio))


if __name__ == "__main__":
    main()
