#!/usr/bin/env bash
# demo.sh - shmnotify end to end, on a private broker: start shmnotifyd, listen,
# publish a few notifications, show the statistics, then flood for one second.
# Run from the source tree after a build (`make run` does both).
# Stops everything it started (by PID) and removes its temporary directory;
# exits non-zero if any step failed.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
BROKER=$BUILD_DIR/broker/shmnotifyd
CLI=$BUILD_DIR/cli/shmnotify
FLOOD=$BUILD_DIR/examples/flood
for bin in "$BROKER" "$CLI" "$FLOOD"; do
	if [[ ! -x $bin ]]; then
		echo "demo: $bin is missing: build first (make build)" >&2
		exit 1
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmnotify-demo.XXXXXX")
sock=$tmp/broker.sock
broker_pid=""
listener_pid=""

cleanup() {
	local rc=$?
	set +e
	if [[ -n $listener_pid ]] && kill -0 "$listener_pid" 2>/dev/null; then
		kill -TERM "$listener_pid" 2>/dev/null
		wait "$listener_pid" 2>/dev/null
	fi
	if [[ -n $broker_pid ]] && kill -0 "$broker_pid" 2>/dev/null; then
		kill -TERM "$broker_pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$broker_pid" 2>/dev/null
		wait "$broker_pid" 2>/dev/null
	fi
	if [[ $rc -ne 0 && -s $tmp/broker.log ]]; then
		echo "demo: FAILED (status $rc); the broker's log:" >&2
		sed 's/^/    broker | /' "$tmp/broker.log" >&2
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -t 1 ]]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
say() { printf '\n%s-- %s%s\n' "$bold" "$*" "$plain"; }
show() { printf '$'; printf ' %q' "$@"; printf '\n'; }
run() { show "$@"; "$@"; }
fail() { echo "demo: $*" >&2; exit 1; }

say "starting a private broker on $sock"
show "$BROKER" --socket "$sock" --foreground; printf '  (in the background)\n' 
"$BROKER" --socket "$sock" --foreground >"$tmp/broker.log" 2>&1 &
broker_pid=$!
for _ in $(seq 100); do
	kill -0 "$broker_pid" 2>/dev/null || fail "shmnotifyd exited at start"
	"$CLI" stats --socket "$sock" >/dev/null 2>&1 && break
	sleep 0.05
done
"$CLI" stats --socket "$sock" >/dev/null || fail "shmnotifyd does not answer on $sock after 5 s"
echo "shmnotifyd (pid $broker_pid) answers"

say "a listener waits for 5 notifications on key demo/key"
show "$CLI" listen --socket "$sock" --count 5 --timeout 10000 demo/key; printf '  (in the background)\n' 
"$CLI" listen --socket "$sock" --count 5 --timeout 10000 demo/key \
	> >(sed -u 's/^/    listener | /') 2>&1 &
listener_pid=$!
# publish only once its filter is active: the broker's stats list it
for _ in $(seq 100); do
	"$CLI" stats --socket "$sock" --json 2>/dev/null | grep -Eq '"subscriptions": *[1-9]' && break
	kill -0 "$listener_pid" 2>/dev/null || fail "the listener exited early"
	sleep 0.05
done

say "publishing (each DATA is one notification; one command is one batch)"
run "$CLI" publish --socket "$sock" demo/key hello
sleep 0.2
run "$CLI" publish --socket "$sock" --event 0x2 demo/key "a batch" "of three" notifications
sleep 0.2
run "$CLI" publish --socket "$sock" other/key "nobody listens to this key"
sleep 0.2

say "the broker's statistics, while the listener is connected"
run "$CLI" stats --socket "$sock"

say "the fifth, synchronously: publish returns once the listener has read it (--count 5 ends it)"
run "$CLI" publish --socket "$sock" --sync demo/key bye
wait "$listener_pid" || fail "the listener failed (status $?)"
listener_pid=""
sleep 0.1  # let the listener's last lines through the prefixing sed

say "one second of flood: 1 publisher -> 1 subscriber (the direct path: the broker sets up a ring from the publisher into the port, then stays out of the way)"
echo "(the subscriber's port uses back-pressure, SHN_OVERFLOW_BLOCK: nothing is dropped)"
run "$FLOOD" --socket "$sock" --seconds 1 --overflow block

say "stopping the broker (SIGTERM)"
kill -TERM "$broker_pid"
status=0
wait "$broker_pid" || status=$?
broker_pid=""
[[ $status -eq 0 ]] || fail "shmnotifyd exited with status $status on SIGTERM"
echo "shmnotifyd stopped cleanly"
printf '\ndemo OK\n'
