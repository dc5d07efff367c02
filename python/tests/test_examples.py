"""examples/python/ and the README's tour, run against a broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import PYPATH, REPO, child_env, finish, wait_subscriptions

EX = os.path.join(REPO, "examples", "python")


def _run(*args, **kw):
    return subprocess.Popen([sys.executable, *args], env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def test_watcher_and_publisher(broker, client):
    w = _run(os.path.join(EX, "watcher.py"), "--socket", broker.socket, "--count", "2", "svc/a")
    assert w.stdout.readline().strip() == b"watching"
    wait_subscriptions(client, 1)
    p = _run(os.path.join(EX, "publisher.py"), "--socket", broker.socket, "--event", "0x4",
             "svc/a", "up", "ready")
    assert finish(p).strip() == "published 2"
    lines = finish(w).splitlines()
    assert re.fullmatch(r"seq=1 event=0x4 key=svc/a data=up \[0/2\] pid=\d+", lines[0]), lines
    assert re.fullmatch(r"seq=2 event=0x4 key=svc/a data=ready \[1/2\] pid=\d+", lines[1]), lines
    bad = _run(os.path.join(EX, "publisher.py"), "--socket", broker.socket, "--event",
               str(1 << 28), "svc/a", "x")
    out, err = bad.communicate(timeout=30)
    assert bad.returncode == 2 and b"reserved system bits" in err


def test_async_consumer(broker, client):
    c = _run(os.path.join(EX, "async_consumer.py"), "--socket", broker.socket, "--count", "3",
             "jobs")
    assert c.stdout.readline().strip() == b"consuming"
    with client.open_port() as acks:
        acks.subscribe("jobs/ack")
        wait_subscriptions(client, 2)
        for i in range(3):
            client.notify([("jobs", 1, f"job{i}")])
        got = []
        while len(got) < 3:
            batch = acks.get(timeout=10)
            assert batch, f"acks so far: {got}"
            got += [n.data for n in batch]
    out = finish(c)
    assert got == [b"ack 1", b"ack 2", b"ack 3"]
    assert "jobs job2 seq=3" in out and "received 3" in out


def test_readme_tour(broker):
    """The README's two-minute tour, as written, with its socket path replaced."""
    with open(os.path.join(PYPATH, "README.md")) as f:
        text = f.read()
    m = re.search(r"## The two-minute tour.*?```python\n(.*?)```", text, re.S)
    assert m, "no python block in the tour"
    code = m.group(1).replace("/tmp/demo.sock", broker.socket)
    out = finish(_run("-c", code)).splitlines()
    assert out[0] == "1 0x1 b'printers/lp0' b'jam' [0/2]"
    assert out[1] == "2 0x2 b'printers/lp0' b'cleared' [1/2]"
    assert out[2].startswith("HandleClose(")
