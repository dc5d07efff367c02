#!/usr/bin/env python3
"""Publish one batch: each DATA one notification of KEY, in order.

    publisher.py [--socket PATH] [--event BITS] [--sync] KEY [DATA...]

With --sync it waits until every matching sink consumed the batch and
exits 3 when one answered DISCONTINUE (as `shmnotify publish --sync`).
"""

import argparse
import sys

import shmnotify


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket")
    ap.add_argument("--event", type=lambda s: int(s, 0), default=1,
                    help="event bits 0-27, decimal or 0x hex (default 1)")
    ap.add_argument("--sync", action="store_true")
    ap.add_argument("key")
    ap.add_argument("data", nargs="*")
    a = ap.parse_args()
    batch = [shmnotify.Notification(a.key, a.event, d) for d in a.data or [""]]
    with shmnotify.Client(a.socket, name="publisher.py") as client:
        r = client.notify(batch, sync=a.sync)
    if r is shmnotify.CANCELED:
        print("publisher.py: a sink answered DISCONTINUE", file=sys.stderr)
        return 3
    print(f"published {len(batch)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (shmnotify.InvalidArgument, shmnotify.MessageTooLarge) as e:
        print(f"publisher.py: {e}", file=sys.stderr)
        sys.exit(2)
    except shmnotify.ShmnotifyError as e:
        print(f"publisher.py: {e}", file=sys.stderr)
        sys.exit(1)
