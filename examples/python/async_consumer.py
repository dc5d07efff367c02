#!/usr/bin/env python3
"""An asyncio consumer: a port read through the event loop, a ticker task
running beside it, and an acknowledgement published with anotify.

    async_consumer.py [--socket PATH] [--count N] KEY

Prints each notification of KEY and publishes "ack N" on KEY/ack for it.
"""

import argparse
import asyncio
import sys

import shmnotify


async def consume(a: argparse.Namespace) -> int:
    with shmnotify.Client(a.socket, name="async_consumer.py") as client, \
            client.open_port() as port:
        port.subscribe(a.key)
        print("consuming", flush=True)
        ticks = 0

        async def ticker() -> None:            # the loop stays free while we wait
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        side = asyncio.create_task(ticker())
        got = 0
        async for n in port.aiter():
            if n.is_system:
                print(f"{type(n).__name__}", flush=True)
                continue
            got += 1
            print(f"{n.key.decode()} {n.data.decode(errors='replace')} seq={n.seq}", flush=True)
            await client.anotify([(a.key + "/ack", 1, f"ack {n.seq}")])
            if got == a.count:
                break
        side.cancel()
        print(f"received {got}, the loop ticked meanwhile", flush=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("key")
    return asyncio.run(consume(ap.parse_args()))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except shmnotify.ShmnotifyError as e:
        print(f"async_consumer.py: {e}", file=sys.stderr)
        sys.exit(1)
