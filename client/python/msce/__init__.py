# SPDX-License-Identifier: Apache-2.0
"""msce for Python: the client of msce nodes, on libmsce.

    import msce
    c = msce.Client("/run/msce/node.sock")
    c.register(msce.Registration("FRA", "E1234", name="Amelie Laurent",
                                 document_type=msce.DocumentType.PASSPORT))
    c.case_put("shekou-7", msce.Case(person="FRA:E1234",
                                     category=msce.CaseCategory.LEASE,
                                     status=msce.CaseStatus.OPEN,
                                     center="shekou"))
    for ev in c.watch("case"):          # from now, across reconnects
        print(ev.key, ev.fields)

Errors raise MsceError subclasses (InvalidArgument, NotFound, ...) with
.code, .name and .message. The library is libmsce.so.1 (MSCE_LIBRARY
overrides where it is loaded from)."""

from . import _lib
from .client import (Client, Conflict, Cursor, Event, PeerStatus, Record,
                     Status, Value, Watch, WriteResult)
from .domain import (Case, CaseCategory, CaseStatus, District, DocumentType,
                     EventKind, EventRecord, Note, Registration)
from .errors import *  # noqa: F401,F403 (the exception classes)
from .errors import MsceError, error

__version__ = "0.2.0"


def library_version():
    """The version of the libmsce loaded."""
    return _lib.version().decode()


# The purposes a request may name (MSCE_PURPOSES; docs/PROTOCOL.md
# "Personal data"): Client(purpose=...), Client.set_purpose.
PURPOSES = ("service", "case-work", "verification", "legal-request",
            "subject-access", "maintenance")

# The limits of <msce/msce_limits.h> (the tests check they agree).
MAX_COLLECTION = 32
MAX_KEY = 256
MAX_FIELD_NAME = 128
MAX_VALUE = 65536
MAX_FIELDS = 256
MAX_CHANGE = 1 << 20
MAX_RECORD_FIELDS = 1024
MAX_RECORD = 1 << 20
MAX_MESSAGE = 4 << 20
MAX_REPLY_UNIX = 64 << 20
MAX_BATCH = 10000
SCAN_DEFAULT_LIMIT = 100
MAX_SCAN_LIMIT = 10000
CONFLICTS_DEFAULT_LIMIT = 1000
PUT_DEFAULT_TIMEOUT_MS = 10000
MAX_WATCHES = 16
MAX_WATCHES_PER_KEY = 64
MAX_NODES = 64
MAX_ORIGINS = 128
