#!/usr/bin/env bash
# callgrind_bench.sh - instructions per delivered notification of the floor
# and of shmnotify, measured the same way in one run of shmnotify-bench.
#
# usage: scripts/callgrind_bench.sh [BUILD_DIR] [SECONDS] [CASE]
#
# Runs BUILD_DIR/bench/shmnotify-bench (default case "64B batch 64": 1 -> 1,
# 64 B, batch 64; peers: the floor, shmnotify (DROP) and shmnotify-block)
# with every process it starts under valgrind --tool=callgrind, the brokers
# included, then prints for each transport the instructions its publisher
# and its subscriber spent in the bench's measuring loop (bench_measure,
# inclusive: the transport's send or receive and the harness's own loop
# around it, the same for every transport), its broker's whole process, and
# their sum divided by the notifications the bench counted delivered.  So
# the floor is measured with the harness, the payloads and the batches
# shmnotify is, and the ratio is the one docs/performance.md quotes.
# SHMNOTIFY_DIRECT_WAIT_US=1000000: under callgrind the broker is slower
# than a publisher's default wait for it (scripts/callgrind_all.sh).
set -euo pipefail
build=${1:-build}
secs=${2:-1}
case=${3:-64B batch 64}
command -v callgrind_annotate >/dev/null || { echo "callgrind_bench.sh: needs valgrind (apt-get install valgrind)" >&2; exit 2; }
py=/usr/bin/python3
[ -x "$py" ] || py=python3
dir=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
SHMNOTIFY_DIRECT_WAIT_US=1000000 valgrind --tool=callgrind --trace-children=yes \
	--callgrind-out-file="$dir/cg.%p" -q \
	"$build/bench/shmnotify-bench" --peers shmnotify-block --workloads throughput \
	--case "$case" --runs 1 --seconds "$secs" --json="$dir/r.json" >"$dir/out.txt" 2>&1 ||
	{ cat "$dir/out.txt" >&2; exit 1; }
for f in "$dir"/cg.*; do
	callgrind_annotate --inclusive=yes "$f" >"$f.incl" 2>/dev/null || true
done
"$py" - "$dir" "$case" <<'EOF'
import glob, json, re, sys

d, case = sys.argv[1], sys.argv[2]
res = json.load(open(d + "/r.json"))["results"]
delivered = {r["transport"]: r["delivered"] for r in res
             if r["case"] == case and r["workload"] == "throughput" and r["status"] == "ok"}

def incl(text, fn):
    m = re.search(r"^\s*([\d,]+) \([^)]*\)\s+\S*:" + re.escape(fn) + r" ", text, re.M)
    return int(m.group(1).replace(",", "")) if m else None

roles = {"floor_pub": [], "floor_sub": [], "shn_pub": [], "shn_sub": [], "broker": []}
for f in sorted(glob.glob(d + "/cg.*[0-9]"), key=lambda p: int(p.rsplit(".", 1)[1])):
    text = open(f + ".incl").read()
    total = int(re.search(r"^summary: *(\d+)", open(f).read(), re.M).group(1))
    if "shmnotifyd" in text.split("\n", 12)[8]:   # "Profiled target:" line
        roles["broker"].append(total)
        continue
    for role, fn in (("floor_pub", "floor_pub_send"), ("floor_sub", "floor_sub_recv"),
                     ("shn_pub", "shn_pub_send"), ("shn_sub", "shn_sub_recv")):
        if incl(text, fn) is not None:
            roles[role].append(incl(text, "bench_measure"))
            break

rows = [("floor", roles["floor_pub"][0], roles["floor_sub"][0], 0)]
for k, t in enumerate(("shmnotify", "shmnotify-block")):
    rows.append((t, roles["shn_pub"][k], roles["shn_sub"][k],
                 roles["broker"][k] if k < len(roles["broker"]) else 0))
floor = None
print(f"case {case!r}: instructions per delivered notification (callgrind, one run)")
print(f"{'transport':18} {'delivered':>10} {'publisher':>10} {'subscriber':>10} {'broker':>8} {'all':>8} {'/floor':>7}")
for t, pub, sub, brk in rows:
    n = delivered[t]
    allp = (pub + sub + brk) / n
    floor = floor or allp
    print(f"{t:18} {n:10d} {pub / n:10.1f} {sub / n:10.1f} {brk / n:8.1f} {allp:8.1f} {allp / floor:6.2f}x")
EOF
[ -z "${KEEP:-}" ] || echo "callgrind files kept in $dir"
