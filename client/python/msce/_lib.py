# SPDX-License-Identifier: Apache-2.0
"""libmsce through ctypes: the library, its structs and its functions.

Every struct here mirrors one of <msce/msce.h> member for member (the
tests compile a C program against the header and compare sizes and
offsets). Nothing else in the package touches ctypes directly.

The library is found, in order, at $MSCE_LIBRARY (a path), by the system's
search (ctypes.util.find_library), or as libmsce.so.1 on the loader's path.
"""

import ctypes
import ctypes.util
import os

# The ABI this module is written for: the SONAME libmsce.so.<SOVERSION>.
SOVERSION = 1

c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p
c_size_t = ctypes.c_size_t
c_int = ctypes.c_int
c_uint = ctypes.c_uint
c_uint32 = ctypes.c_uint32
c_uint64 = ctypes.c_uint64
c_int64 = ctypes.c_int64
POINTER = ctypes.POINTER

CURSOR_MAX = 128  # MSCE_CURSOR_MAX = MSCE_MAX_ORIGINS
NOTE_ID_SIZE = 71  # MSCE_NOTE_ID_SIZE
CURSOR_TEXT_MAX = CURSOR_MAX * 32 + 1
PUT_ALLOW_UNKNOWN_PERSON = 0x1


def _load():
    path = os.environ.get("MSCE_LIBRARY")
    if path:
        return ctypes.CDLL(path)
    found = ctypes.util.find_library("msce")
    candidates = [found] if found else []
    candidates.append("libmsce.so.%d" % SOVERSION)
    err = None
    for name in candidates:
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            err = e
    raise ImportError(
        "msce: cannot load libmsce (%s); install it, or set MSCE_LIBRARY "
        "to the path of libmsce.so.%d" % (err, SOVERSION))


lib = _load()


class Field(ctypes.Structure):  # struct msce_field
    _fields_ = [("name", c_char_p), ("value", c_void_p),
                ("value_len", c_size_t), ("has_base", c_int),
                ("base_hlc", c_uint64), ("base_origin", c_uint32)]


class WriteResult(ctypes.Structure):  # struct msce_write_result
    _fields_ = [("origin", c_uint32), ("seq", c_uint64), ("hlc", c_uint64),
                ("sites", c_uint32), ("reserved", c_void_p * 2)]


class PutOpts(ctypes.Structure):  # struct msce_put_opts
    _fields_ = [("min_sites", c_uint), ("timeout_ms", c_uint64),
                ("flags", c_uint), ("reserved", c_void_p * 3)]


class Put(ctypes.Structure):  # struct msce_put
    _fields_ = [("collection", c_char_p), ("key", c_char_p),
                ("fields", POINTER(Field)), ("nfields", c_size_t),
                ("is_delete", c_int)]


class Value(ctypes.Structure):  # struct msce_value
    _fields_ = [("name", c_char_p), ("value", c_void_p),
                ("value_len", c_size_t), ("hlc", c_uint64),
                ("origin", c_uint32), ("nconflicts", c_size_t),
                ("reserved", c_void_p * 2)]


class ScanOpts(ctypes.Structure):  # struct msce_scan_opts
    _fields_ = [("prefix", c_char_p), ("after", c_char_p), ("end", c_char_p),
                ("limit", c_uint)]


class PeerStatus(ctypes.Structure):  # struct msce_peer_status
    _fields_ = [("node", c_uint32), ("connected", c_int),
                ("lag_changes", c_uint64), ("lag_ms", c_uint64),
                ("last_contact_ms", c_uint64), ("clock_offset_ms", c_int64),
                ("reserved", c_void_p * 2)]


class Conflict(ctypes.Structure):  # struct msce_conflict
    _fields_ = [("collection", c_char_p), ("key", c_char_p),
                ("field", c_char_p), ("winner", Value), ("loser", Value),
                ("is_delete", c_int), ("reserved", c_void_p * 2)]


class Cursor(ctypes.Structure):  # struct msce_cursor
    _fields_ = [("n", c_size_t), ("origin", c_uint32 * CURSOR_MAX),
                ("seq", c_uint64 * CURSOR_MAX)]


class Event(ctypes.Structure):  # struct msce_event
    _fields_ = [("collection", c_char_p), ("key", c_char_p),
                ("is_delete", c_int), ("origin", c_uint32),
                ("seq", c_uint64), ("hlc", c_uint64),
                ("nfields", c_size_t), ("fields", POINTER(Value)),
                ("reserved", c_void_p * 2)]


REGISTRATION_FIELDS = ("name", "nationality", "document_type",
                       "document_number", "birth_date", "phone", "email",
                       "address", "district", "visa_type", "visa_expiry",
                       "registered_at", "center")
CASE_FIELDS = ("person", "category", "status", "center", "assignee",
               "summary")
NOTE_FIELDS = ("text", "center", "author", "written_at")
EVENT_FIELDS = ("title", "kind", "center", "starts_at", "ends_at",
                "capacity", "description")


class Registration(ctypes.Structure):  # struct msce_registration
    _fields_ = ([(n, c_char_p) for n in REGISTRATION_FIELDS]
                + [("reserved", c_void_p * 4)])


class Case(ctypes.Structure):  # struct msce_case
    _fields_ = ([(n, c_char_p) for n in CASE_FIELDS]
                + [("allow_unknown_person", c_int),
                   ("reserved", c_void_p * 4)])


class CaseNote(ctypes.Structure):  # struct msce_case_note
    _fields_ = ([(n, c_char_p) for n in NOTE_FIELDS]
                + [("reserved", c_void_p * 4)])


class EventRec(ctypes.Structure):  # struct msce_event_rec
    _fields_ = ([(n, c_char_p) for n in EVENT_FIELDS]
                + [("reserved", c_void_p * 4)])


# Opaque handles.
client_p = c_void_p
conninfo_p = c_void_p
record_p = c_void_p
page_p = c_void_p
status_p = c_void_p
conflicts_p = c_void_p

NOTE_FN = ctypes.CFUNCTYPE(c_int, c_void_p, c_char_p, record_p)


def _fn(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


version = _fn("msce_version", c_char_p)
strerror = _fn("msce_strerror", c_char_p, c_int)
errname = _fn("msce_errname", c_char_p, c_int)
errmsg = _fn("msce_errmsg", c_char_p, client_p)

conninfo_new = _fn("msce_conninfo_new", conninfo_p)
conninfo_free = _fn("msce_conninfo_free", None, conninfo_p)
conninfo_errmsg = _fn("msce_conninfo_errmsg", c_char_p, conninfo_p)
conninfo_add_unix = _fn("msce_conninfo_add_unix", c_int, conninfo_p, c_char_p)
conninfo_add_config = _fn("msce_conninfo_add_config", c_int, conninfo_p,
                          c_char_p)
conninfo_add_tcp = _fn("msce_conninfo_add_tcp", c_int, conninfo_p, c_char_p,
                       c_char_p)
conninfo_set_client_key = _fn("msce_conninfo_set_client_key", c_int,
                              conninfo_p, c_char_p, c_char_p)
conninfo_set_timeouts = _fn("msce_conninfo_set_timeouts", None, conninfo_p,
                            c_uint, c_uint)
conninfo_set_reconnect = _fn("msce_conninfo_set_reconnect", None, conninfo_p,
                             c_int, c_uint, c_uint)

connect = _fn("msce_connect", c_int, conninfo_p, POINTER(client_p))
close = _fn("msce_close", None, client_p)
center = _fn("msce_center", c_char_p, client_p)
set_timeout = _fn("msce_set_timeout", None, client_p, c_uint)
set_purpose = _fn("msce_set_purpose", c_int, client_p, c_char_p)
purpose = _fn("msce_purpose", c_char_p, client_p)

put_opts = _fn("msce_put_opts", c_int, client_p, c_char_p, c_char_p,
               POINTER(Field), c_size_t, POINTER(PutOpts), POINTER(WriteResult))
delete = _fn("msce_delete", c_int, client_p, c_char_p, c_char_p,
             POINTER(WriteResult))
put_batch_opts = _fn("msce_put_batch_opts", c_int, client_p, POINTER(Put),
                     c_size_t, POINTER(PutOpts), POINTER(WriteResult),
                     POINTER(c_int))
batch_errmsg = _fn("msce_batch_errmsg", c_char_p, client_p, c_size_t)

get_fields = _fn("msce_get_fields", c_int, client_p, c_char_p, c_char_p,
                 POINTER(c_char_p), c_size_t, POINTER(record_p))
record_collection = _fn("msce_record_collection", c_char_p, record_p)
record_key = _fn("msce_record_key", c_char_p, record_p)
record_nfields = _fn("msce_record_nfields", c_size_t, record_p)
record_field = _fn("msce_record_field", POINTER(Value), record_p, c_size_t)
record_seen_by = _fn("msce_record_seen_by", c_size_t, record_p,
                     POINTER(POINTER(c_uint32)))
record_free = _fn("msce_record_free", None, record_p)

scan = _fn("msce_scan", c_int, client_p, c_char_p, POINTER(ScanOpts),
           POINTER(page_p))
page_count = _fn("msce_page_count", c_size_t, page_p)
page_record = _fn("msce_page_record", record_p, page_p, c_size_t)
page_next = _fn("msce_page_next", c_char_p, page_p)
page_free = _fn("msce_page_free", None, page_p)

status_get = _fn("msce_status_get", c_int, client_p, POINTER(status_p))
status_node = _fn("msce_status_node", c_uint32, status_p)
status_name = _fn("msce_status_name", c_char_p, status_p)
status_digest = _fn("msce_status_digest", c_char_p, status_p)
status_npeers = _fn("msce_status_npeers", c_size_t, status_p)
status_peer = _fn("msce_status_peer", POINTER(PeerStatus), status_p,
                  c_size_t)
status_counter = _fn("msce_status_counter", c_uint64, status_p, c_char_p)
status_conflicts = _fn("msce_status_conflicts", c_uint64, status_p)
status_client = _fn("msce_status_client", c_char_p, status_p)
status_role = _fn("msce_status_role", c_char_p, status_p)
status_cursor = _fn("msce_status_cursor", None, status_p, POINTER(Cursor))
status_free = _fn("msce_status_free", None, status_p)

conflicts_list = _fn("msce_conflicts_list", c_int, client_p, c_char_p,
                     c_uint, POINTER(conflicts_p))
conflicts_count = _fn("msce_conflicts_count", c_size_t, conflicts_p)
conflicts_get = _fn("msce_conflicts_get", POINTER(Conflict), conflicts_p,
                    c_size_t)
conflicts_free = _fn("msce_conflicts_free", None, conflicts_p)
resolve = _fn("msce_resolve", c_int, client_p, c_char_p, c_char_p, c_char_p,
              c_void_p, c_size_t, POINTER(WriteResult))
backup = _fn("msce_backup", c_int, client_p, c_char_p, POINTER(c_uint64))

watch_from = _fn("msce_watch_from", c_int, client_p, c_char_p, c_int,
                 POINTER(Cursor))
watch_next = _fn("msce_watch_next", c_int, client_p, POINTER(Event),
                 c_uint64, POINTER(Cursor))
watch_cursor = _fn("msce_watch_cursor", None, client_p, POINTER(Cursor))
cursor_format = _fn("msce_cursor_format", c_int, POINTER(Cursor), c_char_p,
                    c_size_t)
cursor_parse = _fn("msce_cursor_parse", c_int, c_char_p, POINTER(Cursor))

domain_name = _fn("msce_domain_name", c_char_p, c_int, c_int)
domain_count = _fn("msce_domain_count", c_size_t, c_int)
registration_put = _fn("msce_registration_put", c_int, client_p,
                       POINTER(Registration), POINTER(WriteResult))
case_put = _fn("msce_case_put", c_int, client_p, c_char_p, POINTER(Case),
               POINTER(WriteResult))
case_note_put = _fn("msce_case_note_put", c_int, client_p, c_char_p,
                    POINTER(CaseNote), c_char_p, POINTER(WriteResult))
case_notes = _fn("msce_case_notes", c_int, client_p, c_char_p, NOTE_FN,
                 c_void_p)
event_put = _fn("msce_event_put", c_int, client_p, c_char_p, c_char_p,
                POINTER(EventRec), POINTER(WriteResult))
