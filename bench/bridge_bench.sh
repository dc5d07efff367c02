#!/usr/bin/env bash
# bridge_bench.sh BUILD_DIR [RUNS] [N] [BATCH] - the bridge's end-to-end rate
# and latency (A publisher -> bridge A -> NATS -> bridge B -> B subscriber)
# beside plain libnats publish/subscribe through the same nats-server, on
# this machine; RUNS runs (default 3), medians, and the ratio.  Starts a
# private nats-server (random loopback port), two brokers and two core-mode
# bridges, and stops them.  docs/bench.md has the figures.
set -euo pipefail
build=${1:?usage: bridge_bench.sh BUILD_DIR [RUNS] [N] [BATCH]} runs=${2:-3} n=${3:-200000} batch=${4:-64}
PATH=$PATH:/usr/sbin:/usr/local/sbin   # Debian's nats-server is in /usr/sbin
command -v nats-server >/dev/null || { echo "bridge_bench: nats-server is not installed (make deps)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shn-bridge-bench.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
wait_for() { local end=$((SECONDS + 20)); until "$@" >/dev/null 2>&1; do ((SECONDS < end)) || { echo "bridge_bench: timed out: $*" >&2; exit 1; }; sleep 0.05; done; }
nats-server -a 127.0.0.1 -p -1 --ports_file_dir "$tmp" >"$tmp/nats.log" 2>&1 &
pids+=($!)
wait_for test -s "$tmp/nats-server_$!.ports"
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nats"][0])' "$tmp/nats-server_$!.ports")
for h in a b; do
	"$build/broker/shmnotifyd" --socket "$tmp/$h.sock" >"$tmp/broker-$h.log" 2>&1 &
	pids+=($!)
	wait_for test -S "$tmp/$h.sock"
	printf '[bridge]\nnode = bench-%s\nservers = %s\nsocket = %s\nstate-file = none\nstats-file = %s\n[rule data]\nkeys = "data/"\nsubject = shn.data\ndirection = both\n' \
		"$h" "$url" "$tmp/$h.sock" "$tmp/$h.json" >"$tmp/$h.ini"
	"$build/bridge/shmnotify-bridge" --config "$tmp/$h.ini" >"$tmp/bridge-$h.log" 2>&1 &
	pids+=($!)
done
ready() { python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["bridge"]["ready"] else 1)' "$1"; }
wait_for ready "$tmp/a.json"
wait_for ready "$tmp/b.json"
for i in $(seq "$runs"); do
	"$build/bench/shmnotify-bridge-rate" "$url" "$tmp/a.sock" "$tmp/b.sock" "data/bench" "$n" "$batch" >"$tmp/run$i"
	echo "run $i: $(tr '\n' ' ' <"$tmp/run$i")"
done
python3 - "$tmp" "$runs" "$n" "$batch" <<'PY'
import statistics, sys
tmp, runs = sys.argv[1], int(sys.argv[2])
vals = {}
for i in range(1, runs + 1):
    for line in open(f"{tmp}/run{i}"):
        who, metric, v = line.split()
        vals.setdefault((who, metric), []).append(float(v))
med = {k: statistics.median(v) for k, v in vals.items()}
print(f"medians of {runs} runs, {sys.argv[3]} notifications of 16 bytes, batches of {sys.argv[4]}:")
print(f"  rate       nats {med[('nats','rate')]:>10.0f}/s   bridge {med[('bridge','rate')]:>10.0f}/s   bridge/nats {med[('bridge','rate')]/med[('nats','rate')]:.2f}x")
print(f"  rate       nats with the bridge's 8 headers {med[('headers','rate')]:>10.0f}/s   bridge/that {med[('bridge','rate')]/med[('headers','rate')]:.2f}x")
print(f"  p50 one-way nats {med[('nats','p50_us')]:>8.1f} us   bridge {med[('bridge','p50_us')]:>8.1f} us   bridge/nats {med[('bridge','p50_us')]/med[('nats','p50_us')]:.2f}x")
print(f"  p99 one-way nats {med[('nats','p99_us')]:>8.1f} us   bridge {med[('bridge','p99_us')]:>8.1f} us")
print(f"  lost (reported as OVERFLOW) per run: {vals[('bridge','lost')]}")
PY
