"""Publish and receive across processes: every field, batches whole and in
order, str and bytes, the C command-line client at either end."""

from __future__ import annotations

import json
import os
import subprocess

import shmnotify
from conftest import CLI, finish, spawn_py, until, wait_subscriptions


def test_roundtrip_fields(client):
    with client.open_port() as port:
        conn = port.subscribe("printers/lp0")
        assert isinstance(conn, int) and conn > 0
        assert client.notify([("printers/lp0", 1, "jam"),
                              shmnotify.Notification(b"printers/lp0", 0x2, b"cleared")]) is None
        got = port.get(16, timeout=5)
        assert [(n.key, n.event, n.data) for n in got] == [
            (b"printers/lp0", 1, b"jam"), (b"printers/lp0", 2, b"cleared")]
        assert [n.seq for n in got] == [1, 2]
        assert [(n.batch_index, n.batch_count) for n in got] == [(0, 2), (1, 2)]
        assert all(n.conn == conn and n.sender_pid == os.getpid() and
                   n.sender_uid == os.getuid() and n.batch_id == got[0].batch_id and
                   n.time_ns > 0 and type(n) is shmnotify.Notification for n in got)
        assert port.get(16, timeout=0.05) == []     # timed out: an empty list


def test_single_item_and_tuple_forms(client):
    with client.open_port() as port:
        port.subscribe(b"k")
        client.notify(("k", 4, b"\x00\xff"))               # one tuple alone: a batch of one
        client.notify(shmnotify.Notification("k", data="é"))  # one Notification alone
        a = port.get(timeout=5)
        b = port.get(timeout=5)
        assert (a[0].event, a[0].data, a[0].batch_count) == (4, b"\x00\xff", 1)
        assert (b[0].event, b[0].data) == (1, "é".encode())


def test_partial_get_keeps_batch(client):
    with client.open_port() as port:
        port.subscribe("k")
        client.notify([("k", 1, str(i)) for i in range(5)])
        first = port.get(2, timeout=5)
        rest = port.get(64, timeout=5)
        assert [n.data for n in first + rest] == [str(i).encode() for i in range(5)]
        assert [n.batch_index for n in rest] == [2, 3, 4]


def test_batches_whole_and_in_order_from_another_process(broker, client):
    """A child publishes 300 batches of 1..64 notes; each arrives whole, in order."""
    with client.open_port(capacity=4 << 20, overflow="block") as port:
        port.subscribe("seq")
        child = spawn_py("""
            import sys, shmnotify
            with shmnotify.Client(sys.argv[1]) as c:
                i = 0
                for b in range(300):
                    size = b % 64 + 1
                    c.notify([("seq", 1 << (b % 28), str(i + j)) for j in range(size)])
                    i += size
                print(i)
            """, broker.socket)
        total = sum(b % 64 + 1 for b in range(300))
        got = []
        batches = 0
        while len(got) < total:
            batch = port.get(64, timeout=10)
            assert batch, f"only {len(got)} of {total} arrived"
            assert batch[0].batch_index == 0 and len(batch) == batch[0].batch_count, \
                "a get returned part of a batch or two batches"
            assert len({n.batch_id for n in batch}) == 1
            assert len({n.event for n in batch}) == 1 and batch[0].event == 1 << (batches % 28)
            got += batch
            batches += 1
        assert finish(child).strip() == str(total)
        assert [int(n.data) for n in got] == list(range(total))
        assert [n.seq for n in got] == list(range(1, total + 1))


def test_python_to_cli_listen(broker, client):
    """Python publishes; the C `shmnotify listen --json` receives, whole."""
    listen = subprocess.Popen([CLI, "listen", "--socket", broker.socket, "--json", "--count",
                               "3", "--timeout", "10000", "svc/state"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_subscriptions(client, 1)
    client.notify([("svc/state", 0x4, "starting"), ("svc/state", 0x4, "up"),
                   ("svc/state", 0x8, b"\xff\xfe")])
    out, err = listen.communicate(timeout=20)
    assert listen.returncode == 0, err
    rows = [json.loads(line) for line in out.decode().splitlines()]
    assert [r["data"] for r in rows[:2]] == ["starting", "up"]
    assert rows[2]["data"] is None and rows[2]["data_base64"] == "//4="
    assert [r["event"] for r in rows] == [4, 4, 8]
    assert [r["batch_index"] for r in rows] == [0, 1, 2]
    assert {r["batch_count"] for r in rows} == {3}
    assert {r["sender_pid"] for r in rows} == {os.getpid()}


def test_cli_publish_to_python(broker, client):
    """The C `shmnotify publish` publishes; Python receives the batch."""
    with client.open_port() as port:
        conn = port.subscribe("svc/state", events=0x6)
        subprocess.run([CLI, "publish", "--socket", broker.socket, "--event", "0x2",
                        "svc/state", "a", "b"], check=True, timeout=20)
        got = port.get(timeout=10)
        assert [(n.data, n.event, n.conn) for n in got] == [(b"a", 2, conn), (b"b", 2, conn)]
        assert got[0].sender_pid != os.getpid() and got[0].batch_count == 2


def test_masks_and_any_key(client):
    with client.open_port() as port:
        any_key = port.subscribe(None, events=0x1)
        exact = port.subscribe("a", events=0x2)
        client.notify([("a", 0x2, "x")])
        client.notify([("b", 0x1, "y")])
        client.notify([("b", 0x2, "never")])
        a = port.get(timeout=5)
        b = port.get(timeout=5)
        assert (a[0].data, a[0].conn) == (b"x", exact)
        assert (b[0].data, b[0].conn) == (b"y", any_key)
        assert port.get(timeout=0.05) == []


def test_iteration_ends_on_unblock(client):
    import threading

    with client.open_port() as port:
        port.subscribe("k")
        client.notify([("k", 1, str(i)) for i in range(3)])
        seen = []

        def stop_later():
            until(lambda: len(seen) == 3, "three notifications iterated")
            port.unblock()

        t = threading.Thread(target=stop_later)
        t.start()
        for n in port:
            seen.append(n.data)
        t.join()
        assert seen == [b"0", b"1", b"2"]


def test_stats_and_name(client):
    client.set_name("py-test")
    s = client.stats()
    assert s["broker"]["clients"] >= 1
    assert any(c.get("name") == "py-test" for c in s["clients"])
    client.set_name(None)
    assert not any(c.get("name") == "py-test" for c in client.stats()["clients"])
