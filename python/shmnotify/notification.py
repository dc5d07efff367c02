"""Notifications: what is published and what is delivered.

A ``Notification`` is an immutable named tuple.  Publishing reads its first
three fields (``key``, ``event``, ``data``); delivery sets the rest.  System
events (bits 28-31) are delivered as its subclasses ``Overflow``,
``BrokerState``, ``Reconnect`` and ``HandleClose``, never hidden.

Delivered keys and data are ``bytes`` copied out of the port's ring before
``Port.get`` returns: the library's zero-copy views are valid only until the
next get, dispatch or close on that port, so a copy is what may outlive the
call.  (There is no ``memoryview`` variant: a view that turns into freed
memory after the next get cannot be made safe from Python.)
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Type, Union

from . import _lib

EV_OVERFLOW = 1 << 28       #: data: little-endian uint64, the count lost
EV_BROKER_STATE = 1 << 29   #: the broker went away
EV_RECONNECT = 1 << 30      #: reconnected, filters restored
EV_HANDLE_CLOSE = 1 << 31   #: subscription ``conn`` ended
EV_ALL = 0x0FFFFFFF         #: every application event bit (0-27)
EV_SYSTEM = 0xF0000000      #: every system event bit (28-31)

KEY_MAX = 256       #: bytes in a key (SHN_KEY_MAX)
DATA_MAX = 65536    #: bytes of payload in one notification (SHN_DATA_MAX)
NAME_MAX = 64       #: bytes in a client's name (SHN_NAME_MAX)

BytesLike = Union[bytes, bytearray, memoryview, str]


class _Fields(NamedTuple):
    key: bytes
    event: int = 1
    data: bytes = b""
    seq: int = 0
    conn: int = 0
    batch_id: int = 0
    batch_index: int = 0
    batch_count: int = 0
    sender_pid: int = 0
    sender_uid: int = 0
    time_ns: int = 0


def _to_bytes(v: object, what: str) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    raise TypeError(f"shmnotify: {what} must be bytes or str, not {type(v).__name__}")


class Notification(_Fields):
    """One notification.

    To publish: ``Notification(key, event=1, data=b"")``; ``key`` and
    ``data`` are ``bytes`` or ``str`` (encoded as UTF-8), a key 1..256 bytes,
    ``event`` a non-zero mask of application bits 0-27.

    Delivered: ``key`` (``b""`` for a system event without one: an
    application key is never empty), ``data`` (bytes, a copy),
    ``event``, ``seq`` (per-port delivery sequence from 1; 0 for system
    events), ``conn`` (the subscription that matched), ``batch_id``
    (per-publisher batch number), ``batch_index``/``batch_count`` (the
    position in the delivered batch), ``sender_pid``/``sender_uid`` (from
    the kernel: trustworthy), ``time_ns`` (CLOCK_MONOTONIC at publish).
    """

    __slots__ = ()

    def __new__(cls, key: BytesLike, event: int = 1, data: BytesLike = b"",
                seq: int = 0, conn: int = 0, batch_id: int = 0, batch_index: int = 0,
                batch_count: int = 0, sender_pid: int = 0, sender_uid: int = 0,
                time_ns: int = 0) -> "Notification":
        return tuple.__new__(cls, (_to_bytes(key, "key"), event, _to_bytes(data, "data"), seq,
                                   conn, batch_id, batch_index, batch_count, sender_pid,
                                   sender_uid, time_ns))

    @property
    def is_system(self) -> bool:
        """True for a system event (overflow, broker state, reconnect, handle close)."""
        return (self.event & EV_SYSTEM) != 0

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(key={self.key!r}, event={self.event:#x}, "
                f"data={self.data!r}, seq={self.seq}, conn={self.conn}, "
                f"batch_id={self.batch_id}, batch=[{self.batch_index}/{self.batch_count}], "
                f"sender_pid={self.sender_pid})")


class Overflow(Notification):
    """SHN_EV_OVERFLOW: ``lost`` notifications for this port were dropped
    (the port was full under the drop policy, or a bridge reported a remote
    loss of ``key``).  ``seq`` jumps by the same count."""

    __slots__ = ()

    @property
    def lost(self) -> int:
        """The number of notifications lost."""
        return int.from_bytes(self.data[:8], "little")


class BrokerState(Notification):
    """SHN_EV_BROKER_STATE: the broker went away; publishing raises
    ``BrokerGone`` until the library has reconnected."""

    __slots__ = ()


class Reconnect(Notification):
    """SHN_EV_RECONNECT: the library reconnected; every filter is restored
    under its old connection number."""

    __slots__ = ()


class HandleClose(Notification):
    """SHN_EV_HANDLE_CLOSE: subscription ``conn`` ended (after its last
    notification)."""

    __slots__ = ()


_SYSTEM: Dict[int, Type[Notification]] = {
    EV_OVERFLOW: Overflow,
    EV_BROKER_STATE: BrokerState,
    EV_RECONNECT: Reconnect,
    EV_HANDLE_CLOSE: HandleClose,
}

_tnew = tuple.__new__
_string_at = _lib.string_at
_unpack = _lib.NOTE_IN.iter_unpack
_SIZE = _lib.NOTE_SIZE


# One copy of the record's bytes instead of two ctypes calls per note: a
# delivered batch's keys and data lie together, in order, in one record
# (the ring's or the library's private copy), and slicing one bytes object
# costs a fraction of a string_at call.  Used only when every note is a user
# notification whose key and data lie inside the span (checked before the
# span is read); otherwise each note is copied alone.
_SPAN_MAX = 64 * (256 + 65536 + 64)


def copy_out(view: memoryview, n: int, _string_at=_string_at, _tnew=_tnew,
             _unpack=_unpack, _size=_SIZE) -> List[Notification]:
    """Notifications from the first n shn_notification structs in view, keys
    and data copied into bytes (the views they point into are reused by the
    next get on the port).  The defaults bind hot names as locals."""
    out: List[Notification] = []
    append = out.append
    plain = Notification
    rows = list(_unpack(view[:n * _size]))
    if n > 1:
        lo = rows[0][3]
        last = rows[-1]
        hi = last[4] + last[2] if last[2] else last[3] + last[1]
        ok = 0 < lo < hi and hi - lo <= _SPAN_MAX * n
        if ok:
            for (ev, kl, dl, kp, dp, *_rest) in rows:
                if (ev > EV_ALL or not kl or kp < lo or kp + kl > hi or
                        (dl and (dp < lo or dp + dl > hi))):
                    ok = False
                    break
        if ok:
            blob = _string_at(lo, hi - lo)
            for (ev, kl, dl, kp, dp, conn, seq, bid, bi, bc, pid, uid, t) in rows:
                k = kp - lo
                d = dp - lo
                append(_tnew(plain, (blob[k:k + kl], ev, blob[d:d + dl] if dl else b"",
                                     seq, conn, bid, bi, bc, pid, uid, t)))
            return out
    system = _SYSTEM
    for (ev, kl, dl, kp, dp, conn, seq, bid, bi, bc, pid, uid, t) in rows:
        append(_tnew(plain if ev <= EV_ALL else system.get(ev, plain),
                     (_string_at(kp, kl) if kl else b"", ev,
                      _string_at(dp, dl) if dl else b"", seq, conn, bid, bi, bc, pid, uid, t)))
    return out
