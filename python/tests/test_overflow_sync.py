"""Losses reported with their count; SYNC batches and a Python sink that
answers DISCONTINUE; advise callbacks and dispatch."""

from __future__ import annotations

import subprocess

import pytest

import shmnotify
from conftest import finish, spawn_py, until, wait_subscriptions


def test_overflow_counts(client):
    """10,000 notifications into an unread 4096-byte DROP port: what arrives
    plus what Overflow reports lost is exactly what was published."""
    with client.open_port(capacity=4096) as port:
        conn = port.subscribe("flood")
        for i in range(10_000):
            client.notify([("flood", 1, str(i))])
        received, lost, reports, expect_seq = [], 0, 0, 1
        while True:
            batch = port.get(64, timeout=0.5)
            if not batch:
                break
            for n in batch:
                if isinstance(n, shmnotify.Overflow):
                    assert n.event == shmnotify.EV_OVERFLOW and n.lost > 0 and n.is_system
                    lost += n.lost
                    expect_seq += n.lost
                    reports += 1
                else:
                    assert n.seq == expect_seq and n.conn == conn
                    expect_seq += 1
                    received.append(int(n.data))
        assert reports >= 1 and lost > 0
        assert len(received) + lost == 10_000
        assert received == sorted(received)


SINK_CHILD = """
import sys, shmnotify
answer = shmnotify.DISCONTINUE if sys.argv[2] == "stop" else None
seen = []
def sink(batch):
    seen.extend(n.data for n in batch if not n.is_system)
    return answer
with shmnotify.Client(sys.argv[1]) as c, c.open_port() as port:
    port.advise("job", sink)
    print("ready", flush=True)
    while b"end" not in seen:
        port.dispatch(timeout=10)
    print(b",".join(seen).decode(), flush=True)
"""

@pytest.mark.parametrize("answer", ["stop", "go"])
def test_sync_with_python_sink(broker, client, answer):
    """A Python sink in another process answers DISCONTINUE (CANCELED) or
    nothing (None); a SYNC batch nobody watches returns None at once."""
    assert client.notify([("job", 1, "nobody")], sync=True) is None
    child = spawn_py(SINK_CHILD, broker.socket, answer)
    assert child.stdout.readline().strip() == b"ready"
    wait_subscriptions(client, 1)
    r = client.notify([("job", 1, "one")], sync=True)
    assert r is (shmnotify.CANCELED if answer == "stop" else None)
    client.notify([("job", 1, "end")])
    assert finish(child).strip() == "one,end"


def test_sync_discontinue_repeated(broker, client):
    """Every SYNC batch to a sink answering DISCONTINUE is CANCELED, batch
    after batch, and the sink saw each one, in order."""
    child = spawn_py(SINK_CHILD, broker.socket, "stop")
    assert child.stdout.readline().strip() == b"ready"
    wait_subscriptions(client, 1)
    sent = [f"b{i}" for i in range(20)]
    rs = [client.notify([("job", 1, x)], sync=True) for x in sent]
    client.notify([("job", 1, "end")])
    assert finish(child).strip() == ",".join(sent + ["end"])
    assert rs == [shmnotify.CANCELED] * len(sent)


def test_sync_timeout(broker, client):
    """A sink that never dispatches: the SYNC wait ends with Timeout."""
    slow = spawn_py("""
        import sys, time, shmnotify
        with shmnotify.Client(sys.argv[1]) as c, c.open_port() as port:
            port.subscribe("job")
            print("ready", flush=True)
            sys.stdin.readline()
        """, broker.socket, stdin=subprocess.PIPE)
    assert slow.stdout.readline().strip() == b"ready"
    client.set_sync_timeout(0.2)
    with pytest.raises(shmnotify.Timeout) as ei:
        client.notify([("job", 1, "x")], sync=True)
    assert isinstance(ei.value, TimeoutError)
    client.set_sync_timeout(None)
    out, err = slow.communicate(b"\n", timeout=30)
    assert slow.returncode == 0, err


def test_dispatch_callbacks(client):
    with client.open_port() as port:
        calls = {"a": [], "b": []}
        ca = port.advise("a", lambda b: calls["a"].append(b))
        cb = port.advise(None, lambda b: calls["b"].append(b), events=0x2)
        client.notify([("a", 1, "1"), ("x", 2, "2"), ("a", 2, "3")])
        assert port.dispatch(timeout=5) == 3
        assert [[(n.data, n.conn) for n in b] for b in calls["a"]] == [[(b"1", ca), (b"3", ca)]]
        assert [[(n.data, n.batch_index, n.batch_count) for n in b] for b in calls["b"]] == \
            [[(b"2", 0, 2), (b"3", 1, 2)]]
        assert port.dispatch(timeout=0.05) == 0     # timed out: 0
        # HandleClose to its own sink only; then its callback is released
        client.unsubscribe(ca)
        assert port.dispatch(timeout=5) == 1
        assert isinstance(calls["a"][-1][0], shmnotify.HandleClose) and len(calls["b"]) == 1
        assert len(port._tokens) == 1


def test_callback_exception_raised_by_dispatch(client):
    with client.open_port() as port:
        def bad(batch):
            raise KeyError("from the callback")
        port.advise("k", bad)
        client.notify([("k", 1, "x")])
        with pytest.raises(KeyError, match="from the callback"):
            port.dispatch(timeout=5)
        client.notify([("k", 1, "y")])
        with pytest.raises(KeyError):
            port.dispatch(timeout=5)


def test_callback_may_subscribe_and_notify(client):
    with client.open_port() as port, client.open_port() as other:
        other.subscribe("echo")

        def sink(batch):
            port.subscribe("later")
            client.notify([("echo", 1, batch[0].data)])
            with pytest.raises(RuntimeError):
                port.get(timeout=0)
        port.advise("k", sink)
        client.notify([("k", 1, "ping")])
        assert port.dispatch(timeout=5) == 1
        assert [n.data for n in other.get(timeout=5)] == [b"ping"]


def test_get_releases_the_gil(client):
    """While one thread waits in get, another runs Python code."""
    import threading
    import time

    with client.open_port() as port:
        port.subscribe("k")
        box = []
        t = threading.Thread(target=lambda: box.append(port.get(timeout=10)))
        t.start()
        spins = 0
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            spins += 1
        client.notify([("k", 1, "wake")])
        t.join(10)
        assert spins > 1000 and box and box[0][0].data == b"wake"
