#!/usr/bin/env python3
"""check_layering.py - no cycles between the files of a folder.

For each folder given (broker, libclient, bridge), two graphs over its files:

  calls:    a.c -> b.c when a.c's object file uses a symbol that b.c's defines
            (read with `nm` from the objects of a built tree);
  includes: a.h -> b.h when header a.h includes "b.h" of the same folder.

A cycle in either graph is reported, except among the files named with
--allow (the event loop's backend table: loop.c <-> loop_uring.c/loop_epoll.c).
Exit status 1 when a cycle is found, 0 otherwise.

usage: check_layering.py BUILD_DIR [--allow a,b,c] DIR...
"""
import os
import re
import subprocess
import sys
from collections import defaultdict


def objects(build, folder):
    out = {}
    for root, _, files in os.walk(build):
        for f in files:
            if not f.endswith(".c.o"):
                continue
            path = os.path.join(root, f)
            # CMake names objects <target>.dir/<source>.c.o; keep objects of
            # sources that live directly in the folder
            src = f[:-2]  # strip .o
            if not os.path.exists(os.path.join(folder, src)):
                continue
            rel = os.path.relpath(root, build)
            if not (rel.startswith(os.path.basename(folder.rstrip("/")) + os.sep)
                    or rel.startswith(os.path.basename(folder.rstrip("/")) + "/")):
                continue
            if "test" in src:
                continue
            out.setdefault(src[:-2], path)
    return out


def nm_symbols(path):
    defined, used = set(), set()
    res = subprocess.run(["nm", path], capture_output=True, text=True, check=True)
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            used.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBRC":
            defined.add(parts[2])
    return defined, used


def include_graph(folder):
    g = defaultdict(set)
    names = {os.path.splitext(f)[0] for f in os.listdir(folder)
             if f.endswith(".h")}
    for f in os.listdir(folder):
        if not f.endswith(".h") or "test" in f:
            continue
        me = os.path.splitext(f)[0]
        with open(os.path.join(folder, f), encoding="utf-8") as fh:
            for m in re.finditer(r'^\s*#\s*include\s+"([^"/]+)\.h"', fh.read(), re.M):
                other = m.group(1)
                if other != me and other in names:
                    g[me].add(other)
    return g


def cycles(g):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(set(g) | {w for ws in g.values() for w in ws}):
        if v not in index:
            visit(v)
    return out


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    build, rest = argv[1], argv[2:]
    allow = set()
    if rest and rest[0] == "--allow":
        allow = set(rest[1].split(","))
        rest = rest[2:]
    bad = 0
    for folder in rest:
        objs = objects(build, folder)
        syms = {name: nm_symbols(p) for name, p in objs.items()}
        calls = defaultdict(set)
        for a, (_, used) in syms.items():
            for b, (defined, _) in syms.items():
                if a != b and used & defined:
                    calls[a].add(b)
        for kind, g in (("calls", calls), ("includes", include_graph(folder))):
            for comp in cycles(g):
                if set(comp) <= allow:
                    continue
                bad += 1
                print(f"{folder}: {kind} cycle: {' <-> '.join(comp)}")
        print(f"{folder}: {len(objs)} objects, "
              f"{sum(len(v) for v in calls.values())} call edges checked")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
