# SPDX-License-Identifier: Apache-2.0
"""Harness for the cluster tests: real msced processes on loopback.

A Cluster makes a temp dir, generates a key pair per node with `msce
keygen`, writes one config per node, starts the daemons (stderr to
NAME/msced.log) and drives them through the `msce` CLI. With proxy=True
every peer address goes through faultproxy.py, one proxy per direction,
so partition() and cut_link() can sever any link.

Every process started here is recorded by PID and killed at the end, also
when a test fails or the interpreter exits (atexit; and the kernel kills
the daemons if the test process dies, through PR_SET_PDEATHSIG).

Binaries come from MSCED, MSCE, MSCE_PROBE, MSCE_INSIDER, MSCE_LIBTEST,
MSCE_FAILSYNC_LIB (ctest sets them), else from ../../build; a missing one
fails the test, naming it. MSCE_KEEP_TMP=1 keeps every temp dir; a failed
test keeps its dir anyway and prints the tail of each node's log.
"""

import atexit
import ctypes
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))


def _binary(env, *rel):
    """The path in $env, else the one built in ../../build if it is there;
    None if neither (require_binaries then fails, naming it)."""
    path = os.environ.get(env)
    if path:
        return path
    path = os.path.join(REPO, "build", *rel)
    return path if os.access(path, os.X_OK) else None


MSCED = _binary("MSCED", "server", "msced")
MSCE = _binary("MSCE", "client", "msce")
MSCE_PROBE = _binary("MSCE_PROBE", "tests", "cluster", "msce-probe")
MSCE_INSIDER = _binary("MSCE_INSIDER", "tests", "cluster", "msce-insider")
MSCE_LIBTEST = _binary("MSCE_LIBTEST", "tests", "cluster", "msce-libtest")
MSCE_FAILSYNC_LIB = _binary("MSCE_FAILSYNC_LIB", "tests", "cluster", "libmsce-failsync.so")
_ENV_OF = {"MSCED": MSCED, "MSCE": MSCE, "MSCE_PROBE": MSCE_PROBE,
           "MSCE_INSIDER": MSCE_INSIDER,
           "MSCE_LIBTEST": MSCE_LIBTEST, "MSCE_FAILSYNC_LIB": MSCE_FAILSYNC_LIB}

CLI_TIMEOUT = 15  # seconds for one CLI call
POLL = 0.1  # seconds between status polls


def require_binaries(*names):
    """Fails the test (never skips it) when a binary is missing: names are
    the environment variables (default MSCED and MSCE)."""
    for name in names or ("MSCED", "MSCE"):
        p = _ENV_OF[name]
        if not p or not os.access(p, os.X_OK):
            raise AssertionError(
                "%s: %s is not an executable; build first (cmake --build "
                "build) or set %s" % (name, p or os.path.join(REPO, "build", "..."),
                                      name))


# ---- Process bookkeeping -------------------------------------------------

_children = {}  # pid -> Popen: everything we started and have not reaped
_children_lock = threading.Lock()
_PR_SET_PDEATHSIG = 1


def _pdeathsig():
    # Runs in the child: die with the parent thread, so a killed test run
    # (ctest timeout) leaves no daemon behind.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def spawn(argv, **kw):
    """Popen recorded for cleanup. PDEATHSIG follows the thread that forks,
    so it is only set from the main thread."""
    if threading.current_thread() is threading.main_thread():
        kw.setdefault("preexec_fn", _pdeathsig)
    p = subprocess.Popen(argv, **kw)
    with _children_lock:
        _children[p.pid] = p
    return p


def reap(p, timeout, term=True):
    """SIGTERM (unless term is false: already sent), wait up to timeout,
    then SIGKILL. Returns the exit code (negative for a signal)."""
    if p.poll() is None:
        if term:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
    with _children_lock:
        _children.pop(p.pid, None)
    return p.returncode


def _kill_all_children():
    with _children_lock:
        procs = list(_children.values())
        _children.clear()
    for p in procs:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
            except Exception:
                pass


atexit.register(_kill_all_children)


# ---- Small helpers -------------------------------------------------------


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Every port free_ports handed out in this process: each call closes its
# sockets before returning, so a later call could otherwise find a port an
# earlier one gave (two centers, or a node and its metrics, on one port).
_issued = set()


def free_ports(n):
    """n distinct free loopback ports, below the kernel's ephemeral range so
    that no outgoing connection (a node dialling before its peer listens)
    can take one of them between now and the bind; none handed out before
    by this process."""
    hi = _ephemeral_low()
    lo = max(1024, hi - 12000)
    rng = random.Random()
    socks, ports = [], []
    try:
        for _ in range(50 * n):
            if len(ports) == n:
                break
            port = rng.randrange(lo, hi)
            if port in ports or port in _issued:
                continue
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            socks.append(s)
            ports.append(port)
        for _ in range(1000):  # a crowded range: let the kernel choose
            if len(ports) == n:
                break
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            if s.getsockname()[1] not in _issued:
                ports.append(s.getsockname()[1])
        if len(ports) < n:
            raise AssertionError("free_ports: found %d of %d" % (len(ports), n))
        _issued.update(ports)
        return ports
    finally:
        for s in socks:
            s.close()


def proc_status_kb(pid, field):
    """A size line of /proc/PID/status (VmRSS, VmHWM, RssAnon...), in KiB;
    0 if absent."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def peak_rss_kb(pid):
    """VmHWM of process pid: its peak resident size, in KiB."""
    return proc_status_kb(pid, "VmHWM")


def pb_varint(n):
    """A protobuf varint, for tests that write requests byte by byte."""
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_bytes(num, b):
    """Field num as a length-delimited protobuf field (str or bytes)."""
    b = b.encode() if isinstance(b, str) else b
    return pb_varint(num << 3 | 2) + pb_varint(len(b)) + b


def pb_fields(msg):
    """The top-level fields of an encoded message, {number: value}: an int
    for a varint, bytes for the others (the last one of a number wins)."""
    i, fields = 0, {}

    def varint():
        nonlocal i
        v = shift = 0
        while True:
            b = msg[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return v
    while i < len(msg):
        tag = varint()
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            fields[num] = varint()
            continue
        n = {1: 8, 5: 4}.get(wt)
        if n is None:
            if wt != 2:
                raise ValueError("wire type %d" % wt)
            n = varint()
        fields[num] = msg[i:i + n]
        i += n
    return fields


def read_unix_frame(s):
    """One message from a unix socket connection to a node (a 4-byte
    big-endian length, then the message)."""
    def exact(n):
        b = b""
        while len(b) < n:
            d = s.recv(n - len(b))
            if not d:
                raise ConnectionError("the node closed the connection")
            b += d
        return b
    return exact(int.from_bytes(exact(4), "big"))


def wait_until(pred, timeout, what, interval=POLL):
    """Polls pred() until it returns a true value, which is returned; raises
    AssertionError naming what after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except (CliError, OSError) as e:
            last_exc = e
        if time.monotonic() >= deadline:
            msg = "timed out after %.1fs waiting for %s" % (timeout, what)
            if last_exc:
                msg += " (last error: %s)" % last_exc
            raise AssertionError(msg)
        time.sleep(interval)


def norm_vv(vv):
    """{"1": 5, "2": 0} and {"1": 5} are the same vector."""
    return {str(k): int(v) for k, v in (vv or {}).items() if int(v) != 0}


class CliError(Exception):
    def __init__(self, argv, rc, out, err):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err
        super().__init__(
            "%s exited %s: %s%s"
            % (" ".join(argv[3:]), rc, err.strip()[-500:], out.strip()[-300:])
        )


class Unreachable(CliError):
    """The CLI could not reach the node (exit 2)."""


# ---- Fault proxy ---------------------------------------------------------


class FaultProxy:
    """Client of one faultproxy.py process."""

    def __init__(self, log_path=None):
        self.log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.proc = spawn(
            [sys.executable, os.path.join(HERE, "faultproxy.py"),
             "--parent-pid", str(os.getpid())],
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        line = self.proc.stdout.readline().decode()
        m = re.match(r"control (\d+)", line)
        if not m:
            reap(self.proc, 5)
            raise RuntimeError("faultproxy did not start: %r" % line)
        self.port = int(m.group(1))
        self.sock = socket.create_connection(("127.0.0.1", self.port), 5)
        self.sock.settimeout(10)
        self.rfile = self.sock.makefile("rb")
        self.lock = threading.Lock()

    def call(self, **req):
        with self.lock:
            self.sock.sendall((json.dumps(req) + "\n").encode())
            line = self.rfile.readline()
        if not line:
            raise RuntimeError("faultproxy closed the control connection")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError("faultproxy %s: %s" % (req.get("cmd"), reply.get("error")))
        return reply

    def add(self, name, target, listen=0, host="127.0.0.1"):
        return self.call(cmd="add", name=name, target=target, listen=listen, host=host)["listen"]

    def cut(self, *names, mode="reset"):
        self.call(cmd="cut", names=list(names), mode=mode)

    def resume(self, *names):
        self.call(cmd="resume", names=list(names))

    def delay(self, name, ms):
        self.call(cmd="delay", name=name, ms=ms)

    def list(self):
        return {p["name"]: p for p in self.call(cmd="list")["proxies"]}

    def close(self):
        if self.proc is None:
            return
        for f in (self.rfile, self.sock, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        reap(self.proc, 5)
        if self.log is not subprocess.DEVNULL:
            self.log.close()
        self.proc = None


# ---- Nodes ---------------------------------------------------------------


class Node:
    def __init__(self, cluster, nid):
        self.cluster = cluster
        self.id = nid
        self.name = "n%d" % nid
        self.dir = os.path.join(cluster.dir, self.name)
        self.data_dir = os.path.join(self.dir, "data")
        self.key = os.path.join(self.dir, "node.key")
        self.master = None  # its master key file (master_key), if any
        self.pub_path = os.path.join(self.dir, "node.pub")
        self.config = os.path.join(self.dir, "node.conf")
        self.socket = os.path.join(self.dir, "node.sock")
        self.log_path = os.path.join(self.dir, "msced.log")
        self.port = 0
        self.pub = None
        self.sign_pub = None
        self.proc = None
        self.starts = 0
        self.env = {}  # extra environment for msced (e.g. libfaketime)
        self.offline = 0  # a dead port every peer address points to

    def __repr__(self):
        return "<%s pid=%s>" % (self.name, self.proc.pid if self.proc else None)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def log_since(self, offset):
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])


class Cluster:
    """n nodes named n1..nN with ids 1..N in cluster `name`.

    proxy: route every peer address through a fault proxy.
    extra_peers: {name: id} of peers configured on every node that never
        run (their keys are generated; the hostile probe uses them).
    log_retention, fsync, log_level: written into every [node] section.
    master: give every node a master key file (encryption at rest, as a
        deployment has it); False runs them with values in the clear.
    """

    def __init__(self, n, name="test", proxy=False, extra_peers=None,
                 log_retention=1000000, fsync=True, log_level="info",
                 master=True):
        self.n = n
        self.master = master
        self.name = name
        self.failed = False
        self.dir = tempfile.mkdtemp(prefix="msce-cl-", dir=os.environ.get("MSCE_TEST_TMP", "/tmp"))
        os.chmod(self.dir, 0o700)
        self.nodes = [Node(self, i + 1) for i in range(n)]
        self.by_id = {x.id: x for x in self.nodes}
        self.log_retention = log_retention
        self.fsync = fsync
        self.log_level = log_level
        self.proxy = None
        self.links = {}  # (from id, to id) -> proxy name
        self.link_ports = {}  # proxy name -> its listen port
        self.extra = {}  # name -> (id, key path, pub, dead port, sign pub)
        self.offline_nodes = []  # start_offline
        try:
            self._setup(proxy, extra_peers or {})
        except BaseException:
            self.close()
            raise

    # -- setup

    def keygen(self, prefix):
        argv = [MSCE, "keygen", "--out", prefix]
        r = subprocess.run(argv, capture_output=True, timeout=CLI_TIMEOUT)
        if r.returncode != 0:
            raise CliError([MSCE, "", ""] + argv[1:], r.returncode,
                           r.stdout.decode(), r.stderr.decode())
        with open(prefix + ".pub") as f:
            return f.read().strip()

    def master_keygen(self, path):
        argv = [MSCE, "keygen", "--master", path]
        r = subprocess.run(argv, capture_output=True, timeout=CLI_TIMEOUT)
        if r.returncode != 0:
            raise CliError([MSCE, "", ""] + argv[1:], r.returncode,
                           r.stdout.decode(), r.stderr.decode())

    @staticmethod
    def sign_pub(prefix):
        """The origin signing key msce keygen derived for prefix.key."""
        with open(prefix + ".sign.pub") as f:
            return f.read().strip()

    def _setup(self, proxy, extra_peers):
        npairs = self.n * (self.n - 1) if proxy else 0
        ports = free_ports(self.n + len(extra_peers) + npairs)
        proxy_ports = ports[self.n + len(extra_peers):]
        for node, port in zip(self.nodes, ports):
            os.makedirs(node.data_dir, mode=0o700)
            os.chmod(node.dir, 0o750)  # the socket's dir (DESIGN: 0750)
            node.port = port
            node.pub = self.keygen(os.path.join(node.dir, "node"))
            node.sign_pub = self.sign_pub(os.path.join(node.dir, "node"))
            if self.master:
                node.master = os.path.join(node.dir, "node.master")
                self.master_keygen(node.master)
        for (pname, pid), port in zip(sorted(extra_peers.items()), ports[self.n:]):
            prefix = os.path.join(self.dir, pname)
            # Nothing listens on port: the nodes dial it in vain.
            self.extra[pname] = (pid, prefix + ".key", self.keygen(prefix), port,
                                 self.sign_pub(prefix))
        if proxy:
            self.proxy = FaultProxy(os.path.join(self.dir, "faultproxy.log"))
            for a in self.nodes:
                for b in self.nodes:
                    if a is not b:
                        name = "%d->%d" % (a.id, b.id)
                        self.link_ports[name] = self.proxy.add(
                            name, b.port, listen=proxy_ports.pop())
                        self.links[(a.id, b.id)] = name
        for node in self.nodes:
            self.write_config(node)

    def peer_address(self, a, b):
        """Where node a dials node b."""
        if a.offline:
            return "127.0.0.1:%d" % a.offline  # nothing listens there
        if self.proxy:
            port = self.link_ports[self.links[(a.id, b.id)]]
        else:
            port = b.port
        return "127.0.0.1:%d" % port

    def write_config(self, node, path=None, only=None, **overrides):
        """(Re)writes node's config (or writes it to path: a second process
        with node's identity); overrides replace [node] settings. With only
        (node ids), it lists those peers and no extra ones."""
        settings = {
            "id": node.id,
            "name": node.name,
            "data_dir": node.data_dir,
            "key": node.key,
            "listen": "127.0.0.1:%d" % node.port,
            "socket": node.socket,
            "log_retention": self.log_retention,
            "fsync": "true" if self.fsync else "false",
            "log_level": self.log_level,
        }
        if node.master:
            settings["master_key"] = node.master
        settings.update(overrides)
        lines = ["[cluster]", "name = %s" % self.name, "", "[node]"]
        lines += ["%s = %s" % kv for kv in settings.items()]
        for other in self.nodes:
            if other.id == node.id or (only is not None and other.id not in only):
                continue
            lines += ["", "[peer %s]" % other.name, "id = %d" % other.id,
                      "address = %s" % self.peer_address(node, other),
                      "public_key = %s" % other.pub,
                      "sign_key = %s" % other.sign_pub]
        for pname, (pid, _key, pub, port, spub) in sorted(
                self.extra.items() if only is None else []):
            lines += ["", "[peer %s]" % pname, "id = %d" % pid,
                      "address = 127.0.0.1:%d" % port, "public_key = %s" % pub,
                      "sign_key = %s" % spub]
        with open(path or node.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        # msced refuses a config others may write, whatever the umask.
        os.chmod(path or node.config, 0o640)

    def start_offline(self, node, data_dir, name):
        """Starts msced as node (its id and key) on data_dir, a copy of a
        store such as a backup, with every peer address dead: the copy is
        read as it is and catches up with nothing. Returns the new Node,
        stopped with the cluster."""
        x = Node(self, node.id)
        x.name = name
        x.dir = os.path.join(self.dir, name)
        os.makedirs(x.dir, mode=0o750)
        x.data_dir = data_dir
        x.key, x.pub, x.sign_pub = node.key, node.pub, node.sign_pub
        x.master = node.master
        x.config = os.path.join(x.dir, "node.conf")
        x.socket = os.path.join(x.dir, "node.sock")
        x.log_path = os.path.join(x.dir, "msced.log")
        x.port, x.offline = free_ports(2)
        self.write_config(x)
        self.offline_nodes.append(x)
        return self.start(x)

    # -- processes

    def start(self, node, wait=True):
        assert not node.running, "%s is already running" % node.name
        log = open(node.log_path, "ab")
        log.write(("---- harness: start #%d ----\n" % (node.starts + 1)).encode())
        log.flush()
        try:
            env = None
            if node.env:
                env = dict(os.environ, **node.env)
            node.proc = spawn([MSCED, "-c", node.config],
                              stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                              cwd=node.dir, env=env)
        finally:
            log.close()
        node.starts += 1
        if wait:
            self.wait_ready(node)
        return node

    def begin(self, *nodes, settings=None):
        """A new city of nodes (default all): their configs list only each
        other until each writes; then every node gets its full config (the
        rest of the nodes and the extra peers: centers added later, as
        deploy/README.md adds them) and is restarted. An empty store writes
        in a new city only once every center its config lists has greeted
        it, so a test whose city starts with a center down begins so.
        settings: {node id: {[node] setting: value}} for both configs."""
        nodes = list(nodes) or list(self.nodes)
        ids = [x.id for x in nodes]
        settings = settings or {}
        for x in nodes:
            self.write_config(x, only=ids, **settings.get(x.id, {}))
            self.start(x, wait=False)
        for x in nodes:
            self.wait_ready(x)
        self.wait_writing(*nodes)
        for x in nodes:
            self.write_config(x, **settings.get(x.id, {}))
            self.restart(x)
        return self

    def wait_writing(self, *nodes, timeout=30):
        """Until each node (default all) takes writes. A new store takes
        them once every center its config lists has greeted it, or once it
        has caught up with one that writes: a test that cuts links right
        after the start could leave a center that never does."""
        for x in nodes or self.nodes:
            wait_until(lambda: self.status(x).get("writer"), timeout,
                       "%s to write" % x.name)

    def start_all(self):
        for node in self.nodes:
            if not node.running:
                self.start(node, wait=False)
        for node in self.nodes:
            self.wait_ready(node)
        return self

    def wait_ready(self, node, timeout=20):
        """Until the socket exists and status answers."""
        def ready():
            self.check_alive(node)
            if not os.path.exists(node.socket):
                return False
            try:
                return self.status(node)
            except Unreachable:
                return False
        return wait_until(ready, timeout, "%s to be ready" % node.name)

    def check_alive(self, *nodes):
        for node in nodes or [x for x in self.nodes if x.proc]:
            if node.proc is not None and node.proc.poll() is not None:
                raise AssertionError(
                    "%s (pid %d) exited with %s; log tail:\n%s"
                    % (node.name, node.proc.pid, node.proc.returncode, node.log_tail()))

    def stop(self, node, timeout=15):
        """SIGTERM, wait, SIGKILL after timeout. Returns the exit code."""
        if node.proc is None:
            return None
        rc = reap(node.proc, timeout)
        node.proc = None
        return rc

    def kill9(self, node):
        if node.proc is None:
            return None
        node.proc.kill()
        node.proc.wait(10)
        reap(node.proc, 0)
        node.proc = None
        return -9

    def restart(self, node, wait=True):
        rc = self.stop(node)
        self.start(node, wait=wait)
        return rc

    def stop_all(self, timeout=15):
        """SIGTERM to every node at once, then wait. Returns {name: rc}."""
        live = [x for x in self.nodes + self.offline_nodes if x.proc is not None]
        for x in live:
            if x.proc.poll() is None:
                x.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        rcs = {}
        for x in live:
            rcs[x.name] = reap(x.proc, max(0.1, deadline - time.monotonic()), term=False)
            x.proc = None
        return rcs

    def close(self):
        """Kills everything we started; idempotent."""
        for x in self.nodes + self.offline_nodes:
            if x.proc is not None:
                reap(x.proc, 0)  # SIGTERM, then SIGKILL at once
                x.proc = None
        if self.proxy:
            self.proxy.close()

    def finish(self):
        """After close: keep the dir (and print logs) if the test failed."""
        if self.failed:
            sys.stderr.write("\n==== cluster dir kept: %s\n" % self.dir)
            for x in self.nodes:
                sys.stderr.write("==== %s log tail\n%s\n" % (x.name, x.log_tail(60)))
        elif not os.environ.get("MSCE_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def sanitizer_reports(self):
        """Lines from AddressSanitizer/UBSan/LeakSanitizer in any log."""
        bad = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error:")
        return ["%s: %s" % (x.name, line) for x in self.nodes + self.offline_nodes
                for line in x.log_text().splitlines() if bad.search(line)]

    # -- CLI

    def cli(self, node, *args, check=True, timeout=CLI_TIMEOUT):
        argv = [MSCE, "-c", node.config] + [str(a) for a in args]
        deadline = time.monotonic() + 20
        while True:
            try:
                r = subprocess.run(argv, capture_output=True, timeout=timeout,
                                   stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired as e:
                raise CliError(argv, "timeout", (e.stdout or b"").decode(),
                               (e.stderr or b"").decode())
            out, err = r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")
            # A new or restored center holds writes back until its peers
            # have said what they hold of it: a client retries.
            if r.returncode == 1 and "writes wait until" in err and \
                    time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            break
        if check and r.returncode != 0:
            cls = Unreachable if r.returncode == 2 else CliError
            raise cls(argv, r.returncode, out, err)
        return r.returncode, out, err

    def put(self, node, collection, key, fields=None, **kw):
        """Writes fields (a dict, or keywords) at node. Returns (origin, seq)
        from "ok ORIGIN/SEQ"; raises CliError if not acknowledged."""
        fields = dict(fields or {}, **kw)
        args = ["put", collection, key] + ["%s=%s" % kv for kv in fields.items()]
        _, out, _ = self.cli(node, *args)
        m = re.search(r"^ok (\d+)/(\d+)\s*$", out, re.M)
        if not m:
            raise CliError(args, 0, out, "no 'ok ORIGIN/SEQ' in the output")
        return int(m.group(1)), int(m.group(2))

    def delete(self, node, collection, key):
        self.cli(node, "del", collection, key)

    def get(self, node, collection, key):
        """The record as parsed JSON, or None if not found. Any other
        refusal raises: a read that failed is not an absent record.
        Unmasked (--reveal: the unix socket is admin)."""
        rc, out, err = self.cli(node, "get", collection, key, "--json", "--reveal",
                                check=False)
        if rc == 1:
            try:
                code = json.loads(out)["error"]["code"]
            except (ValueError, KeyError, TypeError):
                code = None
            if code == "ENOTFOUND":
                return None
        if rc != 0:
            cls = Unreachable if rc == 2 else CliError
            raise cls([MSCE, "-c", node.config, "get", collection, key], rc, out, err)
        return json.loads(out)

    def values(self, node, collection, key):
        """{field: value} of the record, or None."""
        rec = self.get(node, collection, key)
        if rec is None:
            return None
        return {k: v["value"] for k, v in rec.get("fields", {}).items()}

    def status(self, node):
        """status --json as a dict. Exit 1 (degraded: a peer down) still
        carries the JSON; exit 2 raises Unreachable."""
        rc, out, err = self.cli(node, "status", "--json", check=False)
        if rc == 2:
            raise Unreachable([MSCE, "-c", node.config, "status"], rc, out, err)
        try:
            return json.loads(out)
        except ValueError:
            raise CliError([MSCE, "-c", node.config, "status"], rc, out,
                           err + " (status --json printed no JSON)")

    def counters(self, node):
        return self.status(node).get("counters", {})

    # -- convergence

    def running_nodes(self):
        return [x for x in self.nodes if x.running]

    def wait_converged(self, nodes=None, timeout=60):
        """Until every node in nodes (default: the running ones) reports the
        same digest and the same version vector. Returns {name: status}."""
        nodes = nodes or self.running_nodes()
        last = {}

        def converged():
            self.check_alive(*nodes)
            last.clear()
            for x in nodes:
                last[x.name] = self.status(x)
            digests = {s.get("digest") for s in last.values()}
            vvs = {json.dumps(norm_vv(s.get("vv")), sort_keys=True) for s in last.values()}
            return dict(last) if len(digests) == 1 and len(vvs) == 1 else None

        try:
            return wait_until(converged, timeout, "convergence of %s" %
                              ",".join(x.name for x in nodes))
        except AssertionError as e:
            lines = [str(e)]
            for name, s in sorted(last.items()):
                lines.append("  %s vv=%s digest=%s peers=%s" % (
                    name, norm_vv(s.get("vv")), (s.get("digest") or "")[:16],
                    [(p.get("node"), p.get("connected"), p.get("lag_changes"))
                     for p in s.get("peers", [])]))
            raise AssertionError("\n".join(lines)) from None

    def wait_counter(self, node, name, above, timeout=10):
        """Until counters[name] > above; returns the value."""
        def check():
            v = self.counters(node).get(name, 0)
            return v if v > above else None
        return wait_until(check, timeout, "%s counter %s > %s" % (node.name, name, above))

    def wait_connected(self, node, peer_ids, connected=True, timeout=30):
        """Until node's status shows each peer in peer_ids (dis)connected."""
        def check():
            peers = {p.get("node"): p for p in self.status(node).get("peers", [])}
            return all(bool(peers.get(i, {}).get("connected")) == connected
                       for i in peer_ids)
        return wait_until(check, timeout, "%s to see %s %s" % (
            node.name, sorted(peer_ids), "connected" if connected else "disconnected"))

    def wait_value(self, node, collection, key, field, value, timeout=30):
        """Until node holds value in field of the record."""
        def check():
            self.check_alive(node)
            v = self.values(node, collection, key)
            return v is not None and v.get(field) == value
        return wait_until(check, timeout, "%s to hold %s/%s %s=%r" % (
            node.name, collection, key, field, value))

    # -- faults

    def cut_link(self, a, b):
        """Cuts both directions between nodes a and b."""
        self.proxy.cut(self.links[(a.id, b.id)], self.links[(b.id, a.id)])

    def resume_link(self, a, b):
        self.proxy.resume(self.links[(a.id, b.id)], self.links[(b.id, a.id)])

    def partition(self, *groups):
        """Cuts every link between nodes of different groups (lists of
        nodes); nodes in no group are cut from everyone."""
        assert self.proxy, "Cluster(proxy=True) is needed to partition"
        group_of = {}
        for i, g in enumerate(groups):
            for x in g:
                group_of[x.id] = i
        names = [name for (a, b), name in self.links.items()
                 if group_of.get(a, -1 - a) != group_of.get(b, -1 - b)]
        if names:
            self.proxy.cut(*names)

    def heal(self):
        if self.proxy and self.links:
            self.proxy.resume("*")

    def probe(self, node, mode, peer=None, timeout_ms=5000, extra=()):
        """Runs msce-probe against node's listen port (not through the
        proxy) as extra peer `peer` (its id goes as --peer-id). Returns
        (rc, output)."""
        argv = [MSCE_PROBE, "--target", "127.0.0.1:%d" % node.port,
                "--cluster", self.name, "--server-key", node.pub,
                "--mode", mode, "--timeout-ms", str(timeout_ms)]
        if peer:
            argv += ["--key", self.extra[peer][1],
                     "--peer-id", str(self.extra[peer][0])]
        argv += list(extra)
        r = subprocess.run(argv, capture_output=True, timeout=timeout_ms / 1000 + 30)
        return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


# ---- unittest glue -------------------------------------------------------


class ClusterTestCase(unittest.TestCase):
    """Base class: make_cluster() starts a cluster that is stopped after the
    test (gracefully, checking exit codes and sanitizer reports in
    tearDown; killed in any case by a cleanup)."""

    def make_cluster(self, n, start=True, **kw):
        require_binaries()
        c = Cluster(n, **kw)
        self._clusters.append(c)
        self.addCleanup(c.close)
        if start:
            c.start_all()
        return c

    def run(self, result=None):
        self._clusters = []
        seed = int(os.environ.get("MSCE_SEED") or random.randrange(1 << 30))
        self.rng = random.Random(seed)
        before = len(result.failures) + len(result.errors) if result else 0
        result = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > before:
            sys.stderr.write("\n%s failed; replay with MSCE_SEED=%d\n" % (self.id(), seed))
            for c in self._clusters:
                c.failed = True
        for c in self._clusters:
            c.close()
            c.finish()
        return result

    def tearDown(self):
        for c in self._clusters:
            rcs = c.stop_all()
            bad = {k: v for k, v in rcs.items() if v not in (0, None)}
            reports = c.sanitizer_reports()
            self.assertEqual(bad, {}, "msced did not exit 0 on SIGTERM")
            self.assertEqual(reports, [], "sanitizer reports in the logs")
