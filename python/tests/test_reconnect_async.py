"""A broker killed and restarted: every system event arrives, the library
reconnects with the same connection numbers.  asyncio consumers."""

from __future__ import annotations

import asyncio
import subprocess
import threading

import pytest

import shmnotify
from conftest import finish, spawn_py, until, wait_subscriptions


def _next_system(port, kind):
    while True:
        batch = port.get(timeout=10)
        assert batch, f"no {kind.__name__} within 10 s"
        for n in batch:
            if isinstance(n, kind):
                return n


def test_reconnect_after_broker_killed(broker, client):
    with client.open_port() as port:
        conn = port.subscribe("svc")
        client.notify([("svc", 1, "before")])
        assert port.get(timeout=5)[0].data == b"before"
        broker.kill()
        gone = _next_system(port, shmnotify.BrokerState)
        assert gone.event == shmnotify.EV_BROKER_STATE and gone.is_system
        with pytest.raises(shmnotify.BrokerGone) as ei:
            until(lambda: client.notify([("svc", 1, "lost")]) and False, "BrokerGone",
                  timeout=5)
        assert isinstance(ei.value, ConnectionError)
        broker.start()                          # a new broker on the same socket
        back = _next_system(port, shmnotify.Reconnect)
        assert back.event == shmnotify.EV_RECONNECT
        client.notify([("svc", 1, "after")])
        got = port.get(timeout=5)
        assert [(n.data, n.conn) for n in got] == [(b"after", conn)]


def test_asyncio_consumer(broker, client):
    """async for over a port while another process publishes; aget too."""
    async def main():
        with client.open_port() as port:
            port.subscribe("tick")
            pub = spawn_py("""
                import sys, shmnotify
                with shmnotify.Client(sys.argv[1]) as c:
                    for i in range(200):
                        c.notify([("tick", 1, str(i))])
                """, broker.socket)
            seen = []
            ticker = 0

            async def other_work():
                nonlocal ticker
                while True:
                    ticker += 1
                    await asyncio.sleep(0.001)
            side = asyncio.create_task(other_work())
            async for n in port.aiter():
                seen.append(int(n.data))
                if len(seen) == 200:
                    break
            side.cancel()
            finish(pub)
            assert seen == list(range(200))
            assert ticker > 0                   # the loop kept running
            # aget with nothing there waits without blocking the loop
            task = asyncio.ensure_future(port.aget())
            await asyncio.sleep(0.05)
            assert not task.done()
            await client.anotify([("tick", 2, "late")])
            batch = await asyncio.wait_for(task, 10)
            assert [(n.data, n.event) for n in batch] == [(b"late", 2)]
            # unblock ends an async for
            threading.Timer(0.05, port.unblock).start()
            async for _ in port.aiter():
                pytest.fail("nothing was published")
    asyncio.run(main())


def test_anotify_sync(broker, client):
    """await anotify(sync=True) waits for a sink in another process without
    blocking the event loop."""
    child = spawn_py("""
        import sys, time, shmnotify
        def sink(batch):
            time.sleep(0.3)
            return shmnotify.DISCONTINUE
        with shmnotify.Client(sys.argv[1]) as c, c.open_port() as port:
            port.advise("job", sink)
            print("ready", flush=True)
            while port.dispatch(timeout=10) and not sys.stdin.readline().startswith("end"):
                pass
        """, broker.socket, stdin=subprocess.PIPE)
    assert child.stdout.readline().strip() == b"ready"
    wait_subscriptions(client, 1)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)
        t = asyncio.create_task(ticker())
        r = await client.anotify([("job", 1, "x")], sync=True)
        t.cancel()
        return r, ticks
    r, ticks = asyncio.run(main())
    child.communicate(b"end\n", timeout=30)
    assert child.returncode == 0
    assert r is shmnotify.CANCELED
    assert ticks >= 5                            # the loop ran during the 0.3 s wait
