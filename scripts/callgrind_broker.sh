#!/usr/bin/env bash
# callgrind_broker.sh - the broker's instructions per delivered notification.
#
# usage: scripts/callgrind_broker.sh [BUILD_DIR] [SECONDS] [BATCH]
#
# Starts BUILD_DIR/broker/shmnotifyd under valgrind --tool=callgrind on a
# private socket, zeroes its counters once it listens (callgrind_control -z),
# runs examples/flood (1 -> 1, 64 B, SHN_OVERFLOW_BLOCK: nothing dropped) for
# SECONDS, dumps the counters (callgrind_control -d) and prints the broker's
# instructions divided by the notifications flood delivered.  Instruction
# counts do not depend on the machine's load, so this is the before/after
# figure for a change of the broker (docs/performance.md, "Method").
set -euo pipefail
build=${1:-build}
secs=${2:-2}
batch=${3:-64}
command -v callgrind_control >/dev/null || { echo "callgrind_broker.sh: needs valgrind (apt-get install valgrind)" >&2; exit 2; }
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" \
	"$build/broker/shmnotifyd" --socket "$dir/s" --foreground 2>"$dir/broker.log" &
pid=$!
for _ in $(seq 200); do [ -S "$dir/s" ] && break; sleep 0.1; done
[ -S "$dir/s" ] || { cat "$dir/broker.log" >&2; exit 1; }
callgrind_control -z "$pid" >/dev/null 2>&1
out=$("$build/examples/flood" --socket "$dir/s" --seconds "$secs" --batch "$batch" --overflow block)
callgrind_control -d "$pid" >/dev/null 2>&1
sleep 0.5
delivered=$(sed -n 's/.*delivered \([0-9]*\) in.*/\1/p' <<<"$out")
ir=$(for f in "$dir"/cg.*.[0-9]*; do sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$f"; done | sort -n | tail -1)
echo "$out"
echo "broker: $ir instructions for $delivered notifications = $((ir / delivered)) per notification"
