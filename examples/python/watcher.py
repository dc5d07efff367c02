#!/usr/bin/env python3
"""Watch keys and print every notification, system events included.

    watcher.py [--socket PATH] [--events MASK] [--count N] [--prefix] [KEY...]

No KEY: every key.  Stops after N notifications (--count), on Ctrl-C, or
when the port is unblocked.
"""

import argparse
import sys

import shmnotify


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", help="the broker's socket (default: $SHMNOTIFY_SOCKET, then "
                                     "the per-user default)")
    ap.add_argument("--events", type=lambda s: int(s, 0), default=shmnotify.EV_ALL)
    ap.add_argument("--count", type=int, default=0, help="stop after N (0: never)")
    ap.add_argument("--prefix", action="store_true", help="each KEY is a key prefix")
    ap.add_argument("keys", nargs="*")
    a = ap.parse_args()
    with shmnotify.Client(a.socket, name="watcher.py") as client, client.open_port() as port:
        for key in a.keys or [None]:
            port.subscribe(key, events=a.events, prefix=a.prefix)
        print("watching", flush=True)
        seen = 0
        for n in port:                     # ends after port.unblock()
            if isinstance(n, shmnotify.Overflow):
                print(f"overflow: {n.lost} lost", flush=True)
            elif n.is_system:
                print(f"{type(n).__name__} conn={n.conn}", flush=True)
            else:
                print(f"seq={n.seq} event={n.event:#x} key={n.key.decode(errors='replace')} "
                      f"data={n.data.decode(errors='replace')} "
                      f"[{n.batch_index}/{n.batch_count}] pid={n.sender_pid}", flush=True)
                seen += 1
                if seen == a.count:
                    break
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except shmnotify.ShmnotifyError as e:
        print(f"watcher.py: {e}", file=sys.stderr)
        sys.exit(1)
