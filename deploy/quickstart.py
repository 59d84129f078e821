#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The local eight-center cluster behind deploy/quickstart (which installs
and builds first, then runs this).

    quickstart.py start [--dir DIR] [--base-port P] [--records N]
    quickstart.py stop [--dir DIR]
    quickstart.py status [--dir DIR]

start: keys and configs (deploy/msce-gen, local layout) under DIR, every
msced in the background (DIR/NAME/msced.pid, DIR/NAME/msced.log), demo data
once (registrations, cases with notes, events, some of it written at two
centers at the same moment so that conflicts show), then `msce verify`
and `msce status`. Nodes already running are kept. If a node fails to
come up, the nodes this run started are stopped again.

stop: SIGTERM to every node by its PID file, SIGKILL after STOP_TIMEOUT.
A PID is only signalled if /proc says it is msced with this node's
config, so a stale PID file never hits an unrelated process.
"""

import argparse
import concurrent.futures
import fcntl
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import unicodedata
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

CLUSTER = "shenzhen-msce"
# name, id, district (of the registrations written there)
CENTERS = [
    ("shekou", 1, "nanshan"),
    ("shenzhen-bay", 2, "nanshan"),
    ("nanshan", 3, "nanshan"),
    ("futian", 4, "futian"),
    ("luohu", 5, "luohu"),
    ("baoan", 6, "baoan"),
    ("longgang", 7, "longgang"),
    ("longhua", 8, "longhua"),
]
READY_TIMEOUT = 30  # s for every node to answer and link up
VERIFY_TIMEOUT = 120  # s for msce verify after the demo data
STOP_TIMEOUT = 20  # s between SIGTERM and SIGKILL
CLI_TIMEOUT = 60  # s for one CLI call



def open_private(path, mode="w", perm=0o600, **kw):
    """open() for writing a file that only we (0600) or also our group
    (0640) may read, whatever the umask and whatever mode an older run left:
    logs and demo data hold personal records."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
    flags |= os.O_APPEND if "a" in mode else os.O_TRUNC
    fd = os.open(path, flags, perm)
    os.fchmod(fd, perm)
    return os.fdopen(fd, mode, **kw)

def binary(env, *rel):
    return os.environ.get(env) or os.path.join(REPO, "build", *rel)


MSCED = binary("MSCED", "server", "msced")
MSCE = binary("MSCE", "client", "msce")


def say(msg, file=sys.stdout):
    """One line per stage, saying what it does."""
    print("quickstart: " + msg, file=file, flush=True)


class Failure(Exception):
    pass


# ---- layout --------------------------------------------------------------


class Center:
    def __init__(self, root, name, nid, district):
        self.name, self.id, self.district = name, nid, district
        self.dir = os.path.join(root, name)
        self.conf = os.path.join(self.dir, name + ".conf")
        self.sock = os.path.join(self.dir, name + ".sock")
        self.pidfile = os.path.join(self.dir, "msced.pid")
        self.log = os.path.join(self.dir, "msced.log")
        self.port = self.client = self.metrics = None

    def read_ports(self):
        """Ports from the config (the centers file may predate --base-port)."""
        with open(self.conf) as f:
            for line in f:
                k, _, v = line.partition("=")
                k, v = k.strip(), v.strip()
                if k == "listen":
                    self.port = int(v.rsplit(":", 1)[1])
                elif k == "client_listen":
                    self.client = v
                elif k == "metrics_listen":
                    self.metrics = v
                elif k.startswith("[peer"):
                    break

    def pid(self):
        """PID of this center's running msced, else None (a stale PID
        file is removed)."""
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
            with open("/proc/%d/stat" % pid) as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            argv, zombie = [], True
        if (not zombie and argv and os.path.basename(argv[0]) == b"msced"
                and self.conf.encode() in argv):
            return pid
        try:
            os.unlink(self.pidfile)
        except OSError:
            pass
        return None


def centers_of(root):
    return [Center(root, *c) for c in CENTERS]


def generate(root, base_port):
    """Keys and configs through msce-gen; idempotent."""
    path = os.path.join(root, "centers")
    if not os.path.exists(path):
        lines = ["# Local quickstart cluster: name id address [settings]"]
        for name, nid, _ in CENTERS:
            lines.append("%-13s %d  127.0.0.1:%d  client_listen=127.0.0.1:%d  "
                         "metrics_listen=127.0.0.1:%d"
                         % (name, nid, base_port + nid, base_port + 1000 + nid,
                            base_port + 2000 + nid))
        lines.append("# One operator key for every center, over TCP.")
        lines.append("client ops * admin")
        with open_private(path, "w", 0o640) as f:
            f.write("\n".join(lines) + "\n")
    r = subprocess.run([sys.executable, os.path.join(HERE, "msce-gen"),
                        "--layout", "local", "--cluster", CLUSTER,
                        "--msce", MSCE, "-q", path, root],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise Failure("msce-gen: " + (r.stderr or r.stdout).strip())


# ---- processes -----------------------------------------------------------


def port_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def cli(c, *args, timeout=CLI_TIMEOUT, stdin=None):
    r = subprocess.run([MSCE, "-c", c.conf] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout,
                       stdin=stdin if stdin is not None else subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


def status(c):
    """status --json, or None when the node does not answer."""
    try:
        rc, out, _ = cli(c, "status", "--json", timeout=10)
    except subprocess.TimeoutExpired:
        return None
    if rc == 2:
        return None
    try:
        return json.loads(out)
    except ValueError:
        return None


def log_tail(c, n=15):
    try:
        with open(c.log, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)\n"


def start_node(c):
    os.makedirs(c.dir, exist_ok=True)
    with open_private(c.log, "ab", 0o600) as log:
        log.write(("---- quickstart: start %s ----\n"
                   % time.strftime("%Y-%m-%d %H:%M:%S")).encode())
        log.flush()
        # A session of its own: a Ctrl-C at the terminal does not reach
        # the daemons, only `quickstart stop` does.
        p = subprocess.Popen([MSCED, "-c", c.conf], stdin=subprocess.DEVNULL,
                             stdout=log, stderr=log, cwd=c.dir,
                             start_new_session=True)
    with open_private(c.pidfile + ".tmp", "w", 0o640) as f:
        f.write("%d\n" % p.pid)
    os.replace(c.pidfile + ".tmp", c.pidfile)
    return p


def stop_pids(pids, timeout=STOP_TIMEOUT):
    """SIGTERM to each (center, pid), SIGKILL to those left after timeout.
    Returns the centers that had to be killed."""
    for c, pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    killed = []
    for c, pid in pids:
        while c.pid() == pid and time.monotonic() < deadline:
            reap(pid)
            time.sleep(0.1)
        if c.pid() == pid:
            os.kill(pid, signal.SIGKILL)
            killed.append(c.name)
            while c.pid() == pid:
                reap(pid)
                time.sleep(0.05)
        reap(pid)
        try:
            os.unlink(c.pidfile)
        except OSError:
            pass
    return killed


def reap(pid):
    """Collects pid if it is our child (started by this run)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_ready(centers, started):
    """Until every node answers, has all its links up and writes (a new
    city opens writes once every center has greeted the others). Raises
    Failure naming the node (with its log) that died or did not."""
    deadline = time.monotonic() + READY_TIMEOUT
    pending = {c.name: c for c in centers}
    while pending:
        for name, c in list(pending.items()):
            p = started.get(name)
            if p is not None and p.poll() is not None:
                raise Failure("msced of %s exited with %s; its log:\n%s"
                              % (name, p.returncode, log_tail(c)))
            s = status(c)
            if s and s.get("writer") and all(
                    x.get("connected") for x in s.get("peers", [])):
                del pending[name]
        if not pending:
            return
        if time.monotonic() > deadline:
            c = next(iter(pending.values()))
            raise Failure("not up after %d s: %s (links down, not writing "
                          "yet, or no answer); "
                          "log of %s:\n%s" % (READY_TIMEOUT,
                                              ", ".join(pending), c.name,
                                              log_tail(c)))
        time.sleep(0.2)


# ---- demo data -----------------------------------------------------------

# nationality -> (first names, last names, mail domain)
PEOPLE = {
    "FRA": (["Camille", "Louis", "Chloé", "Hugo", "Léa", "Julien", "Manon"],
            ["Martin", "Bernard", "Dubois", "Laurent", "Lefèvre", "Moreau"]),
    "DEU": (["Lukas", "Anna", "Felix", "Lena", "Jonas", "Marie"],
            ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Becker"]),
    "USA": (["James", "Emily", "Michael", "Sarah", "David", "Jessica"],
            ["Smith", "Johnson", "Brown", "Miller", "Davis", "Wilson"]),
    "GBR": (["Oliver", "Amelia", "Harry", "Isla", "George", "Sophie"],
            ["Taylor", "Evans", "Thomas", "Roberts", "Walker", "Wright"]),
    "JPN": (["Haruto", "Yui", "Sota", "Aoi", "Ren", "Hina"],
            ["Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito"]),
    "KOR": (["Min-jun", "Seo-yeon", "Ji-ho", "Ha-eun", "Do-yun", "Ji-woo"],
            ["Kim", "Lee", "Park", "Choi", "Jung", "Kang"]),
    "ITA": (["Luca", "Giulia", "Marco", "Sofia", "Matteo", "Chiara"],
            ["Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano"]),
    "ESP": (["Hugo", "Lucía", "Martín", "Paula", "Daniel", "Alba"],
            ["García", "Fernández", "López", "Martínez", "Sánchez", "Pérez"]),
    "RUS": (["Ivan", "Anastasia", "Dmitry", "Maria", "Alexei", "Olga"],
            ["Ivanov", "Smirnova", "Kuznetsov", "Popova", "Volkov", "Sokolova"]),
    "IND": (["Aarav", "Diya", "Vihaan", "Ananya", "Arjun", "Isha"],
            ["Sharma", "Patel", "Gupta", "Reddy", "Iyer", "Singh"]),
    "BRA": (["Miguel", "Helena", "Arthur", "Alice", "Heitor", "Laura"],
            ["Silva", "Santos", "Oliveira", "Souza", "Costa", "Pereira"]),
    "SGP": (["Wei Jie", "Hui Min", "Jun Hao", "Xin Yi", "Ethan", "Chloe"],
            ["Tan", "Lim", "Ng", "Goh", "Chua", "Teo"]),
    "THA": (["Somchai", "Ploy", "Anan", "Mali", "Krit", "Nok"],
            ["Srisuk", "Chaiyaporn", "Wongsa", "Boonmee", "Thongchai", "Saetang"]),
    "NGA": (["Chinedu", "Ngozi", "Emeka", "Amaka", "Tunde", "Funke"],
            ["Okafor", "Adeyemi", "Eze", "Bello", "Okoro", "Balogun"]),
    "AUS": (["Jack", "Charlotte", "William", "Olivia", "Noah", "Mia"],
            ["Smith", "Jones", "Williams", "Brown", "Wilson", "Taylor"]),
    "CAN": (["Liam", "Emma", "Lucas", "Ava", "Nathan", "Zoé"],
            ["Tremblay", "Roy", "Gagnon", "MacDonald", "Campbell", "Leblanc"]),
}
DOC_TYPES = ["passport"] * 8 + ["residence_permit", "travel_document"]
VISAS = ["Z (work)", "S1 (family)", "X1 (study)", "M (business)",
         "R (talent)", "Q1 (family reunion)"]
STREETS = {
    "nanshan": ["Wanghai Road, Shekou", "Taizi Road, Shekou",
                "Houhai Avenue", "Keyuan Road", "Shenzhen Bay Road"],
    "futian": ["Shennan Avenue", "Fuhua Road", "Yitian Road"],
    "luohu": ["Renmin South Road", "Dongmen Road", "Jiefang Road"],
    "baoan": ["Bao'an Avenue", "Xixiang Road", "Xin'an 6th Road"],
    "longgang": ["Longxiang Avenue", "Huangge Road", "Bantian Road"],
    "longhua": ["Minzhi Avenue", "Longhua Avenue", "Meilong Road"],
}
CATEGORIES = ["registration", "marriage", "landlord", "employer", "lease",
              "travel", "currency", "other"]
SUMMARIES = {
    "registration": "Address change after moving within Shenzhen",
    "marriage": "Documents for marrying a Chinese citizen: what to certify",
    "landlord": "Landlord keeps the deposit after the lease ended",
    "employer": "Salary paid late for two months; labour contract questions",
    "lease": "Reading a lease before signing: notice period and repairs",
    "travel": "Re-entry after a trip: visa validity and registration",
    "currency": "Exchanging RMB back when leaving China",
    "other": "Where to find an English-speaking pediatrician",
}
NOTES = [
    "Called the resident; documents to bring on Tuesday.",
    "Explained the procedure; resident will come back with the lease.",
    "Forwarded to the district office; answer expected within 5 days.",
    "Resident confirmed by phone that the issue is settled.",
    "Translated the landlord's letter; meeting set for Friday 14:00.",
]
STAFF = ["Wang Fang", "Li Na", "Zhang Wei", "Liu Yang", "Chen Jing",
         "Huang Min", "Zhao Lei", "Zhou Xin"]
EVENTS = [
    ("qa", "Q&A: renewing a work residence permit"),
    ("qa", "Q&A: leases, deposits and utilities"),
    ("tour", "Tour: Nantou Ancient City"),
    ("tour", "Tour: Dafen Oil Painting Village"),
    ("workshop", "Workshop: Chinese for daily life"),
    ("workshop", "Workshop: individual income tax for foreigners"),
    ("ceremony", "Welcome ceremony for new residents"),
    ("other", "Mid-Autumn mooncake afternoon"),
]


def ascii_word(s):
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
    return "".join(ch for ch in s.lower() if ch.isalnum())


class Demo:
    """The demo records, deterministic for a seed. Each record is
    (center index, collection, key, {field: value})."""

    def __init__(self, records, seed=2026):
        self.rng = random.Random(seed)
        self.records = records
        self.base_ms = int(time.time() * 1000)
        self.reg_keys = []

    def registrations(self):
        rng, out = self.rng, []
        nats = sorted(PEOPLE)
        for i in range(self.records):
            ci = i % len(CENTERS)
            name, _, district = CENTERS[ci]
            nat = nats[rng.randrange(len(nats))]
            first = rng.choice(PEOPLE[nat][0])
            last = rng.choice(PEOPLE[nat][1])
            doc = "%s%07d" % ("".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ")
                                      for _ in range(2)), 1000000 + i)
            key = "%s:%s" % (nat, doc)
            self.reg_keys.append((key, ci))
            streets = STREETS.get(district, STREETS["nanshan"])
            f = {
                "name": "%s %s" % (first, last),
                "nationality": nat,
                "document_type": rng.choice(DOC_TYPES),
                "document_number": doc,
                "birth_date": "%04d-%02d-%02d" % (rng.randint(1950, 2005),
                                                  rng.randint(1, 12),
                                                  rng.randint(1, 28)),
                "phone": "+861%d%09d" % (rng.choice([3, 5, 8]),
                                         rng.randrange(10 ** 9)),
                "email": "%s.%s%d@example.%s" % (ascii_word(first),
                                                 ascii_word(last), i,
                                                 rng.choice(["com", "org", "net"])),
                "address": "Room %d, Building %d, %s, Shenzhen" % (
                    rng.randint(101, 3208), rng.randint(1, 12),
                    rng.choice(streets)),
                "district": district,
                "visa_type": rng.choice(VISAS),
                "visa_expiry": "%04d-%02d-%02d" % (rng.randint(2026, 2029),
                                                   rng.randint(1, 12),
                                                   rng.randint(1, 28)),
                "registered_at": "2026-%02d-%02dT%02d:%02d:00Z" % (
                    rng.randint(1, 10), rng.randint(1, 28),
                    rng.randint(1, 9), rng.randint(0, 59)),
                "center": name,
            }
            out.append((ci, "registration", key, f))
        return out

    def note(self, ci, case_key, k, text):
        """A case_note record: key <case key>/<note id>, the id as libmsce
        makes it (YYYYMMDDTHHMMSS.mmmZ-<center>-<16 hex>): the writer's
        time, so notes list in the order written, its center, and random
        bits, so two centers never pick the same id."""
        ms = self.base_ms + k
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(ms // 1000))
        center = CENTERS[ci][0]
        nid = "%s.%03dZ-%s-%016x" % (stamp, ms % 1000, center,
                                     self.rng.getrandbits(64))
        return (ci, "case_note", "%s/%s" % (case_key, nid), {
            "text": text, "center": center,
            "author": self.rng.choice(STAFF),
            "written_at": "%s-%s-%sT%s:%s:%s.%03dZ" % (
                stamp[0:4], stamp[4:6], stamp[6:8], stamp[9:11],
                stamp[11:13], stamp[13:15], ms % 1000)})

    def cases(self):
        """(cases with their first notes, later writes at another center:
        a note and a status change)."""
        rng, first, later = self.rng, [], []
        n = max(8, self.records // 10)
        for i in range(n):
            person, pci = self.reg_keys[rng.randrange(len(self.reg_keys))]
            ci = pci if rng.random() < 0.7 else rng.randrange(len(CENTERS))
            cat = rng.choice(CATEGORIES)
            key = "%s-%05d" % (CENTERS[ci][0], i)
            f = {"person": person, "category": cat,
                 "status": rng.choice(["open", "in_progress", "resolved",
                                       "closed"]),
                 "center": CENTERS[ci][0], "assignee": rng.choice(STAFF),
                 "summary": SUMMARIES[cat]}
            first.append((ci, "case", key, f))
            first.append(self.note(ci, key, 2 * i, rng.choice(NOTES)))
            if rng.random() < 0.3:
                other = (ci + rng.randrange(1, len(CENTERS))) % len(CENTERS)
                later.append(self.note(other, key, 2 * i + 1, "Seen at %s: %s" % (
                    CENTERS[other][0], rng.choice(NOTES))))
                later.append((other, "case", key, {"status": "in_progress"}))
        return first, later

    def events(self):
        rng, out = self.rng, []
        for ci, (name, _, _) in enumerate(CENTERS):
            for j in range(6):
                kind, title = EVENTS[(ci + j) % len(EVENTS)]
                day = "2026-12-%02d" % (1 + (ci * 3 + j * 5) % 28)
                hour = 1 + (j % 3) * 2  # UTC: 09:00, 11:00, 13:00 in Shenzhen
                key = "%s/%s-%d" % (day, name, j + 1)
                out.append((ci, "event", key, {
                    "title": title, "kind": kind, "center": name,
                    "starts_at": "%sT%02d:00:00Z" % (day, hour),
                    "ends_at": "%sT%02d:30:00Z" % (day, hour + 1),
                    "capacity": str(rng.choice([20, 30, 40, 60, 100])),
                    "description": "%s at the %s center. Free; please "
                                   "register at the front desk." % (title, name),
                }))
        return out

    def conflicts(self, n):
        """Pairs of writes of the same registration field at two centers,
        meant to be made at the same moment."""
        rng, out = self.rng, []
        for key, ci in rng.sample(self.reg_keys, min(n, len(self.reg_keys))):
            other = (ci + rng.randrange(1, len(CENTERS))) % len(CENTERS)
            pair = []
            for c in (ci, other):
                pair.append((c, "registration", key, {
                    "phone": "+861%d%09d" % (rng.choice([3, 5, 8]),
                                             rng.randrange(10 ** 9))}))
            out.append(pair)
        return out


def have_import():
    r = subprocess.run([MSCE], capture_output=True, text=True)
    return " import " in r.stdout + r.stderr


class Loader:
    """Writes records at their centers: `msce import` of a JSON lines file
    per center when the CLI has it, else one `msce put` each, several at a
    time."""

    def __init__(self, centers, workdir):
        self.centers = centers
        self.workdir = workdir
        self.use_import = have_import()
        self.count = 0

    def _put(self, rec):
        ci, coll, key, fields = rec[:4]  # a base (rec[4]) needs import
        rc, out, err = cli(self.centers[ci], "put", coll, key,
                           *["%s=%s" % kv for kv in fields.items()])
        if rc != 0:
            raise Failure("put %s %s at %s: %s" % (coll, key,
                                                   self.centers[ci].name,
                                                   (err or out).strip()))

    def _import(self, ci, recs, tag):
        c = self.centers[ci]
        path = os.path.join(self.workdir, "%s-%s.jsonl" % (tag, c.name))
        with open_private(path, "w", 0o600, encoding="utf-8") as f:
            for r in recs:
                _, coll, key, fields = r[:4]
                line = {"collection": coll, "key": key, "fields": fields}
                if len(r) > 4:
                    line["base"] = r[4]  # the version both writers saw
                f.write(json.dumps(line, ensure_ascii=False))
                f.write("\n")
        rc, out, err = cli(c, "import", path, timeout=600)
        if rc != 0:
            raise Failure("import %s at %s: %s" % (path, c.name,
                                                   (err or out).strip()))

    def write(self, recs, tag):
        """All of recs, in parallel across centers."""
        self.count += len(recs)
        with concurrent.futures.ThreadPoolExecutor(len(self.centers)) as ex:
            if self.use_import:
                by = {}
                for r in recs:
                    by.setdefault(r[0], []).append(r)
                futs = [ex.submit(self._import, ci, rs, tag)
                        for ci, rs in by.items()]
            else:
                futs = [ex.submit(self._put, r) for r in recs]
            for f in futs:
                f.result()

    def write_concurrently(self, pairs, tag):
        """Each pair's two writes at the same instant, so neither center
        has seen the other's when it commits: a conflict."""
        self.count += 2 * len(pairs)
        if self.use_import:
            # Two imports started together: all of one batch against all
            # of the other.
            by = {}
            for pair in pairs:
                for side, r in enumerate(pair):
                    by.setdefault((side, r[0]), []).append(r)
            gate = threading.Barrier(len(by))

            def run(k, rs):
                gate.wait()
                self._import(k[1], rs, "%s-%d" % (tag, k[0]))
            with concurrent.futures.ThreadPoolExecutor(len(by)) as ex:
                for f in [ex.submit(run, k, rs) for k, rs in by.items()]:
                    f.result()
            return
        for pair in pairs:
            gate = threading.Barrier(2)

            def run(r):
                gate.wait()
                self._put(r)
            with concurrent.futures.ThreadPoolExecutor(2) as ex:
                for f in [ex.submit(run, r) for r in pair]:
                    f.result()

    def delete(self, ci, coll, key):
        rc, out, err = cli(self.centers[ci], "del", coll, key)
        if rc != 0:
            raise Failure("del %s %s: %s" % (coll, key, (err or out).strip()))
        self.count += 1


def sync(centers):
    """Until every center holds everything written so far."""
    rc, out, err = cli(centers[0], "verify", "--timeout", VERIFY_TIMEOUT,
                       timeout=VERIFY_TIMEOUT + 30)
    if rc != 0:
        raise Failure("msce verify: %s" % (err or out).strip())
    return out.strip()


def load_demo(root, centers, records):
    demo = Demo(records)
    work = os.path.join(root, "demo")
    os.makedirs(work, mode=0o700, exist_ok=True)
    os.chmod(work, 0o700)  # records to import: personal data
    ld = Loader(centers, work)
    t0 = time.monotonic()
    say("loading demo data with %s: %d registrations, cases, events"
        % ("msce import" if ld.use_import else "msce put (no msce import in "
           "this build: slower)", records))
    regs = demo.registrations()
    cases, later = demo.cases()
    events = demo.events()
    ld.write(regs + events, "base")
    # A center refuses a case for a person it has not seen: the cases
    # (some opened at another center than the registration) wait until
    # every center holds every registration.
    sync(centers)
    ld.write(cases, "cases")
    # A second center changes a case's status only once it holds the case:
    # a write that would create a case without its required fields is
    # refused. (Its notes are records of their own and need no case.)
    sync(centers)
    ld.write(later, "later")
    # A cancelled event per center: a tombstone that replicates.
    for ci, (name, _, _) in enumerate(CENTERS):
        ev = [e for e in events if e[0] == ci]
        ld.delete(ci, "event", ev[-1][2])
    pairs = demo.conflicts(24)
    sync(centers)
    # Both writes of a pair declare they saw the same version of the field
    # (what the cluster holds now), as two desks editing the same record
    # at once would: a conflict however fast replication is.
    based = []
    for pair in pairs:
        _, coll, key, fields = pair[0]
        rc, out, _ = cli(centers[pair[0][0]], "get", coll, key, "--json")
        seen = "0/0"
        if rc == 0:
            f = json.loads(out)["fields"].get("phone")
            if f:
                seen = "%s/%d" % (f["hlc"], f["origin"])
        based.append(tuple(r + ({"phone": seen},) for r in pair))
    pairs = based
    ld.write_concurrently(pairs, "conflicts")
    sync(centers)
    example = None
    for pair in pairs:
        rc, out, _ = cli(centers[0], "get", "registration", pair[0][2], "--json")
        if rc == 0 and json.loads(out)["fields"]["phone"].get("conflicts"):
            example = pair[0][2]
            break
    with open_private(os.path.join(root, "demo.json"), "w", 0o640) as f:
        json.dump({"registrations": len(regs),
                   "cases": sum(r[1] == "case" for r in cases),
                   "notes": sum(r[1] == "case_note" for r in cases + later),
                   "notes_at_other_centers": sum(r[1] == "case_note"
                                                 for r in later),
                   "events": len(events), "events_deleted": len(CENTERS),
                   "concurrent_pairs": len(pairs),
                   "example_conflict_key": example,
                   "seconds": round(time.monotonic() - t0, 1)}, f, indent=1)
    say("wrote %d changes in %.1f s" % (ld.count, time.monotonic() - t0))


# ---- commands ------------------------------------------------------------


def lock(root):
    """One quickstart at a time per DIR."""
    f = open_private(os.path.join(root, ".lock"), "w", 0o600)
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise Failure("another quickstart is working on %s" % root)
    return f


def metrics_url(c):
    if not c.metrics:
        return None
    url = "http://%s/metrics" % c.metrics
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return url if r.status == 200 else None
    except OSError:
        return None


def shown(path):
    """Relative to the working directory when under it, else absolute."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def print_summary(root, centers):
    rel, msce = shown(root), shown(MSCE)
    rc, out, err = cli(centers[0], "status")
    print()
    print(out.rstrip() or err.rstrip())
    print()
    print("%-13s %3s  %-16s %-16s %s" % ("center", "id", "peer link",
                                       "client (TCP)", "metrics"))
    for c in centers:
        url = metrics_url(c)
        print("%-13s %3d  127.0.0.1:%-6d %-16s %s" % (
            c.name, c.id, c.port, c.client or "-",
            url or "(%s: not served by this build)" % c.metrics))
    try:
        with open(os.path.join(root, "demo.json")) as f:
            demo = json.load(f)
    except (OSError, ValueError):
        demo = {}
    print()
    print("Config of center NAME: %s/NAME/NAME.conf (msce -c it: the admin "
          "socket)." % rel)
    print("Logs: %s/NAME/msced.log   PID files: %s/NAME/msced.pid" % (rel, rel))
    print("Try:")
    print("  %s -c %s/futian/futian.conf status" % (msce, rel))
    print("  %s -c %s/luohu/luohu.conf scan registration --prefix FRA: --limit 5"
          % (msce, rel))
    key = demo.get("example_conflict_key")
    if key:
        print("  %s -c %s/baoan/baoan.conf get registration %s" % (msce, rel, key))
        print("      (its phone was written at two centers at once: a conflict)")
    print("  %s -c %s/longhua/longhua.conf conflicts" % (msce, rel))
    c = centers[0]
    if c.client:
        with open(os.path.join(c.dir, c.name + ".pub")) as f:
            pub = f.read().strip()
        print("  %s --node %s --key %s/_clients/ops.key --node-key %s "
              "--cluster %s status" % (msce, c.client, rel, pub, CLUSTER))
        print("      (over TCP with Noise, as the ops client)")
    print("Stop: deploy/quickstart stop%s" % (
        "" if rel == "run" else " --dir " + rel))


def cmd_start(args):
    for b in (MSCED, MSCE):
        if not os.access(b, os.X_OK):
            raise Failure("%s is not built" % b)
    root = os.path.abspath(args.dir)
    os.makedirs(root, mode=0o750, exist_ok=True)
    _lk = lock(root)
    say("keys and configs of %d centers in %s (deploy/msce-gen)"
        % (len(CENTERS), shown(root)))
    generate(root, args.base_port)
    centers = centers_of(root)
    for c in centers:
        c.read_ports()
    running = {c.name: c.pid() for c in centers}
    up = [c.name for c in centers if running[c.name]]
    if up:
        say("already running: %s" % ", ".join(
            "%s (pid %d)" % (n, running[n]) for n in up))
    to_start = [c for c in centers if not running[c.name]]
    busy = ["%d (%s)" % (p, c.name) for c in to_start
            for p in [c.port] + [int(a.rsplit(":", 1)[1])
                                 for a in (c.client, c.metrics) if a]
            if not port_free(p)]
    if busy:
        raise Failure("port(s) in use: %s; is another cluster running? "
                      "(pick others with --base-port on a fresh --dir)"
                      % ", ".join(busy))
    started = {}
    try:
        for c in to_start:
            started[c.name] = start_node(c)
        if started:
            say("started %s; waiting for every link"
                % ", ".join("%s (pid %d)" % (n, p.pid) for n, p in started.items()))
        wait_ready(centers, started)
    except BaseException:
        # Leave nothing half-started behind: stop what this run started.
        stop_pids([(c, started[c.name].pid) for c in centers
                   if c.name in started], timeout=5)
        raise
    say("all %d centers up and linked" % len(centers))
    if not os.path.exists(os.path.join(root, "demo.json")):
        load_demo(root, centers, args.records)
    say("checking that every center holds the same data (msce verify)")
    say(sync(centers))
    print_summary(root, centers)
    return 0


def cmd_stop(args):
    root = os.path.abspath(args.dir)
    if not os.path.isdir(root):
        say("nothing to stop: %s does not exist" % root)
        return 0
    _lk = lock(root)
    centers = centers_of(root)
    pids = [(c, c.pid()) for c in centers]
    pids = [(c, p) for c, p in pids if p]
    if not pids:
        say("nothing running in %s" % root)
        return 0
    say("stopping %s" % ", ".join("%s (pid %d)" % (c.name, p) for c, p in pids))
    killed = stop_pids(pids)
    if killed:
        say("had to SIGKILL %s after %d s" % (", ".join(killed), STOP_TIMEOUT))
    say("stopped")
    return 0


def cmd_status(args):
    root = os.path.abspath(args.dir)
    centers = centers_of(root)
    n = 0
    for c in centers:
        pid = c.pid() if os.path.isdir(c.dir) else None
        n += pid is not None
        print("%-13s %s" % (c.name, "running, pid %d" % pid if pid else "stopped"))
    if n:
        rc, out, err = cli(next(c for c in centers if c.pid()), "status")
        print(out.rstrip() or err.rstrip())
    return 0 if n == len(centers) else 1


def main(argv):
    ap = argparse.ArgumentParser(
        prog="deploy/quickstart",
        description="A local eight-center msce cluster with demo data.")
    ap.add_argument("command", nargs="?", default="start",
                    choices=("start", "stop", "status"),
                    help="start (default): install, build, start, load demo "
                         "data; stop: stop every node; status: which run")
    ap.add_argument("--dir", default="run",
                    help="where keys, configs, data and logs go (default ./run)")
    ap.add_argument("--base-port", type=int, default=7410,
                    help="center N listens on BASE+N (peers), BASE+1000+N "
                         "(clients) and BASE+2000+N (metrics); default 7410, "
                         "used when DIR is new")
    ap.add_argument("--records", type=int, default=3000,
                    help="demo registrations (default 3000)")
    ap.add_argument("--prebuilt", action="store_true",
                    help="do not install or build (binaries from MSCED, MSCE "
                         "or build/)")
    args = ap.parse_args(argv)
    if not 1024 <= args.base_port <= 65535 - 2008:
        ap.error("--base-port 1024..%d" % (65535 - 2008))
    if args.records < 16:
        ap.error("--records at least 16")
    try:
        return {"start": cmd_start, "stop": cmd_stop,
                "status": cmd_status}[args.command](args)
    except Failure as e:
        say("error: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        say("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
