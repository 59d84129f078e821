# SPDX-License-Identifier: Apache-2.0
"""Exceptions: every libmsce error code is an MsceError subclass carrying
the code, its name and the node's or library's message (which names the
field, the rule or the limit)."""

from . import _lib


class MsceError(Exception):
    """code: the msce error number (stable: it travels on the wire);
    name: its symbolic name ("EINVAL"); message: what was wrong."""

    code = None
    name = None

    def __init__(self, code, message=""):
        self.code = code
        self.name = _lib.errname(code).decode()
        self.message = message
        text = _lib.strerror(code).decode()
        super().__init__("%s (%s)%s" % (self.name, text,
                                        ": " + message if message else ""))


class OutOfMemory(MsceError): pass          # ENOMEM
class InvalidArgument(MsceError): pass      # EINVAL: a field broke a rule
class TooBig(MsceError): pass               # ETOOBIG: over a limit
class NotFound(MsceError): pass             # ENOTFOUND
class Corrupt(MsceError): pass              # ECORRUPT
class IOFailure(MsceError): pass            # EIO
class Full(MsceError): pass                 # EFULL
class ClockAhead(MsceError): pass           # ECLOCK
class Mismatch(MsceError): pass             # EMISMATCH
class ReadOnly(MsceError): pass             # EREADONLY
class ProtocolError(MsceError): pass        # EPROTO
class VersionError(MsceError): pass         # EVERSION
class PermissionDenied(MsceError): pass     # EPERM: the role may not
class Timeout(MsceError): pass              # ETIMEOUT
class Closed(MsceError): pass               # ECLOSED: connection lost
class AuthFailed(MsceError): pass           # EAUTH
class Busy(MsceError): pass                 # EBUSY: try again
class Gap(MsceError): pass                  # EGAP
class ConfigError(MsceError): pass          # ECONFIG
class Unavailable(MsceError): pass          # EUNAVAIL: no node answered


# In the order of the codes (common/msce_errors.h): code i -> class.
_BY_CODE = [None, OutOfMemory, InvalidArgument, TooBig, NotFound, Corrupt,
            IOFailure, Full, ClockAhead, Mismatch, ReadOnly, ProtocolError,
            VersionError, PermissionDenied, Timeout, Closed, AuthFailed, Busy,
            Gap, ConfigError, Unavailable]


def error(code, message=""):
    """The exception for a code (MsceError itself for one this module does
    not know, from a newer library)."""
    cls = _BY_CODE[code] if 0 < code < len(_BY_CODE) else MsceError
    return cls(code, message)
