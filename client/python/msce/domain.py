# SPDX-License-Identifier: Apache-2.0
"""The typed collections: their allowed values as enums (taken from
libmsce, so Python and C can never disagree) and their records as
dataclasses. The node checks every rule again; a refused write raises
InvalidArgument naming the field and the rule."""

import dataclasses
import enum
from typing import Optional

from . import _lib

# enum msce_domain_list
_LISTS = {"DocumentType": 0, "District": 1, "CaseCategory": 2,
          "CaseStatus": 3, "EventKind": 4}


def _make(name, list_id):
    values = [_lib.domain_name(list_id, i).decode()
              for i in range(_lib.domain_count(list_id))]
    # str members: a member is its value on the wire ("in_progress").
    return enum.Enum(name, [(v.upper(), v) for v in values], type=str,
                     module=__name__)


DocumentType = _make("DocumentType", _LISTS["DocumentType"])
District = _make("District", _LISTS["District"])
CaseCategory = _make("CaseCategory", _LISTS["CaseCategory"])
CaseStatus = _make("CaseStatus", _LISTS["CaseStatus"])
EventKind = _make("EventKind", _LISTS["EventKind"])


def _text(v):
    if v is None:
        return None
    if isinstance(v, enum.Enum):
        v = v.value
    return str(v)


@dataclasses.dataclass
class Registration:
    """A person registered at a center; key NATIONALITY:DOCUMENT_NUMBER.
    Fields left None are not written."""
    nationality: str
    document_number: str
    name: Optional[str] = None
    document_type: Optional[DocumentType] = None
    birth_date: Optional[str] = None     # YYYY-MM-DD
    phone: Optional[str] = None          # E.164, "+8613800138000"
    email: Optional[str] = None
    address: Optional[str] = None
    district: Optional[District] = None
    visa_type: Optional[str] = None
    visa_expiry: Optional[str] = None    # YYYY-MM-DD
    registered_at: Optional[str] = None  # YYYY-MM-DDTHH:MM:SSZ
    center: Optional[str] = None

    @property
    def key(self):
        return "%s:%s" % (self.nationality, self.document_number)


@dataclasses.dataclass
class Case:
    """A case of a person (person: a registration key). The node refuses a
    case naming a person it has never seen unless allow_unknown_person is
    given to case_put (a registration made at another center that has not
    arrived yet)."""
    person: Optional[str] = None
    category: Optional[CaseCategory] = None
    status: Optional[CaseStatus] = None
    center: Optional[str] = None
    assignee: Optional[str] = None
    summary: Optional[str] = None


@dataclasses.dataclass
class Note:
    """A note of a case, as listed: its id (time first, so ids sort in time
    order) and its fields."""
    id: str
    text: str
    center: str
    author: Optional[str] = None
    written_at: Optional[str] = None


@dataclasses.dataclass
class EventRecord:
    """An event at a center; key DATE/ID."""
    title: Optional[str] = None
    kind: Optional[EventKind] = None
    center: Optional[str] = None
    starts_at: Optional[str] = None
    ends_at: Optional[str] = None
    capacity: Optional[int] = None
    description: Optional[str] = None


def to_struct(obj, struct_cls, names, keep):
    """The ctypes struct for a dataclass: each name's value as UTF-8 bytes
    (kept alive in keep), None as NULL."""
    s = struct_cls()
    for n in names:
        v = _text(getattr(obj, n, None))
        if v is not None:
            b = v.encode()
            keep.append(b)
            setattr(s, n, b)
    return s
