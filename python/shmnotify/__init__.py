"""shmnotify: publish and watch local events through shmnotifyd, from Python.

A thin layer over libshmnotify (ctypes) that keeps the C semantics: a batch
is delivered whole and in order or not at all, losses are reported with
their count, a SYNC batch waits for every sink.  See the package README::

    import shmnotify
    with shmnotify.Client() as c, c.open_port() as port:
        port.subscribe("printers/lp0")
        c.notify([("printers/lp0", 1, "jam")])
        for n in port.get(timeout=1):
            print(n.key, n.data, n.seq)
"""

from .client import CANCELED, CONTINUE, DISCONTINUE, Client, default_socket_path
from .errors import (AccessDenied, BrokerGone, BrokerUnavailable, Canceled, Closed,
                     InvalidArgument, LimitReached, MessageTooLarge, NotFound, NotSupported,
                     ProtocolMismatch, ShmnotifyError, Timeout, WouldBlock)
from .notification import (DATA_MAX, EV_ALL, EV_BROKER_STATE, EV_HANDLE_CLOSE, EV_OVERFLOW,
                           EV_RECONNECT, EV_SYSTEM, KEY_MAX, NAME_MAX, BrokerState, HandleClose,
                           Notification, Overflow, Reconnect)
from .port import SUBSCRIBE_MONITOR, SUBSCRIBE_PREFIX, Port

__version__ = "0.1.0"

__all__ = [
    "Client", "Port", "Notification", "Overflow", "BrokerState", "Reconnect", "HandleClose",
    "default_socket_path",
    "EV_ALL", "EV_SYSTEM", "EV_OVERFLOW", "EV_BROKER_STATE", "EV_RECONNECT", "EV_HANDLE_CLOSE",
    "KEY_MAX", "DATA_MAX", "NAME_MAX", "CANCELED", "DISCONTINUE", "CONTINUE",
    "SUBSCRIBE_PREFIX", "SUBSCRIBE_MONITOR",
    "ShmnotifyError", "InvalidArgument", "MessageTooLarge", "WouldBlock", "Canceled", "Timeout",
    "BrokerGone", "BrokerUnavailable", "ProtocolMismatch", "NotFound", "AccessDenied",
    "LimitReached", "NotSupported", "Closed",
]
