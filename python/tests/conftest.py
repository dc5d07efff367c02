"""Fixtures: a private shmnotifyd per test, child processes, paths.

make test (ctest) runs this suite three times, as the C integration tests
run: with the broker on epoll and on io_uring (SHN_TEST_IO), and with
SHMNOTIFY_DIRECT=off (every client on the broker path).  It sets
SHMNOTIFYD, SHMNOTIFY_CLI and SHMNOTIFY_LIBRARY to the build's programs;
run by hand, the paths default to the build/ directory beside python/.
Nothing is mocked: real brokers, sockets and shared memory.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Callable, Iterator, List, Optional

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.environ.get("SHN_REPO") or os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(REPO, "build")
os.environ.setdefault("SHMNOTIFY_LIBRARY", os.path.join(BUILD, "libclient", "libshmnotify.so.0"))
SHMNOTIFYD = os.environ.get("SHMNOTIFYD") or os.path.join(BUILD, "broker", "shmnotifyd")
CLI = os.environ.get("SHMNOTIFY_CLI") or os.path.join(BUILD, "cli", "shmnotify")
IO = os.environ.get("SHN_TEST_IO", "epoll")
PYPATH = os.path.dirname(HERE)          # python/: the package, importable from the tree
if PYPATH not in sys.path:
    sys.path.insert(0, PYPATH)

WAIT = 10.0   # seconds for one expected event: a bug fails a test, never hangs it


def until(pred: Callable[[], object], what: str, timeout: float = WAIT) -> object:
    """Poll pred until it is true; fail the test naming what did not happen."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout} s waiting for: {what}")
        time.sleep(0.01)


class Broker:
    """A shmnotifyd on a socket in a private directory."""

    def __init__(self, tmp: str, args: List[str]):
        self.dir = tmp
        self.socket = os.path.join(tmp, "s.sock")
        self.args = args
        self.proc: Optional[subprocess.Popen] = None
        self.logs = 0

    def start(self) -> None:
        self.logs += 1
        log = open(os.path.join(self.dir, f"broker{self.logs}.log"), "wb")
        self.proc = subprocess.Popen([SHMNOTIFYD, "--socket", self.socket, "--io", IO,
                                      *self.args], stdout=log, stderr=log)
        log.close()
        end = time.monotonic() + WAIT
        while not self._listening():
            rc = self.proc.poll()
            if rc is not None:
                text = self.log()
                if IO == "uring" and "io_uring" in text:
                    pytest.skip(f"io_uring unavailable here: {text.strip()}")
                pytest.fail(f"shmnotifyd exited {rc} before listening: {text}")
            if time.monotonic() > end:
                pytest.fail(f"shmnotifyd did not create {self.socket}: {self.log()}")
            time.sleep(0.01)

    def _listening(self) -> bool:
        """The socket file exists and accepts (bind comes before listen)."""
        if not os.path.exists(self.socket):
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
            try:
                s.connect(self.socket)
            except OSError:
                return False
        return True

    def log(self) -> str:
        with open(os.path.join(self.dir, f"broker{self.logs}.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill(self) -> None:
        """SIGKILL: a crash (the socket file stays, stale)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail("shmnotifyd did not stop on SIGTERM")
        return self.proc.returncode


@pytest.fixture
def broker() -> Iterator[Broker]:
    with tempfile.TemporaryDirectory(prefix="shn-py.") as tmp:
        b = Broker(tmp, [])
        b.start()
        yield b
        rc = b.stop()
        assert rc in (0, -9), f"shmnotifyd exited {rc}: {b.log()}"


@pytest.fixture
def client(broker: Broker):
    import shmnotify
    with shmnotify.Client(broker.socket) as c:
        yield c


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = PYPATH + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def spawn_py(code: str, *args: str, **kw) -> subprocess.Popen:
    """A Python child process running code (dedented) with args in sys.argv[1:]."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            **kw)


def finish(p: subprocess.Popen, timeout: float = 60) -> str:
    """Wait for a child; fail with its output unless it exited 0."""
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"child did not finish in {timeout} s: {out!r} {err!r}")
    assert p.returncode == 0, f"child exited {p.returncode}:\n{out.decode()}\n{err.decode()}"
    return out.decode()


def wait_subscriptions(c, n: int) -> None:
    """Until the broker counts n live subscriptions (a child subscribed)."""
    until(lambda: c.stats()["broker"]["subscriptions"] >= n, f"{n} subscriptions at the broker")
