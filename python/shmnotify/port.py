"""Port: a delivery ring and its wake-up descriptor (shn_port_open ..
shn_port_close), read by get, iteration, dispatch or asyncio.

Thread safety is the C library's: get, dispatch and iteration from one
thread at a time per port (a second thread gets RuntimeError instead of
undefined behaviour), unblock and fileno from any thread at any time;
subscribe and advise from any thread, also from inside an advise callback.

Advise callbacks go through one module-wide ctypes trampoline that never
dies; each advise gets a token (its ``ctx``) naming its callback in
``_sinks``, dropped when its ``HandleClose`` was delivered or its port
closed, so a callback the library may still call is never freed.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno as _errno
import itertools
import threading
from typing import (TYPE_CHECKING, Any, AsyncIterator, Callable, Dict, Iterator, List,
                    Optional, Tuple, Union)

from . import _lib
from .client import DISCONTINUE, _ms
from .errors import Canceled, closed, error
from .notification import EV_ALL, EV_HANDLE_CLOSE, Notification, copy_out

if TYPE_CHECKING:
    from .client import Client

SUBSCRIBE_PREFIX = 1      #: shn_subscribe flag: the key is a prefix (SHN_SUBSCRIBE_PREFIX)
SUBSCRIBE_MONITOR = 0x100  #: every notification routed, whatever its key (root/owner only)

Callback = Callable[[List[Notification]], Optional[int]]
KeyArg = Union[bytes, str, None]


class _Sink:
    __slots__ = ("callback", "port", "conn", "token")

    def __init__(self, callback: Callback, port: "Port", token: int):
        self.callback = callback
        self.port = port
        self.conn = 0
        self.token = token


_sinks: Dict[int, _Sink] = {}
_sinks_lock = threading.Lock()
_tokens = itertools.count(1)


def _run_sink(ctx: Optional[int], arr: Optional[int], n: int) -> int:
    sink = _sinks.get(ctx or 0)
    if sink is None or not arr or not n:
        return 0
    try:
        notes = copy_out(memoryview(_lib.string_at(arr, n * _lib.NOTE_SIZE)), n)
        for x in notes:   # its last call: nothing comes to it after its HandleClose
            if x.event == EV_HANDLE_CLOSE and x.conn == sink.conn:
                with _sinks_lock:
                    _sinks.pop(sink.token, None)
                    sink.port._tokens.discard(sink.token)
        r = sink.callback(notes)
        return 1 if r is not None and r == DISCONTINUE else 0
    except BaseException as e:   # cannot cross the C frames: raised by dispatch()
        if sink.port._sink_error is None:
            sink.port._sink_error = e
        return 0


_trampoline = _lib.SINK_FN(_run_sink)


def _forget_sink(conn: int, client: "Client") -> None:
    """The subscription conn ended without a HandleClose to come."""
    with _sinks_lock:
        for tok, s in list(_sinks.items()):
            if s.conn == conn and s.port._client is client:
                del _sinks[tok]
                s.port._tokens.discard(tok)


def _key_arg(key: KeyArg) -> Optional[bytes]:
    if key is None:
        return None
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"shmnotify: key must be bytes, str or None (every key), "
                    f"not {type(key).__name__}")


def _mask_arg(events: int) -> int:
    if not isinstance(events, int) or isinstance(events, bool):
        raise TypeError(f"shmnotify: events must be an int mask, not {type(events).__name__}")
    if not 0 < events <= 0xFFFFFFFF:
        raise ValueError(f"shmnotify: events {events} is not a non-zero 32-bit mask "
                         f"(EV_ALL: every application event)")
    return events


class Port:
    """A port: made by ``Client.open_port``; a context manager that closes it.

    Read it with ``get``, by iterating it (``for n in port:``, which ends
    after ``unblock``), with ``dispatch`` (advise callbacks), or from asyncio
    (``await port.aget()``, ``async for n in port.aiter()``).  ``fileno()``
    is a descriptor for your own poll loop.
    """

    def __init__(self, client: "Client", handle: int):
        self._client = client
        self._handle: Optional[int] = handle
        self._state = threading.Lock()        # _handle against unblock/fileno/close
        self._reader = threading.Lock()       # the one get/dispatch at a time
        self._reader_thread = 0
        self._closing = False
        self._cap = 0
        self._buf = bytearray()
        self._view = memoryview(self._buf)
        self._addr = 0
        self._cbuf: Any = None
        self._tokens: set = set()
        self._sink_error: Optional[BaseException] = None
        self._async_waiting = False

    def __enter__(self) -> "Port":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<shmnotify.Port {'closed' if self._handle is None else 'open'}>"

    @property
    def closed(self) -> bool:
        return self._handle is None

    # -- subscriptions
    def subscribe(self, key: KeyArg = None, events: int = EV_ALL, prefix: bool = False) -> int:
        """Register a filter: notifications whose key equals ``key`` (None:
        every key; ``prefix=True``: every key starting with it) and whose
        event has a bit in ``events``.  Returns the connection number (an
        int > 0, never reused by this client) once the filter is active;
        ``Client.unsubscribe(conn)`` ends it."""
        return self._subscribe(key, events, prefix, None)

    def advise(self, key: KeyArg, callback: Callback, events: int = EV_ALL,
               prefix: bool = False) -> int:
        """Like ``subscribe``, with a callback that ``dispatch`` calls in its
        thread, once per delivered batch, with the list of that batch's
        notifications matching this filter (copies: they may be kept).
        System events go to every callback of the port, a HandleClose only
        to the callback whose subscription ended.  The callback may return
        ``DISCONTINUE`` to stop a SYNC batch (the remaining sinks never see
        it); an exception it raises is raised by ``dispatch`` after the
        batch.  It may subscribe, advise, unsubscribe and notify (not
        sync for a batch this thread would dispatch), not get, dispatch
        or close its own port."""
        if not callable(callback):
            raise TypeError(f"shmnotify: callback must be callable, not "
                            f"{type(callback).__name__}")
        return self._subscribe(key, events, prefix, callback)

    def _subscribe(self, key: KeyArg, events: int, prefix: bool,
                   callback: Optional[Callback]) -> int:
        k = _key_arg(key)
        mask = _mask_arg(events)
        flags = SUBSCRIBE_PREFIX if prefix else 0
        conn = ctypes.c_uint64()
        sink = None
        h = self._client._enter()
        try:
            ph = self._live()
            if callback is None:
                rc = _lib.shn_subscribe(ph, k, len(k) if k else 0, mask, flags,
                                        ctypes.byref(conn))
            else:
                sink = _Sink(callback, self, next(_tokens))
                with _sinks_lock:
                    _sinks[sink.token] = sink
                    self._tokens.add(sink.token)
                rc = _lib.shn_advise(ph, k, len(k) if k else 0, mask, flags, _trampoline,
                                     sink.token, ctypes.byref(conn))
                if rc >= 0:
                    sink.conn = conn.value
        finally:
            self._client._leave()
        del h
        if rc < 0:
            if sink is not None:
                with _sinks_lock:
                    _sinks.pop(sink.token, None)
                    self._tokens.discard(sink.token)
            what = "shn_advise" if callback else "shn_subscribe"
            raise error(rc, what, f"key {k!r}, events {mask:#x}"
                        + (", prefix" if prefix else ""))
        return conn.value

    # -- reading
    def _live(self) -> int:
        h = self._handle
        if h is None:
            raise closed("port")
        return h

    def _reserve(self, n: int) -> None:
        if n > self._cap:
            self._view.release()
            self._buf = bytearray(n * _lib.NOTE_SIZE)
            self._cbuf = (ctypes.c_char * len(self._buf)).from_buffer(self._buf)
            self._addr = ctypes.addressof(self._cbuf)
            self._view = memoryview(self._buf)
            self._cap = n

    def _begin_read(self) -> int:
        if not self._reader.acquire(False):
            if self._reader_thread == threading.get_ident():
                raise RuntimeError("shmnotify: get/dispatch on a port from inside its own "
                                   "advise callback")
            raise RuntimeError("shmnotify: another thread is reading this port (get, "
                               "dispatch or iteration: one thread at a time per port)")
        self._reader_thread = threading.get_ident()
        return 0

    def _end_read(self) -> None:
        self._reader_thread = 0
        self._reader.release()

    def _reading(self, call: Callable[[int], Any]) -> Any:
        """Run call(the port's C handle) as the port's one reader: inside
        the client's use count and the port's reader lock; what it returns."""
        client = self._client
        client._enter()
        try:
            self._begin_read()
            try:
                return call(self._live())
            finally:
                self._end_read()
        finally:
            client._leave()

    def get(self, max: int = 64, timeout: Optional[float] = None) -> List[Notification]:
        """Receive up to ``max`` notifications of one delivered batch.

        ``timeout`` in seconds (None: wait forever, 0: poll).  Returns the
        list, empty when nothing arrived in time.  Keys and data are copied
        into bytes before it returns (the library's views are reused by the
        next get).  System events come as ``Overflow``, ``BrokerState``,
        ``Reconnect`` and ``HandleClose`` notifications.  Raises Canceled
        after ``unblock()``.  The GIL is released while it waits.
        """
        if not isinstance(max, int) or not 0 < max <= 1 << 20:
            raise ValueError(f"shmnotify: max must be an int of 1..{1 << 20}, not {max!r}")
        ms = -1 if timeout is None else _ms(timeout)

        def call(ph: int) -> Union[int, List[Notification]]:
            if max > self._cap:
                self._reserve(max)
            rc = _lib.shn_port_get(ph, self._addr, max, ms)
            return copy_out(self._view, rc) if rc > 0 else rc
        r = self._reading(call)
        if isinstance(r, list):
            return r
        if r == -_errno.ETIMEDOUT:
            return []
        raise error(r, "shn_port_get")

    def __iter__(self) -> Iterator[Notification]:
        """Every notification as it arrives; ends after ``unblock()``."""
        while True:
            try:
                batch = self.get(64)
            except Canceled:
                return
            yield from batch

    def dispatch(self, timeout: Optional[float] = None) -> int:
        """Wait like ``get``, then run the advise callbacks in this thread,
        each once per delivered batch with its own subset.  Returns the
        number of notifications consumed (0 when nothing arrived in time).
        Raises the first exception a callback raised (after the batch),
        Canceled after ``unblock()``."""
        ms = -1 if timeout is None else _ms(timeout)

        def call(ph: int) -> Tuple[int, Optional[BaseException]]:
            self._sink_error = None
            rc = _lib.shn_port_dispatch(ph, ms)
            err, self._sink_error = self._sink_error, None
            return rc, err
        rc, err = self._reading(call)
        if err is not None:
            raise err
        if rc >= 0:
            return rc
        if rc == -_errno.ETIMEDOUT:
            return 0
        raise error(rc, "shn_port_dispatch")

    def unblock(self) -> None:
        """Make a waiting get/dispatch (or, if none waits, the next one)
        raise Canceled, and a ``for n in port`` loop end.  Any thread."""
        with self._state:
            ph = self._live()
            rc = _lib.shn_port_unblock(ph)
        if rc < 0:
            raise error(rc, "shn_port_unblock")

    def fileno(self) -> int:
        """A descriptor for your own poll/select/epoll loop: readable when
        notifications arrived after a get found the port empty, on
        ``unblock()``, on a broker loss and a reconnection.  Wait for it,
        never read or close it; drain with ``get(timeout=0)`` until it
        returns [] (an empty get re-arms it)."""
        with self._state:
            return int(_lib.shn_port_fd(self._live()))

    # -- asyncio
    async def aget(self, max: int = 64) -> List[Notification]:
        """``get`` for asyncio: waits through ``loop.add_reader`` on
        ``fileno()``, never blocking the loop.  Raises Canceled after
        ``unblock()``."""
        loop = asyncio.get_running_loop()
        while True:
            batch = self.get(max, timeout=0)
            if batch:
                return batch
            if self._async_waiting:
                raise RuntimeError("shmnotify: another task awaits this port (one reader "
                                   "at a time per port)")
            fd = self.fileno()
            fut = loop.create_future()
            self._async_waiting = True
            loop.add_reader(fd, _wake, fut)
            try:
                await fut
            finally:
                loop.remove_reader(fd)
                self._async_waiting = False

    async def aiter(self, max: int = 64) -> AsyncIterator[Notification]:
        """``async for n in port.aiter():`` every notification as it arrives;
        ends after ``unblock()``."""
        while True:
            try:
                batch = await self.aget(max)
            except Canceled:
                return
            for n in batch:
                yield n

    # -- closing
    def close(self) -> None:
        """Close the port: its subscriptions end, its memory is released.
        A get or dispatch waiting in another thread is unblocked first and
        waited for.  Idempotent."""
        if self._reader_thread == threading.get_ident():
            raise RuntimeError("shmnotify: a port cannot be closed from inside its own "
                               "get, dispatch or advise callback")
        if self._handle is None:
            return
        client = self._client
        try:
            client._enter()
        except Exception:
            return   # the client is closing: it closes this port itself
        try:
            self._wake_for_close()
            with self._reader:
                with self._state:
                    ph, self._handle = self._handle, None
            if ph is not None:
                rc = _lib.shn_port_close(ph)
                self._forget()
                client._port_closed(self)
                if rc < 0:
                    raise error(rc, "shn_port_close")
        finally:
            client._leave()

    def _wake_for_close(self) -> None:
        """Unblock a reader in another thread: the port is about to close."""
        with self._state:
            if self._handle is not None and self._reader.locked():
                _lib.shn_port_unblock(self._handle)

    def _forget(self) -> None:
        """The library closed the port (close, or the client's disconnect)."""
        self._handle = None
        with _sinks_lock:
            for tok in self._tokens:
                _sinks.pop(tok, None)
            self._tokens.clear()


def _wake(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)
