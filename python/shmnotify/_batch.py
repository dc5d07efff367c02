"""A Python batch as the shn_notification array shn_notify reads.

Keys and data are joined into one bytes object (the arena) and the array,
packed by one ``struct`` call, points into it; both live until shn_notify
returns, which is all the library needs (it copies the batch into its
publish ring).  When the library refuses a batch, ``explain`` looks for the
notification at fault so that the error names it.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any, Dict, List, Sequence, Tuple

from . import _lib
from .notification import DATA_MAX, EV_SYSTEM, KEY_MAX, Notification

_packers: Dict[int, struct.Struct] = {}
_single_types = (bytes, str, bytearray, memoryview)


def _packer(n: int) -> struct.Struct:
    s = _packers.get(n)
    if s is None:
        s = struct.Struct("@" + _lib.NOTE_OUT_FMT * n)
        if len(_packers) < 1024:
            _packers[n] = s
    return s


def items_of(items: Any) -> Sequence[Any]:
    """The batch as a sequence: one Notification or (key, event, data) tuple
    alone is a batch of one."""
    if isinstance(items, tuple) and items and isinstance(items[0], _single_types):
        return (items,)
    if isinstance(items, (list, tuple)):
        return items
    return list(items)


def normalize(items: Sequence[Any]) -> List[Notification]:
    """Every item as a Notification: the slow path, with clear TypeErrors."""
    out: List[Notification] = []
    for i, it in enumerate(items):
        if isinstance(it, Notification):
            out.append(it)
            continue
        if not isinstance(it, tuple) or not 1 <= len(it) <= 3:
            raise TypeError(f"shmnotify: notification {i}: expected a Notification or a "
                            f"(key, event, data) tuple, not {type(it).__name__}"
                            + (f" of {len(it)}" if isinstance(it, tuple) else ""))
        try:
            out.append(Notification(*it))
        except TypeError as e:
            msg = str(e)
            if msg.startswith("shmnotify: "):
                msg = msg[len("shmnotify: "):]
            raise TypeError(f"shmnotify: notification {i}: {msg}") from None
        if not isinstance(it[1] if len(it) > 1 else 1, int):
            raise TypeError(f"shmnotify: notification {i}: event must be an int, "
                            f"not {type(it[1]).__name__}")
    return out


def pack(items: Sequence[Any]) -> Tuple[bytes, bytes, int]:
    """(array, arena, n) for shn_notify; raises TypeError, struct.error or
    IndexError on an item it cannot read (the caller then normalizes)."""
    parts: List[bytes] = []
    flat: List[int] = []
    push = parts.append
    off = 0
    for it in items:
        if type(it) is tuple and len(it) != 3:
            raise TypeError("not a (key, event, data) tuple")   # normalize says more
        k = it[0]
        e = it[1]
        d = it[2]
        if type(k) is str:
            k = k.encode()
        if type(d) is str:
            d = d.encode()
        kl = len(k)
        dl = len(d)
        push(k)
        push(d)
        flat += (e, kl, dl, off, off + kl)
        off += kl + dl
    arena = b"".join(parts)
    base = ctypes.cast(arena, ctypes.c_void_p).value or 0
    n = len(items)
    flat[3::5] = [base + o for o in flat[3::5]]
    flat[4::5] = [base + o for o in flat[4::5]]
    return _packer(n).pack(*flat), arena, n


def explain(items: Sequence[Notification], err: int) -> str:
    """Which notification made the library refuse the batch, and why."""
    n = len(items)
    if n == 0:
        return "the batch is empty: publish at least one notification"
    for i, it in enumerate(items):
        where = f"notification {i} of {n}"
        e = it.event
        if not isinstance(e, int) or isinstance(e, bool):
            return f"{where}: event must be an int, not {type(e).__name__}"
        if e <= 0 or e > 0xFFFFFFFF:
            return f"{where}: event {e} is not a 32-bit mask with an application bit (0-27)"
        if e & EV_SYSTEM:
            return (f"{where}: event {e:#x} has reserved system bits 28-31 "
                    f"({e & EV_SYSTEM:#x}): use application bits 0-27 only")
        if len(it.key) == 0:
            return f"{where}: the key is empty: a key is 1..{KEY_MAX} bytes"
        if len(it.key) > KEY_MAX:
            return (f"{where}: the key is {len(it.key)} bytes, more than SHN_KEY_MAX "
                    f"({KEY_MAX}): use a shorter key")
        if len(it.data) > DATA_MAX:
            return (f"{where}: data is {len(it.data)} bytes, more than SHN_DATA_MAX "
                    f"({DATA_MAX}): split the payload")
    if err == 22:
        return f"a batch of {n} notifications: bad flags or batch"
    return (f"a batch of {n} notifications ({sum(len(x.key) + len(x.data) for x in items)} "
            f"bytes of keys and data): a key or payload above the broker's limits, or more "
            f"than half the publish ring: split it")
