"""No leaks over 10,000 open/close cycles: descriptors, threads, memory and
the callback registry come back to where they were."""

from __future__ import annotations

import gc
import os
import threading

import shmnotify
from shmnotify import port as _port


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_open_close_cycles(broker):
    """10,000 cycles: 1,000 of client+port+subscription+advise, and 9,000 of
    port+subscription+advise+get on one client."""
    def client_cycle():
        with shmnotify.Client(broker.socket) as c, c.open_port(capacity=4096) as p:
            p.subscribe("k")
            p.advise("k", lambda b: None)
            c.notify([("k", 1, "x")])
            assert p.get(timeout=5)

    for _ in range(50):                               # warm up allocator and caches
        client_cycle()
    gc.collect()
    fds, threads, rss = _fds(), threading.active_count(), _rss_kb()
    for _ in range(1000):
        client_cycle()
    with shmnotify.Client(broker.socket) as c:
        for i in range(9000):
            with c.open_port(capacity=4096) as p:
                p.subscribe("k")
                p.advise("k", lambda b: None)
                if i % 10 == 0:
                    c.notify([("k", 1, "x")])
                    assert p.get(timeout=5)
        assert not c._ports                           # every port left the client
    gc.collect()
    assert _fds() == fds, "descriptors leaked"
    assert threading.active_count() == threads
    assert not _port._sinks, "advise callbacks kept after their ports closed"
    grown = _rss_kb() - rss
    assert grown < 8 * 1024, f"RSS grew by {grown} KiB over 10,000 cycles"
    s = shmnotify.Client(broker.socket)
    try:
        assert s.stats()["broker"]["ports"] == 0
    finally:
        s.close()
