"""The exceptions: one class per kind of failure, each an ``OSError`` that
carries the negative return value's errno and ``shn_strerror``'s text.

What is *not* an exception (the C API's outcomes a Python user expects as
values): a get that timed out is an empty list, a dispatch that timed out
is 0, a SYNC batch a sink discontinued is ``CANCELED``, and a loss is an
``Overflow`` notification with its count.
"""

from __future__ import annotations

import errno as _errno
from typing import Dict, Optional, Type

from . import _lib


class ShmnotifyError(OSError):
    """A call into libshmnotify failed.

    ``errno`` is the positive errno value (the C function returned its
    negative), ``strerror`` shn_strerror's explanation, ``function`` the C
    function that failed.
    """

    function: str

    def __init__(self, err: int, strerror: str, function: str = "", detail: str = ""):
        super().__init__(err, strerror)
        self.function = function
        self.detail = detail

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno or 0, str(self.errno))
        where = f"{self.function}: " if self.function else ""
        detail = f"{self.detail}: " if self.detail else ""
        return f"shmnotify: {where}{detail}{self.strerror} [{name}]"


class InvalidArgument(ShmnotifyError, ValueError):
    """EINVAL: a bad key, event, payload, flag or capacity (also a ValueError)."""


class MessageTooLarge(ShmnotifyError, ValueError):
    """EMSGSIZE: a key or payload above the broker's limits, or a batch that
    can never fit the publish ring (also a ValueError)."""


class WouldBlock(ShmnotifyError, BlockingIOError):
    """EAGAIN: the publish ring is full and ``nonblock=True`` was asked."""


class Canceled(ShmnotifyError):
    """ECANCELED: ``Port.unblock()`` interrupted (or will interrupt) a get or
    dispatch.  Iterating a port ends on it instead."""


class Timeout(ShmnotifyError, TimeoutError):
    """ETIMEDOUT where no empty result can say it: a ``sync=True`` notify
    bounded by ``Client.set_sync_timeout`` (delivery goes on)."""


class BrokerGone(ShmnotifyError, ConnectionError):
    """ENOTCONN: the broker went away; the library reconnects by itself, the
    ports then receive a ``Reconnect`` notification.  Retry with the same
    client."""


class BrokerUnavailable(ShmnotifyError, ConnectionError):
    """ENOENT/ECONNREFUSED at connect: no broker listens on the socket."""


class ProtocolMismatch(ShmnotifyError):
    """EPROTO/EPROTONOSUPPORT: library and broker speak different versions."""


class NotFound(ShmnotifyError, LookupError):
    """ENOENT: the connection number is not a live subscription."""


class AccessDenied(ShmnotifyError, PermissionError):
    """EACCES: the broker's access rules refuse this publish or subscribe."""


class LimitReached(ShmnotifyError):
    """ENOSPC/EUSERS: a limit of the broker (clients, ports, subscriptions,
    ring bytes) is reached."""


class NotSupported(ShmnotifyError):
    """EOPNOTSUPP: this broker or library is too old for the call."""


class Closed(ShmnotifyError, ValueError):
    """The client or port was closed (EBADF; raised by this package before
    any C call, like I/O on a closed Python file)."""


_BY_ERRNO: Dict[int, Type[ShmnotifyError]] = {
    _errno.EINVAL: InvalidArgument,
    _errno.EMSGSIZE: MessageTooLarge,
    _errno.EAGAIN: WouldBlock,
    _errno.ECANCELED: Canceled,
    _errno.ETIMEDOUT: Timeout,
    _errno.ENOTCONN: BrokerGone,
    _errno.ECONNREFUSED: BrokerUnavailable,
    _errno.EPROTO: ProtocolMismatch,
    _errno.EPROTONOSUPPORT: ProtocolMismatch,
    _errno.ENOENT: NotFound,
    _errno.EACCES: AccessDenied,
    _errno.ENOSPC: LimitReached,
    _errno.EUSERS: LimitReached,
    _errno.EOPNOTSUPP: NotSupported,
    _errno.EBADF: Closed,
}


def error(rc: int, function: str, detail: str = "",
          cls: Optional[Type[ShmnotifyError]] = None) -> ShmnotifyError:
    """The exception for a negative return value ``rc`` of ``function``."""
    if cls is None:
        cls = _BY_ERRNO.get(-rc, ShmnotifyError)
    return cls(-rc, _lib.strerror(rc), function, detail)


def closed(what: str) -> Closed:
    return Closed(_errno.EBADF, f"the {what} is closed: open a new one", "", "")
