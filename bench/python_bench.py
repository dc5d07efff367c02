#!/usr/bin/env python3
"""python_bench.py - shmnotify from Python beside redis-py and pyzmq, in one run.

    python3 bench/python_bench.py [--build DIR] [--seconds S] [--runs N] [--roundtrips N]

Three transports as a Python user would use each, 1 publisher process -> 1
subscriber process, 64-byte payloads, 8-byte keys:

  shmnotify  the `shmnotify` package (python/), a private shmnotifyd (DIR's, else
             PATH's), the port opened with overflow="block" (lossless)
  redis      redis-py pub/sub through a private redis-server on a unix socket (no
             persistence); a batch is 64 PUBLISH commands in one pipeline
  zeromq     pyzmq PUB (bind) -> SUB (connect) over ipc://; a batch is 64
             two-frame messages (key, payload); default high-water marks

throughput: the publisher publishes batches of 64 for S seconds; delivered/s =
messages received / (first publish -> last message received).  Loss (zeromq
drops past its high-water mark) shows as a lower rate, never a higher one.
latency: ping-pong, every wait blocking; one-way = round trip / 2, p50 and
p99 of N round trips after 200 of warm-up.  Each figure is the median of
--runs runs; runs alternate between the transports.  Prints the table and
the ratios (shmnotify's throughput / the peer's, the peer's latency /
shmnotify's).  Peers whose module or server is missing are skipped (Debian:
python3-redis, python3-zmq, redis-server; `make bench` installs them).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BATCH = 64
PAYLOAD = b"p" * 64
KEY = b"k0000042"
IDLE = 0.6     # a subscriber stops after this long with nothing new


# -- transports: each gives publisher/subscriber endpoints in child processes --

class Shmnotify:
    name = "shmnotify"

    def __init__(self, tmp: str, build: Optional[str]):
        exe = os.path.join(build, "broker", "shmnotifyd") if build else shutil.which("shmnotifyd")
        if not exe or not os.path.exists(exe):
            raise RuntimeError("no shmnotifyd (give --build DIR or install it)")
        if build and "SHMNOTIFY_LIBRARY" not in os.environ:
            os.environ["SHMNOTIFY_LIBRARY"] = os.path.join(build, "libclient", "libshmnotify.so.0")
        sys.path.insert(0, os.path.join(REPO, "python"))
        import shmnotify  # noqa: F401  (fails here, not in a child)
        self.sock = os.path.join(tmp, "shn.sock")
        self.proc = subprocess.Popen([exe, "--socket", self.sock], stderr=subprocess.DEVNULL)
        wait_unix(self.sock, socket.SOCK_SEQPACKET)
        self.server = exe

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()

    def publisher(self, key: bytes):
        import shmnotify
        c = shmnotify.Client(self.sock)

        def send(batch: List[Tuple[bytes, bytes]]) -> None:
            c.notify([(k, 1, d) for k, d in batch])
        return send, c.close

    def subscriber(self, key: bytes):
        import shmnotify
        c = shmnotify.Client(self.sock)
        p = c.open_port(capacity=4 << 20, overflow="block")
        p.subscribe(key)

        def recv(timeout: float) -> List[bytes]:
            return [n.data for n in p.get(BATCH, timeout=timeout)]
        return recv, c.close


class Redis:
    name = "redis"

    def __init__(self, tmp: str, build: Optional[str]):
        import redis  # noqa: F401
        exe = shutil.which("redis-server")
        if not exe:
            raise RuntimeError("redis-server not installed (apt-get install redis-server)")
        self.sock = os.path.join(tmp, "redis.sock")
        self.proc = subprocess.Popen([exe, "--port", "0", "--unixsocket", self.sock,
                                      "--save", "", "--appendonly", "no",
                                      "--client-output-buffer-limit", "pubsub 32mb 8mb 60"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_unix(self.sock, socket.SOCK_STREAM)
        self.server = exe

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()

    def publisher(self, key: bytes):
        import redis
        r = redis.Redis(unix_socket_path=self.sock)

        def send(batch: List[Tuple[bytes, bytes]]) -> None:
            pipe = r.pipeline(transaction=False)
            for k, d in batch:
                pipe.publish(k, d)
            pipe.execute()
        return send, r.close

    def subscriber(self, key: bytes):
        import redis
        r = redis.Redis(unix_socket_path=self.sock)
        ps = r.pubsub(ignore_subscribe_messages=True)
        ps.subscribe(key)
        while ps.get_message(timeout=1.0) is None and not ps.subscribed:
            pass

        def recv(timeout: float) -> List[bytes]:
            m = ps.get_message(timeout=timeout)
            out = [] if m is None else [m["data"]]
            while m is not None and len(out) < BATCH:   # what is already buffered
                m = ps.get_message(timeout=0)
                if m is not None:
                    out.append(m["data"])
            return out
        return recv, r.close


class Zeromq:
    name = "zeromq"

    def __init__(self, tmp: str, build: Optional[str]):
        import zmq  # noqa: F401
        self.addr = {}
        self.tmp = tmp
        self.server = f"pyzmq {zmq.__version__}, libzmq {zmq.zmq_version()}"

    def close(self) -> None:
        pass

    def _addr(self, key: bytes) -> str:
        return f"ipc://{self.tmp}/zmq-{key.decode()}"

    def publisher(self, key: bytes):
        import zmq
        ctx = zmq.Context()
        s = ctx.socket(zmq.PUB)
        s.bind(self._addr(key))

        def send(batch: List[Tuple[bytes, bytes]]) -> None:
            for k, d in batch:
                s.send_multipart((k, d))

        def close() -> None:
            s.close(linger=0)
            ctx.term()
        return send, close

    def subscriber(self, key: bytes):
        import zmq
        ctx = zmq.Context()
        s = ctx.socket(zmq.SUB)
        s.connect(self._addr(key))
        s.setsockopt(zmq.SUBSCRIBE, key)
        poller = zmq.Poller()
        poller.register(s, zmq.POLLIN)

        def recv(timeout: float) -> List[bytes]:
            if not poller.poll(int(timeout * 1000)):
                return []
            out = []
            while len(out) < BATCH:
                try:
                    out.append(s.recv_multipart(zmq.NOBLOCK)[1])
                except zmq.Again:
                    break
            return out

        def close() -> None:
            s.close(linger=0)
            ctx.term()
        return recv, close


def wait_unix(path: str, kind: int) -> None:
    end = time.monotonic() + 10
    while time.monotonic() < end:
        if os.path.exists(path):
            with socket.socket(socket.AF_UNIX, kind) as s:
                try:
                    s.connect(path)
                    return
                except OSError:
                    pass
        time.sleep(0.02)
    raise RuntimeError(f"no server on {path}")


# -- throughput ---------------------------------------------------------------

def _tp_sub(t, ready, start, done, published, out) -> None:
    recv, close = t.subscriber(KEY)
    ready.set()
    n = 0
    last = time.monotonic()
    while True:
        got = recv(0.05)
        if got:
            n += len(got)
            last = time.monotonic()
            for d in got:            # touch the data
                d[0]
        elif done.is_set() and (n >= published.value or time.monotonic() - last > IDLE):
            break
    out.put((n, last - start.value))
    close()


def _tp_pub(t, ready, go, start, done, published, seconds) -> None:
    send, close = t.publisher(KEY)
    batch = [(KEY, PAYLOAD)] * BATCH
    go.wait()
    if t.name == "zeromq":        # a slow joiner: let the SUB connect first
        time.sleep(0.3)
    start.value = time.monotonic()
    end = start.value + seconds
    n = 0
    while time.monotonic() < end:
        for _ in range(16):
            send(batch)
        n += 16 * BATCH
    published.value = n
    done.set()
    time.sleep(IDLE + 0.5)        # zeromq: keep the PUB open while it drains
    close()


def throughput(t, seconds: float) -> float:
    ctx = mp.get_context("fork")
    ready, go, done = ctx.Event(), ctx.Event(), ctx.Event()
    start, published = ctx.Value("d", 0.0), ctx.Value("q", 0)
    out = ctx.Queue()
    sub = ctx.Process(target=_tp_sub, args=(t, ready, start, done, published, out))
    pub = ctx.Process(target=_tp_pub, args=(t, ready, go, start, done, published, seconds))
    sub.start()
    if not ready.wait(20):
        raise RuntimeError(f"{t.name}: the subscriber did not start")
    pub.start()
    time.sleep(0.2)               # the subscription in place (redis, zeromq)
    go.set()
    n, elapsed = out.get(timeout=seconds + 60)
    pub.join()
    sub.join()
    return n / elapsed if elapsed > 0 else 0.0


# -- latency ------------------------------------------------------------------

def _pong(t, ready, rounds) -> None:
    recv, rclose = t.subscriber(b"ping")
    send, sclose = t.publisher(b"pong")
    ready.set()
    left = rounds
    while left > 0:
        got = recv(10.0)
        if not got:
            break
        for d in got:
            send([(b"pong", d)])
            left -= 1
    time.sleep(0.2)
    rclose()
    sclose()


def latency(t, rounds: int) -> Tuple[float, float]:
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    warm = 200
    p = ctx.Process(target=_pong, args=(t, ready, rounds + warm))
    p.start()
    ready.wait(20)
    recv, rclose = t.subscriber(b"pong")
    send, sclose = t.publisher(b"ping")
    time.sleep(0.3)               # subscriptions in place both ways
    rtts = []
    for i in range(rounds + warm):
        t0 = time.perf_counter_ns()
        send([(b"ping", PAYLOAD)])
        while not recv(10.0):
            raise RuntimeError(f"{t.name}: round trip {i} lost")
        if i >= warm:
            rtts.append(time.perf_counter_ns() - t0)
    p.join()
    rclose()
    sclose()
    rtts.sort()
    return rtts[len(rtts) // 2] / 2000, rtts[int(len(rtts) * 0.99)] / 2000


# -- the run ------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description="shmnotify from Python beside redis-py and pyzmq")
    ap.add_argument("--build", default=os.path.join(REPO, "build") if
                    os.path.exists(os.path.join(REPO, "build", "broker", "shmnotifyd")) else None,
                    help="the CMake build whose shmnotifyd and libshmnotify to use "
                         "(default: build/ when built, else the installed ones)")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--roundtrips", type=int, default=5000)
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="shn-pybench.")
    transports = []
    for cls in (Shmnotify, Redis, Zeromq):
        try:
            transports.append(cls(tmp, a.build))
        except (ImportError, RuntimeError) as e:
            print(f"{cls.name}: skipped: {e}", file=sys.stderr)
    if not transports or transports[0].name != "shmnotify":
        print("python_bench: shmnotify itself could not run", file=sys.stderr)
        return 1
    try:
        tp: Dict[str, List[float]] = {t.name: [] for t in transports}
        lat: Dict[str, List[Tuple[float, float]]] = {t.name: [] for t in transports}
        for r in range(a.runs):
            for t in transports:
                print(f"run {r + 1}/{a.runs}: {t.name} throughput ...", file=sys.stderr)
                tp[t.name].append(throughput(t, a.seconds))
            for t in transports:
                print(f"run {r + 1}/{a.runs}: {t.name} latency ...", file=sys.stderr)
                lat[t.name].append(latency(t, a.roundtrips))
    finally:
        for t in transports:
            t.close()
        shutil.rmtree(tmp, ignore_errors=True)

    med = {n: statistics.median(v) for n, v in tp.items()}
    p50 = {n: statistics.median(x[0] for x in v) for n, v in lat.items()}
    p99 = {n: statistics.median(x[1] for x in v) for n, v in lat.items()}
    print(f"python_bench: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"{a.runs} runs x {a.seconds} s, batch {BATCH}, {len(PAYLOAD)} B payloads, "
          f"{a.roundtrips} round trips; medians")
    for t in transports:
        print(f"  {t.name}: {t.server}")
    print()
    print(f"| transport | delivered/s (batch {BATCH}) | shmnotify ÷ it | latency p50 µs "
          f"| p99 µs | it ÷ shmnotify (p50) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for t in transports:
        n = t.name
        print(f"| {n} | {med[n]:,.0f} | {med['shmnotify'] / med[n]:.1f}x | {p50[n]:.1f} "
              f"| {p99[n]:.1f} | {p50[n] / p50['shmnotify']:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
