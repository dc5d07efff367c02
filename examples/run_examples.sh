#!/usr/bin/env bash
# run_examples.sh SHMNOTIFYD DIR - run each example in DIR against a private
# broker and check what it printed.
set -euo pipefail
broker=$1 dir=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shn-examples.XXXXXX")
bpid=""
cleanup() {
	[[ -n $bpid ]] && kill -TERM "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
"$broker" --socket "$tmp/s.sock" 2>"$tmp/broker.log" &
bpid=$!
for _ in $(seq 100); do [[ -S $tmp/s.sock ]] && break; sleep 0.05; done
[[ -S $tmp/s.sock ]] || { cat "$tmp/broker.log"; exit 1; }

check() {   # check NAME EXPECTED-LINE
	local out rc=0
	out=$("$dir/$1" "$tmp/s.sock" 2>&1) || rc=$?
	if [[ $rc == 77 ]]; then echo "skip: $1: $out"; return 0; fi
	if [[ $rc != 0 ]] || ! grep -qxF "$2" <<<"$out"; then
		echo "FAIL: $1 exited $rc, expected the line '$2'; it printed:"; echo "$out"
		exit 1
	fi
	echo "ok: $1: $2"
}
check pull_consumer "seq=2 event=0x2 data=cleared [1/2] conn=1"
check advise_sink "folders: 1 call(s), 3 notifications; inbox: 1 call(s), 2 notifications"
check advise_sink "inbox: conn=2 [1/2] key=store/inbox data=read"
check epoll_loop "epoll: received 5 notifications"
check uring_loop "uring: received 3 notifications"

# flood, lossless (SHN_OVERFLOW_BLOCK, batch 1: the case that once lost a
# wake-up) through a second broker in the low-latency mode (--spin-us)
"$broker" --socket "$tmp/spin.sock" --spin-us 100 2>"$tmp/spin.log" &
spid=$!
for _ in $(seq 100); do [[ -S $tmp/spin.sock ]] && break; sleep 0.05; done
rc=0; out=$(timeout 30 "$dir/flood" --socket "$tmp/spin.sock" --batch 1 --overflow block \
	--seconds 0.5 2>&1) || rc=$?
kill -TERM "$spid"; wait "$spid" 2>/dev/null || true
if [[ $rc != 0 ]] || ! grep -q "overflow block: delivered [1-9][0-9]* in .* lost 0$" <<<"$out"; then
	echo "FAIL: flood through a --spin-us broker exited $rc:"; echo "$out"; cat "$tmp/spin.log"
	exit 1
fi
echo "ok: flood through a --spin-us 100 broker: ${out#flood: }"
