#!/usr/bin/env bash
# test_bridge.sh MODE SHMNOTIFYD SHMNOTIFY BRIDGE - two hosts on one machine:
# two brokers (A and B, each its own socket), each with its own
# shmnotify-bridge, and a real nats-server on a random loopback port with
# its JetStream store in a temporary directory, all started and stopped by
# PID here.  MODE: core or jetstream.  Checks, in order:
#   1. a batch published on A arrives on B whole (one batch, same size) and
#      in order;
#   2. keys with binary bytes (not UTF-8, NATS wildcards, dots) survive;
#   3. no loop with rules in both directions (and B exports what is its own);
#   4. B's bridge killed (SIGKILL) and restarted: core mode delivers the
#      exact number missed as SHN_EV_OVERFLOW on the key; jetstream mode
#      delivers everything, in order, nothing twice;
#   5. the NATS server stopped and started again: traffic flows again (and
#      in jetstream mode what A published meanwhile arrives too);
#   6. the stats file and `shmnotify stats --bridge` show the counters;
#   7. SIGTERM: each bridge exits 0.
# Exit 77 (ctest: skipped) when nats-server is not installed.  Every wait
# is bounded (wait_for); no sleep stands in for a condition.
set -euo pipefail
mode=$1 broker=$2 cli=$3 bridge=$4
name=test_bridge_$mode

# Debian installs it in /usr/sbin, which a user's PATH often lacks
PATH=$PATH:/usr/sbin:/usr/local/sbin
if ! command -v nats-server >/dev/null 2>&1; then
	echo "$name: SKIP: nats-server is not installed (Debian: apt-get install nats-server;" \
	     "make deps installs it)" >&2
	exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/shn-bridge.XXXXXX")
declare -A pid=()
ok=0
cleanup() {
	local p
	for p in "${pid[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pid[@]}"; do
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if [[ $ok != 1 ]]; then
		for f in "$tmp"/*.log; do echo "--- $f"; tail -n 40 "$f"; done >&2
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "$name: FAIL: $*" >&2; exit 1; }
say() { echo "$name: $*"; }

# wait_for SECONDS WHAT CMD...: run CMD every 50 ms until it succeeds.
wait_for() {
	local secs=$1 what=$2
	shift 2
	local end=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < end)) || fail "timed out after ${secs}s waiting for $what"
		sleep 0.05
	done
}

# ---- NATS --------------------------------------------------------------
nats_port=""
start_nats() {   # [PORT]: a random one the first time
	local port=${1:--1}
	rm -f "$tmp"/nats-server_*.ports
	nats-server -a 127.0.0.1 -p "$port" -js -sd "$tmp/js" --ports_file_dir "$tmp" \
		>>"$tmp/nats.log" 2>&1 &
	pid[nats]=$!
	wait_for 20 "nats-server's ports file" test -s "$tmp/nats-server_${pid[nats]}.ports"
	nats_port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nats"][0].rsplit(":",1)[1])' \
		"$tmp/nats-server_${pid[nats]}.ports")
}
stop_pid() {   # KEY: SIGTERM, wait at most 10 s for the exit, return its status
	local p=${pid[$1]} rc=0
	kill -TERM "$p"
	for _ in $(seq 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$p" 2>/dev/null && fail "$1 (pid $p) did not exit within 10 s of SIGTERM"
	wait "$p" || rc=$?
	unset "pid[$1]"
	return $rc
}

# ---- two hosts -----------------------------------------------------------
start_broker() {   # NAME
	"$broker" --socket "$tmp/$1.sock" >>"$tmp/broker-$1.log" 2>&1 &
	pid[broker_$1]=$!
	wait_for 10 "broker $1's socket" test -S "$tmp/$1.sock"
}
write_config() {   # NAME
	cat >"$tmp/$1.ini" <<EOF
; host $1 of $name
[bridge]
node = host-$1
servers = nats://127.0.0.1:$nats_port
socket = $tmp/$1.sock
mode = $mode
stream = SHNTEST
state-file = $tmp/$1.state
stats-file = $tmp/$1.stats.json

[rule data]
keys = "data/"
subject = shn.data
direction = both

[rule bin]
keys = "bin/"
subject = shn.bin
direction = both
EOF
}
start_bridge() {   # NAME
	"$bridge" --config "$tmp/$1.ini" >>"$tmp/bridge-$1.log" 2>&1 &
	pid[bridge_$1]=$!
}
stat_of() {   # NAME MEMBER: print it from the stats file
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bridge"][sys.argv[2]])' \
		"$tmp/$1.stats.json" "$2"
}
is_ready() {   # NAME [PID]: the stats file says ready (of that process)
	local r p
	r=$(stat_of "$1" ready) && p=$(stat_of "$1" pid) || return 1
	[[ $r == True && $p == "${2:-${pid[bridge_$1]}}" ]]
}
stat_cmp() {   # NAME MEMBER OP VALUE: test(1) on a member, read now
	local v
	v=$(stat_of "$1" "$2") || return 1
	test "$v" "$3" "$4"
}
lines_at_least() { [[ -f $1 ]] && (( $(wc -l <"$1") >= $2 )); }
subs_of() {   # NAME: subscriptions in broker NAME
	"$cli" stats --socket "$tmp/$1.sock" --json |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["broker"]["subscriptions"])'
}
subs_at_least() { (( $(subs_of "$1") >= $2 )); }

# listen NAME OUT COUNT KEY...: a listener in the background; returns once
# its subscriptions are active in the broker.
listen() {
	local host=$1 out=$2 count=$3 before
	shift 3
	before=$(subs_of "$host")
	"$cli" listen --socket "$tmp/$host.sock" --json --count "$count" --timeout 30000 "$@" \
		>"$tmp/$out" 2>>"$tmp/listen.log" &
	pid[listen_$out]=$!
	wait_for 10 "listener $out's subscription" subs_at_least "$host" $((before + $#))
}
# finished OUT: the listener exited 0 (got its count)
finished() {
	local p=${pid[listen_$1]} rc=0
	for _ in $(seq 600); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
	kill -0 "$p" 2>/dev/null && fail "listener $1 did not get its notifications in 30 s: $(cat "$tmp/$1")"
	wait "$p" || rc=$?
	unset "pid[listen_$1]"
	((rc == 0)) || fail "listener $1 exited $rc: $(cat "$tmp/$1")"
}
pub() {   # NAME KEY DATA...: one batch
	local host=$1
	shift
	"$cli" publish --socket "$tmp/$host.sock" -- "$@"
}

start_nats
say "nats-server pid ${pid[nats]} on 127.0.0.1:$nats_port, $mode mode"
start_broker a
start_broker b
write_config a
write_config b
"$bridge" --config "$tmp/a.ini" --check-config >"$tmp/check.out" || fail "--check-config"
grep -q "OK" "$tmp/check.out" || fail "--check-config said: $(cat "$tmp/check.out")"
start_bridge a
start_bridge b
wait_for 30 "bridge a ready" is_ready a
wait_for 30 "bridge b ready" is_ready b
say "two brokers, two bridges ready"

# ---- 1. whole and in order -------------------------------------------------
listen b one.json 5 data/x
pub a data/x one two three four five
finished one.json
python3 - "$tmp/one.json" <<'PY' || fail "1: batch not whole or not in order: $(cat "$tmp/one.json")"
import json, sys
n = [json.loads(l) for l in open(sys.argv[1])]
assert [x["data"] for x in n] == ["one", "two", "three", "four", "five"], n
assert all(x["key"] == "data/x" and x["event"] == 1 for x in n), n
assert [x["batch_index"] for x in n] == [0, 1, 2, 3, 4], n
assert all(x["batch_count"] == 5 for x in n), n
assert len({x["batch_id"] for x in n}) == 1, n
assert [x["seq"] for x in n] == [1, 2, 3, 4, 5], n
PY
say "1. a batch of 5 from A arrived on B as one batch of 5, in order"

# ---- 2. binary keys ----------------------------------------------------------
key=$'bin/\xff\xfe\x01 *>.~..\x7f'
key2='bin/plain.token-_9'
listen b two.json 2 "$key" "$key2"
pub a "$key" "binary"
pub a "$key2" "readable"
finished two.json
python3 - "$tmp/two.json" <<'PY' || fail "2: binary keys: $(cat "$tmp/two.json")"
import base64, json, sys
n = [json.loads(l) for l in open(sys.argv[1])]
want = b"bin/\xff\xfe\x01 *>.~..\x7f"
assert n[0]["key"] is None and base64.b64decode(n[0]["key_base64"]) == want, n[0]
assert n[0]["data"] == "binary", n[0]
assert n[1]["key"] == "bin/plain.token-_9" and n[1]["data"] == "readable", n[1]
PY
say "2. binary keys (not UTF-8, NATS wildcards, dots) arrived byte for byte"

# ---- 3. no loop --------------------------------------------------------------
listen a loop-a.json 2 data/loop data/marker
listen b loop-b.json 1 data/loop
pub a data/loop "from-a"
finished loop-b.json
# B's bridge would export an echo before anything published on B after it:
# once A has B's marker, an echo would have arrived at A already
pub b data/marker "from-b"
finished loop-a.json
python3 - "$tmp/loop-a.json" <<'PY' || fail "3: loop: A saw $(cat "$tmp/loop-a.json")"
import json, sys
n = [json.loads(l) for l in open(sys.argv[1])]
assert [(x["key"], x["data"]) for x in n] == [("data/loop", "from-a"), ("data/marker", "from-b")], n
PY
# so far A published 5 + 2 + 1 carried notes, B only its marker (the stats
# file is rewritten every second: wait for it, then compare exactly)
wait_for 10 "B's stats to count the marker" stat_cmp b forwarded -ge 1
wait_for 10 "A's stats to count 8" stat_cmp a forwarded -ge 8
[[ $(stat_of b forwarded) == 1 ]] || fail "3: B forwarded $(stat_of b forwarded) (want 1: only its own marker)"
[[ $(stat_of a forwarded) == 8 ]] || fail "3: A forwarded $(stat_of a forwarded) (want 8)"
say "3. rules both ways: no loop (A got its own note once and B's marker; B forwarded only the marker)"

# ---- 4. B's bridge killed and restarted ----------------------------------------
listen b gap.json $([[ $mode == core ]] && echo 5 || echo 12) data/gap
pub a data/gap g1 g2 g3
wait_for 10 "B to receive the first 3" lines_at_least "$tmp/gap.json" 3
kill -KILL "${pid[bridge_b]}"
wait "${pid[bridge_b]}" 2>/dev/null || true
unset "pid[bridge_b]"
wait_for 10 "A's stats to count g1..g3" stat_cmp a forwarded -ge 11
fa=$(stat_of a forwarded)
pub a data/gap m1 m2 m3
pub a data/gap m4 m5
pub a data/gap m6 m7
# gone to NATS before B's bridge is back, or B would simply receive them
wait_for 10 "A to forward the 7 published while B's bridge was down" \
	stat_cmp a forwarded -ge $((fa + 7))
start_bridge b
wait_for 30 "bridge b ready again" is_ready b
pub a data/gap n1 n2
finished gap.json
if [[ $mode == core ]]; then
	python3 - "$tmp/gap.json" <<'PY' || fail "4: core restart: $(cat "$tmp/gap.json")"
import base64, json, sys
n = [json.loads(l) for l in open(sys.argv[1])]
data = [x["data"] for x in n if not x.get("system")]
assert data == ["g1", "g2", "g3", "n1", "n2"], data
ov = [x for x in n if x.get("system")]
assert len(ov) == 1, ov
assert ov[0]["event"] == 0x10000000 and ov[0]["lost"] == 7, ov
assert ov[0]["key"] == "data/gap" and ov[0]["seq"] == 0, ov
# the report comes after g3 and before n1
kinds = ["ov" if x.get("system") else x["data"] for x in n]
assert kinds == ["g1", "g2", "g3", "ov", "n1", "n2"], kinds
PY
	wait_for 10 "B's stats to count the gap" stat_cmp b lost -ge 7
	[[ $(stat_of b lost) == 7 && $(stat_of b gaps) == 1 ]] ||
		fail "4: B's stats: gaps $(stat_of b gaps), lost $(stat_of b lost) (want 1 and 7)"
	say "4. B's bridge killed and restarted: one OVERFLOW with exactly 7 lost, on data/gap, between g3 and n1"
else
	python3 - "$tmp/gap.json" <<'PY' || fail "4: jetstream restart: $(cat "$tmp/gap.json")"
import json, sys
n = [json.loads(l) for l in open(sys.argv[1])]
assert not any(x.get("system") for x in n), n
data = [x["data"] for x in n]
assert data == ["g1", "g2", "g3", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "n1", "n2"], data
PY
	[[ $(stat_of b gaps) == 0 ]] || fail "4: B's stats: gaps $(stat_of b gaps) (want 0)"
	say "4. B's bridge killed and restarted: the durable consumer resumed, all 12 arrived in order, none lost, none twice"
fi

# ---- 5. NATS server restart --------------------------------------------------
stop_pid nats || true
wait_for 20 "bridge a to see NATS gone" stat_cmp a nats != connected
if [[ $mode == jetstream ]]; then
	listen b outage.json 3 data/outage
	pub a data/outage during-1 during-2   # stored once NATS is back
fi
start_nats "$nats_port"
wait_for 60 "bridge a ready after the NATS restart" is_ready a
wait_for 60 "bridge b ready after the NATS restart" is_ready b
listen b after.json 1 data/after
pub a data/after "after-restart"
finished after.json
grep -q '"after-restart"' "$tmp/after.json" || fail "5: after the NATS restart: $(cat "$tmp/after.json")"
if [[ $mode == jetstream ]]; then
	pub a data/outage after-1
	finished outage.json
	python3 - "$tmp/outage.json" <<'PY' || fail "5: published during the outage: $(cat "$tmp/outage.json")"
import json, sys
n = [json.loads(l) for l in open(sys.argv[1])]
assert [x["data"] for x in n] == ["during-1", "during-2", "after-1"], n
PY
	say "5. NATS restarted: both bridges reconnected; what A published during the outage arrived, in order"
else
	say "5. NATS restarted: both bridges reconnected, traffic flows again"
fi
[[ $(stat_of a nats_reconnects) -ge 1 ]] || fail "5: A's stats show no NATS reconnect"

# ---- 6. stats ------------------------------------------------------------------
python3 - "$tmp/a.stats.json" "$tmp/b.stats.json" <<'PY' || fail "6: stats files"
import json, sys
a = json.load(open(sys.argv[1]))["bridge"]
b = json.load(open(sys.argv[2]))["bridge"]
for k in ("forwarded", "received", "gaps", "lost", "duplicates", "rejected", "nats_reconnects"):
    assert isinstance(a[k], int) and isinstance(b[k], int), k
assert a["nats"] == "connected" and b["nats"] == "connected", (a["nats"], b["nats"])
# B restarted in 4.: its counters started again (n1, n2 at least)
assert a["forwarded"] >= 14 and b["received"] >= 2, (a, b)
assert a["node"] == "host-a" and b["node"] == "host-b"
PY
"$cli" stats --bridge "$tmp/b.stats.json" >"$tmp/stats-b.txt" || fail "6: shmnotify stats --bridge"
grep -Eq "^ *received +[0-9]+" "$tmp/stats-b.txt" && grep -Eq "nats +connected" "$tmp/stats-b.txt" ||
	fail "6: shmnotify stats --bridge printed: $(cat "$tmp/stats-b.txt")"
say "6. stats: $(tr -s ' \n' ' ' <"$tmp/stats-b.txt" | cut -c1-200)"

# ---- 7. clean SIGTERM ------------------------------------------------------------
stop_pid bridge_a || fail "7: bridge a exited $? on SIGTERM"
stop_pid bridge_b || fail "7: bridge b exited $? on SIGTERM"
[[ $(stat_of a stopped) == True ]] || fail "7: A's stats file does not say stopped"
say "7. SIGTERM: both bridges exited 0"
ok=1
say "PASS"
