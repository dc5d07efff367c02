#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test_socket_ready.py - the broker's socket file appears only once the
broker listens on it (broker/server.c binds a private name, listens, then
links it to the path).

A script or client that waits for the file and connects at once must never
be refused: the file used to appear at bind(), a moment before listen(),
and about 2 connections in 100 made right then were refused
(ECONNREFUSED; test_cli_commands failed so under load).  300 rounds of
start, spin on the file, connect, stop; fails on the first refusal.

usage: test_socket_ready.py SHMNOTIFYD [ROUNDS]
"""
import os
import socket
import subprocess
import sys
import tempfile
import time


def main():
    broker = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    for r in range(rounds):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s")
            p = subprocess.Popen([broker, "--socket", path, "--foreground"],
                                 stderr=subprocess.DEVNULL)
            try:
                end = time.monotonic() + 10
                while not os.path.exists(path):
                    if time.monotonic() > end or p.poll() is not None:
                        sys.exit(f"round {r}: no socket file at {path} after 10 s "
                                 f"(broker status {p.poll()})")
                s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                try:
                    s.connect(path)
                except ConnectionRefusedError:
                    sys.exit(f"round {r}: connect() refused on a socket file that had "
                             "just appeared: the broker made it before it listened")
                finally:
                    s.close()
            finally:
                p.terminate()
                p.wait()
            # (the private name lives until just after the link: looked at
            # once the broker is gone)
            leftovers = [n for n in os.listdir(d) if n != "s"]
            if leftovers:
                sys.exit(f"round {r}: the broker left {leftovers} beside its socket")
    print(f"test_socket_ready: {rounds} rounds, every connection accepted")


if __name__ == "__main__":
    main()
