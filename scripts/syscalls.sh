#!/usr/bin/env bash
# syscalls.sh - count system calls per delivered notification during a
# one-second flood (1 publisher -> 1 subscriber, 64 B, batches of 64).
# Traces the broker and the flood program (publisher and subscriber
# processes) with `strace -c -f` and divides the total by what was delivered.
# Usage: scripts/syscalls.sh [--io uring|epoll] [flood options...]   (after `make build`)
#   e.g. scripts/syscalls.sh --io epoll --overflow block --batch 16
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
io=auto
if [[ ${1:-} == --io ]]; then io=$2; shift 2; fi
command -v strace >/dev/null || { echo "syscalls: strace is missing: apt-get install strace" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmnotify-sys.XXXXXX")
bpid=""
cleanup() {
	[[ -n $bpid ]] && kill -TERM "$bpid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
strace -f -c -o "$tmp/broker.strace" "$BUILD_DIR/broker/shmnotifyd" --socket "$tmp/s.sock" \
	--io "$io" 2>"$tmp/broker.log" &
for _ in $(seq 100); do
	"$BUILD_DIR/cli/shmnotify" stats --socket "$tmp/s.sock" >/dev/null 2>&1 && break
	sleep 0.05
done
bpid=$(pgrep -f -n "shmnotifyd --socket $tmp/s.sock" | head -1)
out=$(strace -f -c -o "$tmp/flood.strace" "$BUILD_DIR/examples/flood" --socket "$tmp/s.sock" "$@")
echo "$out"
kill -TERM "$bpid"; bpid=""
wait
# strace -c's "total" row: calls is the 4th column (5th when an errors count is present)
total() { awk '/ total$/ {print $4}' "$1"; }
b=$(total "$tmp/broker.strace"); f=$(total "$tmp/flood.strace")
delivered=$(sed -n 's/.*delivered \([0-9]*\) in.*/\1/p' <<<"$out")
echo "broker (io $(sed -n 's/.*(io: \([a-z]*\)).*/\1/p' "$tmp/broker.log")): $b system calls, whole life (start-up and shutdown included)"
echo "flood (publisher + subscriber processes): $f system calls, whole life"
awk -v b="$b" -v f="$f" -v d="$delivered" 'BEGIN {
	printf "delivered %d notifications: %.5f system calls per delivered notification\n", d, (b + f) / d }'
