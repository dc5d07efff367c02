#!/usr/bin/env bash
# callgrind_all.sh - instructions per delivered notification of every
# process together: the broker, the publisher and the subscriber.
#
# usage: scripts/callgrind_all.sh [BUILD_DIR] [SECONDS] [BATCH]
#
# Starts BUILD_DIR/broker/shmnotifyd under valgrind --tool=callgrind on a
# private socket (counters zeroed once it listens), then runs examples/flood
# (1 -> 1, 64 B, SHN_OVERFLOW_BLOCK: nothing dropped; the subscriber and the
# publisher it forks) under callgrind too, and prints each process's
# instructions and their sum divided by the notifications delivered.  The
# flood's two processes are counted whole, connecting included (a few
# hundred thousand instructions, under 1 % of a run).  SHMNOTIFY_DIRECT=off
# in the environment measures the broker path.  Instruction counts do not
# depend on the machine's load: the before/after figure of a change
# (docs/performance.md, "Method").
set -euo pipefail
build=${1:-build}
secs=${2:-2}
batch=${3:-64}
command -v callgrind_control >/dev/null || { echo "callgrind_all.sh: needs valgrind (apt-get install valgrind)" >&2; exit 2; }
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$dir/broker.%p" \
	"$build/broker/shmnotifyd" --io epoll --socket "$dir/s" --foreground 2>"$dir/broker.log" &
pid=$!
for _ in $(seq 200); do [ -S "$dir/s" ] && break; sleep 0.1; done
[ -S "$dir/s" ] || { cat "$dir/broker.log" >&2; exit 1; }
callgrind_control -z "$pid" >/dev/null 2>&1
out=$(SHMNOTIFY_DIRECT_WAIT_US=1000000 valgrind --tool=callgrind --callgrind-out-file="$dir/flood.%p" -q \
	"$build/examples/flood" --socket "$dir/s" --seconds "$secs" --batch "$batch" ${FLOOD_ARGS:---overflow block})
callgrind_control -d "$pid" >/dev/null 2>&1
sleep 0.5
delivered=$(sed -n 's/.*delivered \([0-9]*\) in.*/\1/p' <<<"$out")
echo "$out"
sum() { for f in "$@"; do sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$f"; done | sort -n | tail -1; }
broker=$(sum "$dir"/broker.*.[0-9]*)
total=$broker
echo "broker: $broker instructions = $((broker / delivered)) per notification"
for f in "$dir"/flood.*; do
	ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$f")
	[ -n "$ir" ] || ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$f")
	echo "flood process ${f##*.}: $ir instructions = $((ir / delivered)) per notification"
	total=$((total + ir))
done
[ -z "${KEEP:-}" ] || echo "callgrind files kept in $dir"
echo "all processes: $total instructions for $delivered notifications = $((total / delivered)) per notification"
