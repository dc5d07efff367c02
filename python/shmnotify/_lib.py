"""Loading libshmnotify and declaring its functions for ctypes.

This module owns the one ``ctypes.CDLL`` of the process and the layout of
``shn_notification`` as the Python side reads and writes it.  Nothing here
knows about clients or ports; ``client.py`` and ``port.py`` call through
``lib``.

Why ctypes: it is in the standard library (no package to install, no
compiler at install time), its ``CDLL`` functions release the GIL around
every call (a blocking ``shn_port_get`` holds up no other Python thread),
and a ``CFUNCTYPE`` callback takes the GIL back when the library calls an
advise sink from ``shn_port_dispatch``.  cffi's ABI mode would do the same
with one more dependency.
"""

from __future__ import annotations

import ctypes
import os
import struct
from typing import List, Optional

SONAME = "libshmnotify.so.0"

# Where `make install` puts the library when ldconfig has not run yet (the
# dynamic loader's cache then does not know it): the default prefix's
# library directories, multiarch ones included.
_FALLBACK_DIRS = (
    "/usr/local/lib",
    "/usr/local/lib64",
    "/usr/local/lib/x86_64-linux-gnu",
    "/usr/local/lib/aarch64-linux-gnu",
    "/usr/lib",
    "/usr/lib64",
)


class LibraryNotFound(ImportError):
    """libshmnotify.so.0 could not be loaded (an ImportError: the package is
    unusable without it)."""


def _load() -> ctypes.CDLL:
    explicit = os.environ.get("SHMNOTIFY_LIBRARY")
    if explicit:
        try:
            return ctypes.CDLL(explicit, use_errno=False)
        except OSError as e:
            raise LibraryNotFound(
                f"shmnotify: SHMNOTIFY_LIBRARY={explicit!r} could not be loaded ({e}): "
                f"point it at an existing {SONAME} or unset it") from e
    tried: List[str] = []
    try:
        return ctypes.CDLL(SONAME)
    except OSError as e:
        tried.append(str(e))
    for d in _FALLBACK_DIRS:
        path = os.path.join(d, SONAME)
        if os.path.exists(path):
            try:
                return ctypes.CDLL(path)
            except OSError as e:
                tried.append(str(e))
    raise LibraryNotFound(
        f"shmnotify: {SONAME} not found ({'; '.join(tried)}): install shmnotify "
        f"(`make install`, then `ldconfig`) or set SHMNOTIFY_LIBRARY to the library's path")


lib = _load()

c_client_p = ctypes.c_void_p
c_port_p = ctypes.c_void_p


class PortOptions(ctypes.Structure):
    """shn_port_options."""
    _fields_ = [("capacity", ctypes.c_uint32), ("overflow", ctypes.c_uint32)]


class CNotification(ctypes.Structure):
    """shn_notification, as shmnotify.h declares it."""
    _fields_ = [
        ("event", ctypes.c_uint32),
        ("key_len", ctypes.c_uint16),
        ("data_len", ctypes.c_uint32),
        ("key", ctypes.c_void_p),
        ("data", ctypes.c_void_p),
        ("conn", ctypes.c_uint64),
        ("seq", ctypes.c_uint64),
        ("batch_id", ctypes.c_uint64),
        ("batch_index", ctypes.c_uint32),
        ("batch_count", ctypes.c_uint32),
        ("sender_pid", ctypes.c_int32),
        ("sender_uid", ctypes.c_uint32),
        ("time_ns", ctypes.c_uint64),
    ]


# The same layout for the struct module, which reads and writes a whole
# array in one call (attribute access on a ctypes Structure costs far more
# per field).  Delivered: every field; published: the five the library reads,
# the rest zero.
NOTE_SIZE = ctypes.sizeof(CNotification)
NOTE_IN = struct.Struct("@IHIPPQQQIIiIQ")   # native: the C compiler's alignment
NOTE_OUT_FMT = "IHIPP48x"
assert NOTE_IN.size == NOTE_SIZE == struct.calcsize("@" + NOTE_OUT_FMT), \
    "shn_notification's layout is not the one this package was written for"
assert CNotification.time_ns.offset == NOTE_SIZE - 8

SINK_FN = ctypes.CFUNCTYPE(ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


def _fn(name: str, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


shn_connect = _fn("shn_connect", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(c_client_p))
shn_disconnect = _fn("shn_disconnect", None, c_client_p)
shn_default_socket_path = _fn("shn_default_socket_path", ctypes.c_int,
                              ctypes.c_char_p, ctypes.c_size_t)
shn_set_name = _fn("shn_set_name", ctypes.c_int, c_client_p, ctypes.c_char_p)
shn_port_open = _fn("shn_port_open", ctypes.c_int, c_client_p,
                    ctypes.POINTER(PortOptions), ctypes.POINTER(c_port_p))
shn_port_close = _fn("shn_port_close", ctypes.c_int, c_port_p)
shn_port_fd = _fn("shn_port_fd", ctypes.c_int, c_port_p)
shn_port_get = _fn("shn_port_get", ctypes.c_int, c_port_p, ctypes.c_void_p,
                   ctypes.c_size_t, ctypes.c_int)
shn_port_unblock = _fn("shn_port_unblock", ctypes.c_int, c_port_p)
shn_port_dispatch = _fn("shn_port_dispatch", ctypes.c_int, c_port_p, ctypes.c_int)
shn_subscribe = _fn("shn_subscribe", ctypes.c_int, c_port_p, ctypes.c_char_p, ctypes.c_size_t,
                    ctypes.c_uint32, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint64))
shn_advise = _fn("shn_advise", ctypes.c_int, c_port_p, ctypes.c_char_p, ctypes.c_size_t,
                 ctypes.c_uint32, ctypes.c_uint, SINK_FN, ctypes.c_void_p,
                 ctypes.POINTER(ctypes.c_uint64))
shn_unsubscribe = _fn("shn_unsubscribe", ctypes.c_int, c_client_p, ctypes.c_uint64)
shn_notify = _fn("shn_notify", ctypes.c_int, c_client_p, ctypes.c_void_p, ctypes.c_size_t,
                 ctypes.c_uint)
shn_notify_gap = _fn("shn_notify_gap", ctypes.c_int, c_client_p, ctypes.c_char_p,
                     ctypes.c_size_t, ctypes.c_uint64, ctypes.c_uint)
shn_set_sync_timeout = _fn("shn_set_sync_timeout", ctypes.c_int, c_client_p, ctypes.c_int)
shn_stats_json = _fn("shn_stats_json", ctypes.c_int, c_client_p,
                     ctypes.POINTER(ctypes.c_void_p))
shn_strerror = _fn("shn_strerror", ctypes.c_char_p, ctypes.c_int)

_libc = ctypes.CDLL(None)
libc_free = _libc.free
libc_free.restype = None
libc_free.argtypes = [ctypes.c_void_p]

# the function ctypes.string_at wraps (one Python frame less per key and payload)
string_at = getattr(ctypes, "_string_at", ctypes.string_at)


def strerror(err: int) -> str:
    """shn_strerror's text for a return value (a negative errno)."""
    s: Optional[bytes] = shn_strerror(err)
    return s.decode("utf-8", "replace") if s is not None else f"error {err}"
