# test_lib.sh - what the command-line tests share.  Source it after
# setting broker (shmnotifyd), cli (shmnotify) and name (the test's name):
# it makes a private directory $tmp, starts a broker on $S (its stderr in
# $tmp/broker.log), and on exit stops every pid listed in pids (stopped
# ones too) and removes $tmp.  fail MESSAGE ends the test; subs N waits
# (at most 60 s) until the broker holds N subscriptions in all.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shn-$name.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill -CONT "$p" 2>/dev/null || true
		kill -TERM "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "$name: FAIL: $*" >&2; exit 1; }
S=$tmp/s.sock
"$broker" --socket "$S" 2>"$tmp/broker.log" &
pids+=($!)
for _ in $(seq 100); do [[ -S $S ]] && break; sleep 0.05; done
[[ -S $S ]] || fail "the broker did not start: $(cat "$tmp/broker.log")"

subs() {
	for _ in $(seq 1200); do
		"$cli" stats --socket "$S" --json | python3 -c '
import json, sys
sys.exit(json.load(sys.stdin)["broker"]["subscriptions"] != int(sys.argv[1]))' "$1" && return 0
		sleep 0.05
	done
	fail "the broker never had $1 subscriptions"
}
