# SPDX-License-Identifier: Apache-2.0
"""The msce client: a blocking connection to one of several centers, on
libmsce's msce_connect (so it reconnects, fails over and resumes watches
exactly as C programs do). A Client (or Watch) may be shared by threads:
its calls take turns (one request at a time on its connection), and
release the GIL while they wait; for requests in parallel, give each
thread its own Client."""

import ctypes
import dataclasses
import functools
import threading
from typing import Dict, Iterator, List, Optional, Tuple, Union

from . import _lib
from .domain import (Case, EventRecord, Note, Registration, to_struct)
from .errors import MsceError, error

_NO_TIMEOUT = 0xFFFFFFFF  # MSCE_NO_TIMEOUT


def _locked(f):
    """Runs the method holding self._lock: libmsce's clients are not
    thread-safe, and two threads in one would corrupt it."""
    @functools.wraps(f)
    def g(self, *a, **kw):
        with self._lock:
            return f(self, *a, **kw)
    return g


def _b(s):
    """str -> UTF-8 bytes; bytes as they are; None stays None."""
    if s is None or isinstance(s, bytes):
        return s
    return str(s).encode()


def _ms(seconds, default_none):
    if seconds is None:
        return default_none
    return max(1, int(seconds * 1000))


@dataclasses.dataclass(frozen=True)
class WriteResult:
    """The change a write made: its writer (origin), seq and hlc, and how
    many centers held it when it was acknowledged."""
    origin: int
    seq: int
    hlc: int
    sites: int


def _write_result(r):
    return WriteResult(r.origin, r.seq, r.hlc, r.sites)


@dataclasses.dataclass(frozen=True)
class Value:
    """A field's value (bytes) with its version; str() is the text."""
    value: bytes
    hlc: int
    origin: int
    conflicts: int = 0

    @property
    def text(self):
        return self.value.decode("utf-8", "replace")

    def __str__(self):
        return self.text


def _value(v):
    return ctypes.string_at(v.value, v.value_len) if v.value_len else b""


class Record(dict):
    """A record: a dict of field name -> Value, with .collection, .key and
    .seen_by (the centers known to hold its newest change; get only)."""

    def __init__(self, handle):
        super().__init__()
        self.collection = _lib.record_collection(handle).decode()
        self.key = _lib.record_key(handle).decode()
        for i in range(_lib.record_nfields(handle)):
            v = _lib.record_field(handle, i).contents
            self[v.name.decode()] = Value(_value(v), v.hlc, v.origin,
                                          v.nconflicts)
        nodes = ctypes.POINTER(ctypes.c_uint32)()
        n = _lib.record_seen_by(handle, ctypes.byref(nodes))
        self.seen_by = [nodes[i] for i in range(n)]

    def text(self):
        """{field: text}."""
        return {k: v.text for k, v in self.items()}

    def __repr__(self):
        return "Record(%r, %r, %r)" % (self.collection, self.key, self.text())


class Cursor:
    """A position in the change stream (per origin, the last seq seen).
    str(cursor) is its text form, to save; Cursor(text) reads it back."""

    def __init__(self, text=""):
        self._c = _lib.Cursor()
        rc = _lib.cursor_parse(_b(text), ctypes.byref(self._c))
        if rc:
            raise error(rc, "not a cursor: %r" % (text,))

    @classmethod
    def _of(cls, c):
        cur = cls()
        ctypes.memmove(ctypes.byref(cur._c), ctypes.byref(c),
                       ctypes.sizeof(c))
        return cur

    def items(self):
        """[(origin, seq)]."""
        return [(self._c.origin[i], self._c.seq[i]) for i in range(self._c.n)]

    def __str__(self):
        buf = ctypes.create_string_buffer(_lib.CURSOR_TEXT_MAX)
        _lib.cursor_format(ctypes.byref(self._c), buf, len(buf))
        return buf.value.decode()

    def __repr__(self):
        return "Cursor(%r)" % str(self)

    def __eq__(self, other):
        return isinstance(other, Cursor) and self.items() == other.items()


LAG_UNKNOWN = 2**64 - 1  # MSCE_LAG_UNKNOWN


def _lag(v):
    return None if v == LAG_UNKNOWN else v


@dataclasses.dataclass(frozen=True)
class PeerStatus:
    """lag_changes and lag_ms are None when not known: the peer has not
    spoken to the node since it started."""
    node: int
    connected: bool
    lag_changes: Optional[int]
    lag_ms: Optional[int]
    last_contact_ms: int
    clock_offset_ms: int


class Status:
    """A node's status: node, name, digest, peers, conflicts, cursor (its
    version vector: watch from it to get what commits after), client and
    role (who the node sees on this connection: the [client NAME] of the
    key, "local" over the unix socket, and "ro", "rw" or "admin"), and
    counter(name)."""

    def __init__(self, handle):
        self._h = handle
        self.node = _lib.status_node(handle)
        self.name = _lib.status_name(handle).decode()
        self.digest = _lib.status_digest(handle).decode()
        self.conflicts = _lib.status_conflicts(handle)
        self.client = (_lib.status_client(handle) or b"").decode()
        self.role = (_lib.status_role(handle) or b"").decode()
        self.peers = []
        for i in range(_lib.status_npeers(handle)):
            p = _lib.status_peer(handle, i).contents
            self.peers.append(PeerStatus(p.node, bool(p.connected),
                                         _lag(p.lag_changes), _lag(p.lag_ms),
                                         p.last_contact_ms, p.clock_offset_ms))
        c = _lib.Cursor()
        _lib.status_cursor(handle, ctypes.byref(c))
        self.cursor = Cursor._of(c)

    def counter(self, name):
        """A counter by name (e.g. "refused_unknown_key"); 0 if unknown."""
        return _lib.status_counter(self._h, _b(name))

    def __del__(self):
        if getattr(self, "_h", None) and _lib is not None:
            _lib.status_free(self._h)
            self._h = None


@dataclasses.dataclass(frozen=True)
class Conflict:
    """An open conflict: the visible winner and the concurrent loser it
    replaced (is_delete: the loser is the record's delete)."""
    collection: str
    key: str
    field: str
    winner: Value
    loser: Value
    is_delete: bool


@dataclasses.dataclass(frozen=True)
class Event:
    """One change from a watch: fields is {name: bytes} (empty for a
    delete)."""
    collection: str
    key: str
    is_delete: bool
    origin: int
    seq: int
    hlc: int
    fields: Dict[str, bytes]


def _fields(fields, bases):
    """A ctypes array of struct msce_field, and what keeps it alive."""
    keep = []
    items = list(fields.items())
    arr = (_lib.Field * max(1, len(items)))()
    for i, (name, value) in enumerate(items):
        nb, vb = _b(name), _b(value)
        keep += [nb, vb]
        arr[i].name = nb
        arr[i].value = ctypes.cast(ctypes.c_char_p(vb), ctypes.c_void_p)
        arr[i].value_len = len(vb)
        if bases and name in bases:
            hlc, origin = bases[name]
            arr[i].has_base = 1
            arr[i].base_hlc = hlc
            arr[i].base_origin = origin
    return arr, len(items), keep


class Client:
    """A connection to msce.

    centers: each a unix socket path (str), or (hostport, node_public_key)
    for TCP + Noise, in order of preference; config: a node's config file
    (its [node] socket) or a list of them. key_file and cluster: the
    client's secret key file and the cluster name, for TCP centers.
    timeout: seconds each request may wait for its answer (None: no
    limit); connect_timeout: seconds for connect and handshake; reconnect:
    after a lost connection, the next call reconnects (trying every center),
    a read is sent again once, and a watch resumes where it was.

        c = msce.Client("/run/msce/node.sock")
        c = msce.Client(("10.0.2.10:7402", "BASE64..."), key_file="desk.key",
                        cluster="shenzhen-msce")
    """

    def __init__(self, *centers, config=None, key_file=None, cluster=None,
                 timeout=30.0, connect_timeout=None, reconnect=True,
                 purpose=None):
        self._lock = threading.RLock()
        self._c = None
        self._ci = _lib.conninfo_new()
        if not self._ci:
            raise MemoryError("msce: out of memory")
        configs = [config] if isinstance(config, str) else list(config or [])
        for path in configs:
            self._check_ci(_lib.conninfo_add_config(self._ci, _b(path)))
        for c in centers:
            if isinstance(c, (tuple, list)):
                self._check_ci(_lib.conninfo_add_tcp(self._ci, _b(c[0]),
                                                     _b(c[1])))
            else:
                self._check_ci(_lib.conninfo_add_unix(self._ci, _b(c)))
        if key_file is not None:
            self._check_ci(_lib.conninfo_set_client_key(
                self._ci, _b(key_file), _b(cluster or "")))
        _lib.conninfo_set_timeouts(self._ci, _ms(connect_timeout, 0),
                                   _ms(timeout, _NO_TIMEOUT))
        _lib.conninfo_set_reconnect(self._ci, 1 if reconnect else 0, 0, 0)
        h = _lib.client_p()
        rc = _lib.connect(self._ci, ctypes.byref(h))
        self._c = h
        if rc:
            msg = _lib.errmsg(h).decode()
            self.close()
            raise error(rc, msg)
        if purpose:
            try:
                self.set_purpose(purpose)
            except MsceError:
                self.close()
                raise

    def _check_ci(self, rc):
        if rc:
            msg = _lib.conninfo_errmsg(self._ci).decode()
            _lib.conninfo_free(self._ci)
            self._ci = None
            raise error(rc, msg)

    def _fail(self, rc):
        raise error(rc, _lib.errmsg(self._c).decode())

    def _live(self):
        if not self._c:
            raise error(15, "this client is closed")  # ECLOSED
        return self._c

    @_locked
    def close(self):
        if self._c:
            _lib.close(self._c)
            self._c = None
        if self._ci:
            _lib.conninfo_free(self._ci)
            self._ci = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    @_locked
    def set_purpose(self, purpose):
        """Sends purpose (one of msce.PURPOSES; None or "" for none) with
        every later request: ro and rw clients must name one to read
        personal records (registration, case, case_note), which the node
        records in its audit log. Local and cheap; InvalidArgument if it
        is not one of them."""
        rc = _lib.set_purpose(self._live(), _b(purpose) if purpose else None)
        if rc:
            self._fail(rc)

    @property
    @_locked
    def purpose(self):
        """The purpose requests carry, "" if none."""
        return _lib.purpose(self._live()).decode()

    @property
    @_locked
    def center(self):
        """The center connected to ("unix:PATH" or "tcp:HOSTPORT")."""
        return _lib.center(self._live()).decode()

    # -- writes

    @_locked
    def put(self, collection, key, fields, *, min_sites=0, timeout=None,
            allow_unknown_person=False, bases=None):
        """Writes fields ({name: str or bytes}) of collection/key.

        min_sites: acknowledged once that many centers hold it (raises
        Timeout after `timeout` seconds, default 10, with the change still
        committed here: e.result). bases: {field: (hlc, origin)}, the
        versions this write is based on. allow_unknown_person: see Case."""
        arr, n, keep = _fields(fields, bases)
        opts = _lib.PutOpts()
        opts.min_sites = min_sites
        opts.timeout_ms = _ms(timeout, 0)
        opts.flags = (_lib.PUT_ALLOW_UNKNOWN_PERSON
                      if allow_unknown_person else 0)
        res = _lib.WriteResult()
        rc = _lib.put_opts(self._live(), _b(collection), _b(key), arr, n,
                           ctypes.byref(opts), ctypes.byref(res))
        if rc:
            e = error(rc, _lib.errmsg(self._c).decode())
            e.result = _write_result(res) if res.seq else None
            raise e
        return _write_result(res)

    @_locked
    def delete(self, collection, key):
        """Deletes a record (a tombstone that replicates)."""
        res = _lib.WriteResult()
        rc = _lib.delete(self._live(), _b(collection), _b(key),
                         ctypes.byref(res))
        if rc:
            self._fail(rc)
        return _write_result(res)

    @_locked
    def batch(self, puts, *, allow_unknown_person=False):
        """Writes many records in one request, committed together; each is
        checked on its own. puts: (collection, key, fields) tuples, fields
        None for a delete. Returns, per put, a WriteResult or the MsceError
        that refused it (not raised)."""
        keep = []
        arr = (_lib.Put * max(1, len(puts)))()
        for i, (coll, key, fields) in enumerate(puts):
            cb, kb = _b(coll), _b(key)
            keep += [cb, kb]
            arr[i].collection = cb
            arr[i].key = kb
            if fields is None:
                arr[i].is_delete = 1
            else:
                farr, n, k = _fields(fields, None)
                keep += [farr, k]
                arr[i].fields = farr
                arr[i].nfields = n
        opts = _lib.PutOpts()
        opts.flags = (_lib.PUT_ALLOW_UNKNOWN_PERSON
                      if allow_unknown_person else 0)
        res = (_lib.WriteResult * max(1, len(puts)))()
        codes = (ctypes.c_int * max(1, len(puts)))()
        rc = _lib.put_batch_opts(self._live(), arr, len(puts),
                                 ctypes.byref(opts), res, codes)
        if rc:
            self._fail(rc)
        return [_write_result(res[i]) if codes[i] == 0
                else error(codes[i], (_lib.batch_errmsg(self._live(), i)
                                      or b"").decode(errors="replace")
                           or "write %d of the batch refused" % i)
                for i in range(len(puts))]

    @_locked
    def resolve(self, collection, key, field, value):
        """Writes value over the field's current winner, closing its
        conflicts everywhere once replicated."""
        vb = _b(value)
        res = _lib.WriteResult()
        rc = _lib.resolve(self._live(), _b(collection), _b(key), _b(field),
                          vb, len(vb), ctypes.byref(res))
        if rc:
            self._fail(rc)
        return _write_result(res)

    # -- reads

    @_locked
    def get(self, collection, key, fields=None):
        """The record (raises NotFound), or only the named fields of it."""
        names = [_b(f) for f in (fields or [])]
        arr = (ctypes.c_char_p * max(1, len(names)))(*names)
        h = _lib.record_p()
        rc = _lib.get_fields(self._live(), _b(collection), _b(key), arr,
                             len(names), ctypes.byref(h))
        if rc:
            self._fail(rc)
        try:
            return Record(h)
        finally:
            _lib.record_free(h)

    @_locked
    def scan_page(self, collection, *, prefix=None, after=None, end=None,
                  limit=0):
        """One page: ([Record], next cursor or None). limit 0 = 100; a page
        may end early by size, so page until next is None."""
        opts = _lib.ScanOpts(_b(prefix), _b(after), _b(end), limit)
        h = _lib.page_p()
        rc = _lib.scan(self._live(), _b(collection), ctypes.byref(opts),
                       ctypes.byref(h))
        if rc:
            self._fail(rc)
        try:
            recs = [Record(_lib.page_record(h, i))
                    for i in range(_lib.page_count(h))]
            nxt = _lib.page_next(h)
            return recs, nxt.decode() if nxt is not None else None
        finally:
            _lib.page_free(h)

    def scan(self, collection, *, prefix=None, after=None, end=None,
             limit=0) -> Iterator[Record]:
        """Every record of collection (by prefix, or after/end bounds), in
        key order, page by page."""
        while True:
            recs, after = self.scan_page(collection, prefix=prefix,
                                         after=after, end=end, limit=limit)
            yield from recs
            if after is None:
                return

    @_locked
    def status(self):
        h = _lib.status_p()
        rc = _lib.status_get(self._live(), ctypes.byref(h))
        if rc:
            self._fail(rc)
        return Status(h)

    @_locked
    def conflicts(self, collection=None, limit=0) -> List[Conflict]:
        """Open conflicts of one collection or all (limit 0 = 1000)."""
        h = _lib.conflicts_p()
        rc = _lib.conflicts_list(self._live(), _b(collection), limit,
                                 ctypes.byref(h))
        if rc:
            self._fail(rc)
        try:
            out = []
            for i in range(_lib.conflicts_count(h)):
                c = _lib.conflicts_get(h, i).contents
                out.append(Conflict(
                    c.collection.decode(), c.key.decode(), c.field.decode(),
                    Value(_value(c.winner), c.winner.hlc, c.winner.origin),
                    Value(_value(c.loser), c.loser.hlc, c.loser.origin),
                    bool(c.is_delete)))
            return out
        finally:
            _lib.conflicts_free(h)

    @_locked
    def backup(self, path):
        """A consistent copy of the store, written by the node into the
        directory path on its machine (admin role). Returns its bytes."""
        n = ctypes.c_uint64()
        rc = _lib.backup(self._live(), _b(path), ctypes.byref(n))
        if rc:
            self._fail(rc)
        return n.value

    # -- watch

    def watch(self, collection=None, start="now"):
        """A Watch (an iterator of Event) on its own connection to the same
        centers: start "now" (what commits from here on), "start" (all the
        node's log holds) or a Cursor (or its text) saved earlier."""
        return Watch(self, collection, start)

    # -- typed collections

    @_locked
    def register(self, reg: Registration):
        """Writes a registration (key reg.key); checked here by the node's
        rules before it is sent."""
        keep = []
        s = to_struct(reg, _lib.Registration, _lib.REGISTRATION_FIELDS, keep)
        res = _lib.WriteResult()
        rc = _lib.registration_put(self._live(), ctypes.byref(s),
                                   ctypes.byref(res))
        if rc:
            self._fail(rc)
        return _write_result(res)

    @_locked
    def case_put(self, case_key, case: Case, *, allow_unknown_person=False):
        """Writes a case. The node refuses (NotFound) a case naming a person
        it has never seen, unless allow_unknown_person: the person was
        registered at another center and has not arrived yet."""
        keep = []
        s = to_struct(case, _lib.Case, _lib.CASE_FIELDS, keep)
        s.allow_unknown_person = 1 if allow_unknown_person else 0
        res = _lib.WriteResult()
        rc = _lib.case_put(self._live(), _b(case_key), ctypes.byref(s),
                           ctypes.byref(res))
        if rc:
            self._fail(rc)
        return _write_result(res)

    @_locked
    def add_note(self, case_key, text, *, center=None, author=None,
                 written_at=None):
        """Writes a new note of a case; returns its id (time first)."""
        keep = []
        s = to_struct(Note("", text, center, author, written_at),
                      _lib.CaseNote, _lib.NOTE_FIELDS, keep)
        nid = ctypes.create_string_buffer(_lib.NOTE_ID_SIZE)
        res = _lib.WriteResult()
        rc = _lib.case_note_put(self._live(), _b(case_key), ctypes.byref(s),
                                nid, ctypes.byref(res))
        if rc:
            self._fail(rc)
        return nid.value.decode()

    @_locked
    def notes(self, case_key) -> List[Note]:
        """Every note of a case, in time order."""
        out = []

        def one(ctx, note_id, rec):
            r = Record(rec)
            t = r.text()
            out.append(Note(note_id.decode(), t.get("text", ""),
                            t.get("center", ""), t.get("author"),
                            t.get("written_at")))
            return 0

        cb = _lib.NOTE_FN(one)
        rc = _lib.case_notes(self._live(), _b(case_key), cb, None)
        if rc:
            self._fail(rc)
        return out

    @_locked
    def event_put(self, date, event_id, ev: EventRecord):
        """Writes an event, key DATE/ID (e.g. "2026-12-05", "qa-visa")."""
        keep = []
        s = to_struct(ev, _lib.EventRec, _lib.EVENT_FIELDS, keep)
        res = _lib.WriteResult()
        rc = _lib.event_put(self._live(), _b(date), _b(event_id),
                            ctypes.byref(s), ctypes.byref(res))
        if rc:
            self._fail(rc)
        return _write_result(res)


_FROM = {"start": 0, "now": 1}  # enum msce_watch_from; 2 = a cursor


class Watch:
    """Changes as they commit, each once, in seq order per origin; a lost
    connection is re-established and the stream resumes after the last
    event given. Iterate it (blocks), or call next(timeout) (None when
    nothing came in time). .cursor is the position after the last event:
    save str(w.cursor) to resume later. Raises NotFound when the node's log
    no longer reaches back to the cursor: rescan, then watch from
    client.status().cursor."""

    def __init__(self, client, collection, start):
        self._lock = threading.RLock()
        self._c = _lib.client_p()
        rc = _lib.connect(client._ci, ctypes.byref(self._c))
        if rc:
            msg = _lib.errmsg(self._c).decode()
            self.close()
            raise error(rc, msg)
        cur = None
        if isinstance(start, str) and start in _FROM:
            how = _FROM[start]
        elif isinstance(start, (Cursor, str)):
            cur = start if isinstance(start, Cursor) else Cursor(start)
            how = 2
        else:
            self.close()
            raise ValueError("start: 'now', 'start' or a Cursor")
        rc = _lib.watch_from(self._c, _b(collection), how,
                             ctypes.byref(cur._c) if cur else None)
        if rc:
            msg = _lib.errmsg(self._c).decode()
            self.close()
            raise error(rc, msg)

    @_locked
    def next(self, timeout=None) -> Optional[Event]:
        """The next change, waiting at most timeout seconds (None: no
        limit); None if none came."""
        ev = _lib.Event()
        left = None if timeout is None else max(0.001, timeout)
        while True:
            # Slices of a second, so that Ctrl-C gets through.
            ms = 1000 if left is None else max(1, int(min(left, 1.0) * 1000))
            rc = _lib.watch_next(self._live(), ctypes.byref(ev), ms, None)
            if rc == 0:
                break
            if rc != 14:  # ETIMEOUT
                raise error(rc, _lib.errmsg(self._c).decode())
            if left is not None:
                left -= ms / 1000.0
                if left <= 0:
                    return None
        fields = {}
        for i in range(ev.nfields):
            v = ev.fields[i]
            fields[v.name.decode()] = _value(v)
        return Event(ev.collection.decode(), ev.key.decode(),
                     bool(ev.is_delete), ev.origin, ev.seq, ev.hlc, fields)

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    @property
    @_locked
    def cursor(self):
        c = _lib.Cursor()
        _lib.watch_cursor(self._live(), ctypes.byref(c))
        return Cursor._of(c)

    def _live(self):
        if not self._c:
            raise error(15, "this watch is closed")
        return self._c

    @_locked
    def close(self):
        if self._c:
            _lib.close(self._c)
            self._c = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()
