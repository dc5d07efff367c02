"""Bad arguments raise clear errors; errors carry errno and shn_strerror's text."""

from __future__ import annotations

import errno
import os
import threading

import pytest

import shmnotify


def test_no_broker(tmp_path):
    path = str(tmp_path / "nobody.sock")
    with pytest.raises(shmnotify.BrokerUnavailable) as ei:
        shmnotify.Client(path)
    e = ei.value
    assert e.errno == errno.ENOENT and isinstance(e, ConnectionError)
    assert "shmnotifyd" in e.strerror and path in str(e)


@pytest.mark.parametrize("batch, kind, words", [
    ([(b"k" * 257, 1, b"")], shmnotify.InvalidArgument, "257 bytes"),
    ([("k", 1 << 28, b"")], shmnotify.InvalidArgument, "reserved system bits"),
    ([("k", 0x80000001, b"")], shmnotify.InvalidArgument, "reserved system bits"),
    ([("k", 0, b"")], shmnotify.InvalidArgument, "application bit"),
    ([("k", -1, b"")], shmnotify.InvalidArgument, "32-bit mask"),
    ([("k", 1 << 40, b"")], shmnotify.InvalidArgument, "32-bit mask"),
    ([("", 1, b"")], shmnotify.InvalidArgument, "key is empty"),
    ([("k", 1, b"x" * 65537)], shmnotify.InvalidArgument, "65537 bytes"),
    ([("ok", 1, b""), ("k" * 70000, 1, b"")], shmnotify.InvalidArgument, "notification 1 of 2"),
    ([], shmnotify.InvalidArgument, "empty"),
])
def test_bad_batches(client, batch, kind, words):
    with client.open_port() as port:
        port.subscribe(None)
        with pytest.raises(kind) as ei:
            client.notify(batch)
        e = ei.value
        assert isinstance(e, ValueError) and isinstance(e, shmnotify.ShmnotifyError)
        assert e.errno in (errno.EINVAL, errno.EMSGSIZE)
        assert words in str(e), str(e)
        assert port.get(timeout=0.05) == []    # nothing of a refused batch went out


@pytest.mark.parametrize("batch, words", [
    ([(1, 1, b"")], "key must be bytes or str, not int"),
    ([("k", 1, 3.5)], "data must be bytes or str, not float"),
    ([("k", "1", b"")], "event must be an int, not str"),
    ([42], "expected a Notification or a (key, event, data) tuple, not int"),
    ([("k", 1, b"", "extra")], "tuple of 4"),
])
def test_wrong_types(client, batch, words):
    with pytest.raises(TypeError) as ei:
        client.notify(batch)
    assert words in str(ei.value), str(ei.value)


def test_subscribe_arguments(client):
    with client.open_port() as port:
        with pytest.raises(TypeError, match="key must be bytes, str or None"):
            port.subscribe(12)
        with pytest.raises(TypeError, match="events must be an int"):
            port.subscribe("k", events="all")
        with pytest.raises(ValueError, match="non-zero 32-bit mask"):
            port.subscribe("k", events=0)
        with pytest.raises(shmnotify.InvalidArgument) as ei:
            port.subscribe(b"k" * 257)
        assert ei.value.errno == errno.EINVAL and "shn_subscribe" in str(ei.value)
        with pytest.raises(TypeError, match="callback must be callable"):
            port.advise("k", None)
        with pytest.raises(ValueError, match="max must be"):
            port.get(0)
        with pytest.raises(ValueError, match="timeout must be >= 0"):
            port.get(timeout=-1)
        with pytest.raises(TypeError, match="seconds or None"):
            port.get(timeout="1")
    with pytest.raises(ValueError, match="overflow must be 'drop' or 'block'"):
        client.open_port(overflow="lose")
    with pytest.raises(shmnotify.InvalidArgument):
        client.open_port(capacity=1 << 31)          # above the broker's maximum
    with pytest.raises(shmnotify.InvalidArgument):
        client.set_name("bad\x01name")
    with pytest.raises(TypeError):
        client.set_name(5)


def test_unsubscribe_unknown(client):
    with client.open_port() as port:
        conn = port.subscribe("k")
        client.unsubscribe(conn)
        with pytest.raises(shmnotify.NotFound) as ei:
            client.unsubscribe(conn)
        assert ei.value.errno == errno.ENOENT and isinstance(ei.value, LookupError)
        assert isinstance(port.get(timeout=5)[0], shmnotify.HandleClose)
    with pytest.raises(TypeError):
        client.unsubscribe(0)


def test_closed_objects(broker):
    c = shmnotify.Client(broker.socket)
    port = c.open_port()
    port.close()
    port.close()                                    # idempotent
    with pytest.raises(shmnotify.Closed):
        port.get(timeout=0)
    with pytest.raises(shmnotify.Closed):
        port.subscribe("k")
    p2 = c.open_port()
    c.close()
    assert c.closed and p2.closed                   # the client closed its ports
    with pytest.raises(shmnotify.Closed) as ei:
        c.notify([("k", 1, b"")])
    assert isinstance(ei.value, ValueError) and "closed" in str(ei.value)
    c.close()


def test_one_reader_per_port(client):
    with client.open_port() as port:
        port.subscribe("k")
        started = threading.Event()
        result = []

        def reader():
            started.set()
            try:
                port.get(timeout=None)
            except shmnotify.Canceled as e:
                result.append(e)

        t = threading.Thread(target=reader)
        t.start()
        started.wait()
        import time
        time.sleep(0.1)                              # the thread waits inside get
        with pytest.raises(RuntimeError, match="another thread is reading this port"):
            port.get(timeout=0)
        port.unblock()
        t.join(10)
        assert not t.is_alive() and len(result) == 1
        assert result[0].errno == errno.ECANCELED


def test_prefix_subscription(client):
    """prefix=True is SHN_SUBSCRIBE_PREFIX: the port takes every key that
    begins with the prefix, and no other."""
    with client.open_port() as port:
        conn = port.subscribe("printers/", prefix=True)
        client.notify([("printers/lp0", 1, "a")])
        client.notify([("scanners/s0", 1, "b")])
        client.notify([("printers/lp1", 1, "c")])
        got = [n for _ in range(2) for n in port.get(timeout=5)]
        assert [(n.key, n.conn) for n in got] == [(b"printers/lp0", conn), (b"printers/lp1", conn)]
        assert port.get(timeout=0.05) == []


def test_error_text():
    e = shmnotify.errors.error(-errno.EAGAIN, "shn_notify")
    assert isinstance(e, shmnotify.WouldBlock) and isinstance(e, BlockingIOError)
    assert e.errno == errno.EAGAIN and "publish ring is full" in e.strerror
    assert str(e).startswith("shmnotify: shn_notify: ") and "[EAGAIN]" in str(e)
    assert os.strerror(errno.EAGAIN) != e.strerror   # shmnotify's own words


def test_close_while_another_thread_waits(broker):
    """close() unblocks a get waiting in another thread and waits for it, so
    shn_port_close / shn_disconnect never run under a reader."""
    for closer in ("port", "client"):
        c = shmnotify.Client(broker.socket)
        port = c.open_port()
        port.subscribe("k")
        result = []

        def reader():
            try:
                port.get(timeout=None)
            except shmnotify.ShmnotifyError as e:
                result.append(e)

        t = threading.Thread(target=reader)
        t.start()
        import time
        time.sleep(0.1)
        (port if closer == "port" else c).close()
        t.join(10)
        assert not t.is_alive() and isinstance(result[0], shmnotify.Canceled), closer
        assert port.closed
        c.close()
