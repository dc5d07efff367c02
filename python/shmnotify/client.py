"""Client: one connection to the broker (shn_connect .. shn_disconnect).

Thread safety is the C library's (shmnotify.h, "Threads"): every method of
a Client may be called from any threads at once; ``close`` waits until the
calls of other threads have returned (it first unblocks the ports' waiting
gets), because shn_disconnect may run only when no other thread is inside
the library on this client.  Every blocking call releases the GIL.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno as _errno
import json
import os
import struct
import threading
from typing import TYPE_CHECKING, Any, Dict, Iterable, Optional, Set, Union

from . import _batch, _lib
from .errors import BrokerUnavailable, InvalidArgument, closed, error
from .notification import Notification

if TYPE_CHECKING:
    from .port import Port

CANCELED = 1          #: notify(sync=True) result: a sink discontinued (SHN_NOTIFY_CANCELED)
DISCONTINUE = 1       #: an advise callback's answer: stop the SYNC batch (SHN_CALLBACK_DISCONTINUE)
CONTINUE = 0          #: an advise callback's answer: go on (also what None means)

_NOTIFY_SYNC = 1
_NOTIFY_NONBLOCK = 2

PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
Batch = Union[Notification, tuple, Iterable[Union[Notification, tuple]]]


def default_socket_path() -> str:
    """The socket a Client connects to when neither ``socket`` nor
    ``$SHMNOTIFY_SOCKET`` names one (shn_default_socket_path)."""
    buf = ctypes.create_string_buffer(4096)
    rc = _lib.shn_default_socket_path(buf, len(buf))
    if rc < 0:
        raise error(rc, "shn_default_socket_path")
    return buf.value.decode("utf-8", "surrogateescape")


class Client:
    """A connection to shmnotifyd; a context manager (``with Client() as c:``).

    ``socket``: the broker's Unix socket; None means ``$SHMNOTIFY_SOCKET``,
    then the per-user default (``default_socket_path()``).  ``name``, when
    given, is set with ``set_name``.  Raises ``BrokerUnavailable`` when no
    broker listens there.
    """

    def __init__(self, socket: Optional[PathArg] = None, *, name: Optional[str] = None):
        self._handle: Optional[int] = None
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._users = 0
        self._closing = False
        self._ports: Set[Any] = set()
        path = None if socket is None else os.fsencode(socket)
        h = _lib.c_client_p()
        rc = _lib.shn_connect(path, ctypes.byref(h))
        if rc < 0:
            where = os.fsdecode(path) if path is not None else \
                os.environ.get("SHMNOTIFY_SOCKET") or default_socket_path()
            cls = BrokerUnavailable if rc in (-_errno.ENOENT, -_errno.ECONNREFUSED) else None
            raise error(rc, "shn_connect", f"socket {where}", cls)
        self._handle = h.value
        if name is not None:
            try:
                self.set_name(name)
            except BaseException:
                self.close()
                raise

    # -- the guard around every call: shn_disconnect only when none is inside
    def _enter(self) -> int:
        with self._lock:
            if self._closing or self._handle is None:
                raise closed("client")
            self._users += 1
            return self._handle

    def _leave(self) -> None:
        with self._lock:
            self._users -= 1
            if self._closing and self._users == 0:
                self._idle.notify_all()

    @property
    def closed(self) -> bool:
        """True once close() was called."""
        return self._handle is None or self._closing

    def close(self) -> None:
        """Close every port of the client and the connection.  Batches
        already accepted are still routed.  Idempotent.  Waits for calls of
        other threads to return (waiting gets and dispatches are unblocked
        first; a SYNC notify or one waiting for ring room is waited for)."""
        with self._lock:
            if self._closing or self._handle is None:
                return
            self._closing = True
            ports = list(self._ports)
        for p in ports:
            p._wake_for_close()
        with self._lock:
            while self._users:
                self._idle.wait()
            h, self._handle = self._handle, None
            self._ports.clear()
        for p in ports:
            p._forget()
        _lib.shn_disconnect(h)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_handle", None) is not None and not self._closing:
            try:
                self.close()
            except Exception:
                pass

    def __repr__(self) -> str:
        return f"<shmnotify.Client {'closed' if self.closed else 'open'}>"

    # -- ports
    def open_port(self, capacity: int = 0, overflow: str = "drop") -> "Port":
        """Open a port: a delivery ring of ``capacity`` bytes (0: the
        broker's default) and a wake-up descriptor.  ``overflow``: "drop"
        (a full port loses notifications and is told how many, an
        ``Overflow`` notification) or "block" (the publishers feeding it
        wait).  Raises InvalidArgument for a capacity above the broker's
        maximum."""
        from .port import Port

        if overflow not in ("drop", "block"):
            raise ValueError(f"shmnotify: overflow must be 'drop' or 'block', not {overflow!r}")
        if not isinstance(capacity, int) or not 0 <= capacity <= 0xFFFFFFFF:
            raise ValueError(f"shmnotify: capacity must be an int of 0..2^32-1 bytes, "
                             f"not {capacity!r}")
        opt = _lib.PortOptions(capacity, 1 if overflow == "block" else 0)
        ph = _lib.c_port_p()
        h = self._enter()
        try:
            rc = _lib.shn_port_open(h, ctypes.byref(opt), ctypes.byref(ph))
        finally:
            self._leave()
        if rc < 0:
            raise error(rc, "shn_port_open", f"capacity {capacity}, overflow {overflow}")
        port = Port(self, ph.value)
        with self._lock:
            self._ports.add(port)
        return port

    def _port_closed(self, port: Any) -> None:
        with self._lock:
            self._ports.discard(port)

    # -- publishing
    def notify(self, items: Batch, sync: bool = False, nonblock: bool = False) -> Optional[int]:
        """Publish ``items`` as one batch: subscribers see all of it or none,
        in order.  Items are ``Notification`` objects or ``(key, event,
        data)`` tuples (key and data bytes or str, str encoded as UTF-8); one
        alone is a batch of one.

        Returns None once the batch is accepted (asynchronous), or at once
        when nobody subscribed to any of its keys.  ``sync=True`` waits until
        every matching sink in every process consumed it and returns
        ``CANCELED`` when one answered ``DISCONTINUE``.  Do not use sync from
        the only thread that dispatches a matching port of this process: it
        would wait for itself.  ``nonblock=True`` raises ``WouldBlock``
        instead of waiting for room in the publish ring.

        Raises InvalidArgument / MessageTooLarge (both ValueErrors) naming
        the notification at fault, TypeError for items of the wrong type,
        BrokerGone while the broker is away (the library reconnects by
        itself; retry later), Timeout when a sync wait passed the
        ``set_sync_timeout`` bound.
        """
        seq = _batch.items_of(items)
        flags = (_NOTIFY_SYNC if sync else 0) | (_NOTIFY_NONBLOCK if nonblock else 0)
        try:
            arr, arena, n = _batch.pack(seq)
        except (TypeError, IndexError, struct.error, AttributeError):
            seq = _batch.normalize(seq)
            try:
                arr, arena, n = _batch.pack(seq)
            except (OverflowError, struct.error):
                raise InvalidArgument(_errno.EINVAL, _lib.strerror(-_errno.EINVAL), "shn_notify",
                                      _batch.explain(seq, _errno.EINVAL)) from None
        if n == 0:
            raise InvalidArgument(_errno.EINVAL, _lib.strerror(-_errno.EINVAL), "shn_notify",
                                  _batch.explain(seq, _errno.EINVAL))
        h = self._enter()
        try:
            rc = _lib.shn_notify(h, arr, n, flags)
        finally:
            self._leave()
        del arena   # the library copied the batch: the views may go now
        if rc == 0:
            return None
        if rc == CANCELED:
            return CANCELED
        detail = ""
        if rc in (-_errno.EINVAL, -_errno.EMSGSIZE):
            detail = _batch.explain(_batch.normalize(seq), -rc)
        raise error(rc, "shn_notify", detail)

    async def anotify(self, items: Batch, sync: bool = False) -> Optional[int]:
        """``notify`` for asyncio, without blocking the event loop: an
        asynchronous batch that fits the publish ring goes in at once;
        otherwise (``sync=True``, or a full ring) the call runs in the
        loop's default executor.  Cancelling the awaiting task does not
        cancel a batch the library accepted."""
        loop = asyncio.get_running_loop()
        if not sync:
            from .errors import WouldBlock
            try:
                return self.notify(items, nonblock=True)
            except WouldBlock:
                pass
        return await loop.run_in_executor(None, lambda: self.notify(items, sync=sync))

    def notify_gap(self, key: Union[bytes, str], lost: int, nonblock: bool = False) -> None:
        """Report that ``lost`` notifications of ``key`` were lost before
        they reached this broker (a bridge's remote loss): every
        subscription taking the key receives one ``Overflow`` with the
        count."""
        k = key.encode() if isinstance(key, str) else bytes(key)
        if not isinstance(lost, int) or not 0 < lost < 1 << 64:
            raise ValueError(f"shmnotify: lost must be an int of 1..2^64-1, not {lost!r}")
        h = self._enter()
        try:
            rc = _lib.shn_notify_gap(h, k, len(k), lost, _NOTIFY_NONBLOCK if nonblock else 0)
        finally:
            self._leave()
        if rc < 0:
            raise error(rc, "shn_notify_gap", f"key {k!r}")

    def set_sync_timeout(self, seconds: Optional[float]) -> None:
        """Bound the wait of ``notify(sync=True)``: past it, it raises
        ``Timeout`` while delivery goes on.  None: no limit (the default)."""
        ms = -1 if seconds is None else _ms(seconds)
        h = self._enter()
        try:
            rc = _lib.shn_set_sync_timeout(h, ms)
        finally:
            self._leave()
        if rc < 0:
            raise error(rc, "shn_set_sync_timeout")

    # -- subscriptions, names, statistics
    def unsubscribe(self, conn: int) -> None:
        """End subscription ``conn`` (from ``Port.subscribe``/``advise``).
        Returns once the broker removed the filter; the port then receives a
        ``HandleClose`` for it after its last notification.  Raises NotFound
        when conn is not a live subscription, BrokerGone when the broker is
        away (the subscription ended then too, without a HandleClose)."""
        if not isinstance(conn, int) or isinstance(conn, bool) or not 0 < conn < 1 << 64:
            raise TypeError(f"shmnotify: conn must be a connection number (int > 0), "
                            f"not {conn!r}")
        h = self._enter()
        try:
            rc = _lib.shn_unsubscribe(h, conn)
        finally:
            self._leave()
        if rc in (-_errno.ENOENT, -_errno.ENOTCONN):
            from .port import _forget_sink
            _forget_sink(conn, self)
        if rc < 0:
            raise error(rc, "shn_unsubscribe", f"conn {conn}")

    def set_name(self, name: Optional[str]) -> None:
        """Name the client in the broker's statistics (1..64 bytes of UTF-8
        without control characters); None or "" removes the name.  Sent
        again to every broker the library reconnects to."""
        if name is not None and not isinstance(name, str):
            raise TypeError(f"shmnotify: name must be a str or None, not {type(name).__name__}")
        raw = None if not name else name.encode("utf-8", "surrogatepass")
        if raw is not None and b"\0" in raw:
            raise InvalidArgument(_errno.EINVAL, _lib.strerror(-_errno.EINVAL), "shn_set_name",
                                  "a name may not contain NUL")
        h = self._enter()
        try:
            rc = _lib.shn_set_name(h, raw)
        finally:
            self._leave()
        if rc < 0:
            raise error(rc, "shn_set_name", f"name {name!r}")

    def stats(self) -> Dict[str, Any]:
        """The broker's statistics document (docs/protocol.md), parsed."""
        out = ctypes.c_void_p()
        h = self._enter()
        try:
            rc = _lib.shn_stats_json(h, ctypes.byref(out))
        finally:
            self._leave()
        if rc < 0:
            raise error(rc, "shn_stats_json")
        try:
            text = _lib.string_at(out.value, rc)
        finally:
            _lib.libc_free(out.value)
        result: Dict[str, Any] = json.loads(text)
        return result


def _ms(seconds: float) -> int:
    """A timeout in seconds as the library's milliseconds (rounded up: a
    wait is never shorter than asked)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"shmnotify: a timeout is a number of seconds or None, "
                        f"not {type(seconds).__name__}")
    if seconds != seconds or seconds < 0:
        raise ValueError(f"shmnotify: a timeout must be >= 0 seconds (None: no limit), "
                         f"not {seconds}")
    ms = int(seconds * 1000)
    if ms < seconds * 1000:
        ms += 1
    return min(ms, 0x7FFFFFFF)

