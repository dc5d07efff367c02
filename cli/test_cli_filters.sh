#!/usr/bin/env bash
# test_cli_filters.sh SHMNOTIFYD SHMNOTIFY [prefix] - keys and prefixes on
# the command line, and who watches what:
#   - listen with a KEY holding '*' or '>' notes on stderr that keys match
#     exactly and names the --prefix meant, and still subscribes to the key
#     as written; --key KEY is a KEY; bad lengths and misplaced options are
#     usage errors (status 2);
#   - monitor --key/--prefix print only what they take, in order, and
#     --count counts what is printed;
#   - stats --subscriptions --json (parsed with python3's json): every
#     filter of several clients and ports (exact and any-key, a key twice on
#     one port, a key that is not UTF-8) with its client, pid, name, port,
#     conn, kind and mask, and per key the ports and filters watching it;
#     the table view; past 10000 filters and keys, the lists stop at 10000
#     with the totals and "truncated".
# With "prefix" (test_cli_prefix, which needs prefix filters in the broker
# and the library): listen --prefix beside KEYs on one port, on the broker
# path and the direct path; stats --subscriptions with prefixes (a prefix
# and the same bytes as a key are two entries; the empty prefix, which takes
# every key, is an any-key filter).
set -euo pipefail
broker=$1 cli=$2 mode=${3:-}
name=test_cli_filters
# shellcheck source=cli/test_lib.sh
. "$(dirname "$0")/test_lib.sh"
# the keys of a listen --json / monitor capture, one per line
keys_of() { python3 -c '
import json, sys
for ln in open(sys.argv[1]):
    print(json.loads(ln)["key"])' "$1"; }
stop_all_listeners() {   # every process started here but the broker
	for p in "${pids[@]:1}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]:1}"; do wait "$p" 2>/dev/null || true; done
	pids=("${pids[0]}")
	subs 0
}

if [[ $mode == prefix ]]; then
	# ---- listen --prefix beside KEYs, on both data paths --------------------------
	# one publishing process, a batch per line: the first batch of a pair goes
	# through the broker, which then offers the direct ring the rest may take
	jsonl() { local i=0 k; for k in "$@"; do
		printf '{"key":"%s","data":"d","batch_id":%d,"batch_count":1,"sender_pid":1}\n' "$k" $((++i))
	done; }
	warm=(); for _ in $(seq 30); do warm+=(xwarm); done
	for direct in on off; do
		SHMNOTIFY_DIRECT=$direct "$cli" listen --socket "$S" --json --count 34 --timeout 20000 \
			--prefix sensors/ --prefix x --key exact >"$tmp/p.$direct" 2>"$tmp/p.err" &
		l=$!
		subs 3
		jsonl "${warm[@]}" sensors/t1 other x xyz exactly exact sensors |
			SHMNOTIFY_DIRECT=$direct "$cli" publish --socket "$S" --json -
		wait "$l" || fail "listen --prefix ($direct) exited $?: $(cat "$tmp/p.err")"
		got=$(keys_of "$tmp/p.$direct" | paste -sd' ')
		[[ $got == "${warm[*]} sensors/t1 x xyz exact" ]] ||
			fail "listen --prefix sensors/ --prefix x --key exact (direct $direct) got: $got"
		subs 0
	done
	echo "listen --prefix: keys and prefixes on one port, both paths"

	# ---- the hint's --prefix is the one meant ------------------------------------
	"$cli" listen --socket "$S" --json --count 1 --timeout 20000 --prefix 'a/' \
		>"$tmp/hint.out" 2>/dev/null &
	l=$!
	subs 1
	"$cli" publish --socket "$S" b/1 d
	"$cli" publish --socket "$S" a/1 d
	wait "$l" || fail "listen --prefix a/ exited $?"
	[[ $(keys_of "$tmp/hint.out") == a/1 ]] || fail "--prefix a/ got $(cat "$tmp/hint.out")"
	subs 0

	# ---- stats --subscriptions with prefixes ------------------------------------------
	"$cli" listen --socket "$S" --name one --prefix sensors/ sensors/ >/dev/null &
	pids+=($!)
	"$cli" listen --socket "$S" --name two --events 0x2 --prefix sensors/ --prefix '' >/dev/null &
	pids+=($!)
	subs 4
	"$cli" stats --socket "$S" --subscriptions --json >"$tmp/sp.json"
	python3 - "$tmp/sp.json" <<'EOF' || fail "stats --subscriptions with prefixes: $(cat "$tmp/sp.json")"
import json, sys
s = json.load(open(sys.argv[1]))["subscriptions"]
f = sorted(((x["name"], x["kind"], x["key"], x["mask"]) for x in s["filters"]), key=repr)
want = sorted([("one", "prefix", "sensors/", 0x0fffffff), ("one", "exact", "sensors/", 0x0fffffff),
               ("two", "prefix", "sensors/", 2), ("two", "any", None, 2)], key=repr)
assert f == want, f
k = [(x["kind"], x["key"], x["ports"], x["filters"]) for x in s["keys"]]
assert k == [("any", None, 1, 1), ("exact", "sensors/", 1, 1), ("prefix", "sensors/", 2, 2)], k
assert (s["filters_total"], s["keys_total"]) == (4, 3)
EOF
	"$cli" stats --socket "$S" --subscriptions >"$tmp/sp.txt"
	grep -qE '^  2 +2 +prefix +sensors/$' "$tmp/sp.txt" || fail "table: $(cat "$tmp/sp.txt")"
	stop_all_listeners
	echo "stats --subscriptions: prefixes, a prefix beside the same key, the empty prefix"
	echo "test_cli_filters prefix: ok"
	exit 0
fi

# ---- a KEY that looks like a pattern ----------------------------------------------
"$cli" listen --socket "$S" --json --count 1 --timeout 20000 'sensors/*' >"$tmp/star.out" \
	2>"$tmp/star.err" &
l=$!
subs 1
grep -q "keys match exactly, so 'sensors/\*' matches only the key 'sensors/\*'" "$tmp/star.err" &&
	grep -q "use --prefix 'sensors/'" "$tmp/star.err" || fail "no hint for sensors/*: $(cat "$tmp/star.err")"
"$cli" publish --socket "$S" sensors/t1 d
"$cli" publish --socket "$S" 'sensors/*' d
wait "$l" || fail "listen 'sensors/*' exited $?"
[[ $(keys_of "$tmp/star.out") == 'sensors/*' ]] || fail "'sensors/*' is not exact: $(cat "$tmp/star.out")"
subs 0
"$cli" listen --socket "$S" --timeout 1 'a.>' 2>"$tmp/gt.err" || true
grep -q "use --prefix 'a.'" "$tmp/gt.err" || fail "no hint for a.>: $(cat "$tmp/gt.err")"
"$cli" listen --socket "$S" --timeout 1 '*' 2>"$tmp/all.err" || true
grep -q "for every key, give no KEY" "$tmp/all.err" || fail "no hint for *: $(cat "$tmp/all.err")"
"$cli" listen --socket "$S" --timeout 1 plain/key 2>"$tmp/plain.err" || true
[[ ! -s $tmp/plain.err ]] || fail "a hint for a plain key: $(cat "$tmp/plain.err")"
echo "listen: a KEY with '*' or '>' gets a note naming the --prefix, and matches exactly"

# ---- --key, and what is refused ----------------------------------------------------
"$cli" listen --socket "$S" --json --count 1 --timeout 20000 --key -dash >"$tmp/dash.out" &
l=$!
subs 1
"$cli" publish --socket "$S" -- -dash d
wait "$l" || fail "listen --key -dash exited $?"
[[ $(keys_of "$tmp/dash.out") == -dash ]] || fail "--key -dash: $(cat "$tmp/dash.out")"
subs 0
long=$(printf 'k%.0s' $(seq 257))
usage() {   # WHAT ARGS...: exit status 2 and a message
	local what=$1 rc=0
	shift
	"$cli" "$@" --socket "$S" 2>"$tmp/usage.err" || rc=$?
	[[ $rc == 2 ]] || fail "$what: exit $rc, not 2: $(cat "$tmp/usage.err")"
	grep -q "^usage: " "$tmp/usage.err" || fail "$what: no usage line: $(cat "$tmp/usage.err")"
}
usage "a 257-byte --prefix" listen --prefix "$long"
usage "a 257-byte --key" listen --key "$long"
usage "an empty --key" listen --key ''
usage "monitor KEY" monitor somekey
usage "--subscriptions --watch" stats --subscriptions --watch
usage "--subscriptions --openmetrics" stats --subscriptions --openmetrics
echo "listen --key KEY; lengths and option mixes refused with status 2"

# ---- monitor --key / --prefix --------------------------------------------------------
"$cli" monitor --socket "$S" --key a --prefix b/ --count 3 --timeout 20000 >"$tmp/mon.out" &
l=$!
subs 1
for k in c a b/x zz b b/y a; do "$cli" publish --socket "$S" "$k" d; done
wait "$l" || fail "monitor --key a --prefix b/ exited $?: $(cat "$tmp/mon.out")"
[[ $(keys_of "$tmp/mon.out" | paste -sd' ') == "a b/x b/y" ]] ||
	fail "monitor --key a --prefix b/ printed: $(cat "$tmp/mon.out")"
subs 0
# --timeout counts what is printed: traffic it passes over does not keep it
# alive.  A feeder publishes every 0.1 s for 20 s and more; the monitor,
# started after it, must end on its own (status 0, nothing printed) while
# the feeder still runs (a monitor counting what arrives would outlive it).
for _ in $(seq 200); do "$cli" publish --socket "$S" other d; sleep 0.1; done &
feeder=$!
pids+=($feeder)
sleep 0.3
rc=0; "$cli" monitor --socket "$S" --key nothing --timeout 300 >"$tmp/mon2.out" || rc=$?
kill -0 "$feeder" 2>/dev/null || fail "monitor --key nothing --timeout 300 outlived 20 s of traffic"
kill "$feeder"; wait "$feeder" 2>/dev/null || true
[[ $rc == 0 && ! -s $tmp/mon2.out ]] || fail "monitor --key nothing: exit $rc: $(cat "$tmp/mon2.out")"
subs 0
echo "monitor --key/--prefix: only what they take, in order; --timeout counts what is printed"

# ---- stats --subscriptions ------------------------------------------------------------
"$cli" listen --socket "$S" --name one a/b c >/dev/null &
p1=$!
pids+=($p1)
"$cli" listen --socket "$S" --name two --events 0x4 a/b a/b "k e y" "$(printf 'bin\xff')" >/dev/null &
p2=$!
pids+=($p2)
"$cli" listen --socket "$S" --name three >/dev/null &
p3=$!
pids+=($p3)
subs 7
"$cli" stats --socket "$S" --subscriptions --json >"$tmp/subs.json"
python3 - "$tmp/subs.json" "$p1" "$p2" "$p3" <<'EOF' || fail "stats --subscriptions --json: $(cat "$tmp/subs.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
p1, p2, p3 = map(int, sys.argv[2:5])
assert "broker" in doc and "clients" in doc, "the usual document is there too"
s = doc["subscriptions"]
assert s["limit"] == 10000 and not s["filters_truncated"] and not s["keys_truncated"], s
assert s["filters_total"] == 7 == len(s["filters"]) == doc["broker"]["subscriptions"], s
f = s["filters"]
for x in f:
    assert set(x) >= {"client", "pid", "name", "port", "conn", "kind", "key", "mask"}, x
    assert x["conn"] > 0 and x["port"] > 0, x
# who: each filter names its owner as the clients array does
owner = {c["id"]: (c["pid"], c["name"]) for c in doc["clients"]}
assert all(owner[x["client"]] == (x["pid"], x["name"]) for x in f), f
got = sorted(((x["pid"], x["kind"], x["key"], x.get("key_base64"), x["mask"]) for x in f), key=repr)
want = sorted([(p1, "exact", "a/b", None, 0x0fffffff), (p1, "exact", "c", None, 0x0fffffff),
               (p2, "exact", "a/b", None, 4), (p2, "exact", "a/b", None, 4),
               (p2, "exact", "k e y", None, 4), (p2, "exact", None, "Ymlu/w==", 4),
               (p3, "any", None, None, 0x0fffffff)], key=repr)
assert got == want, got
# one port per listen: the two a/b filters of "two" share theirs, with conns 1 and 2
two = [x for x in f if x["pid"] == p2]
assert len({x["port"] for x in two}) == 1 and sorted(x["conn"] for x in two) == [1, 2, 3, 4], two
# per key: any first, then the keys in byte order; a/b on 2 ports by 3 filters
k = [(x["kind"], x["key"], x.get("key_base64"), x["ports"], x["filters"]) for x in s["keys"]]
assert k == [("any", None, None, 1, 1), ("exact", "a/b", None, 2, 3), ("exact", None, "Ymlu/w==", 1, 1),
             ("exact", "c", None, 1, 1), ("exact", "k e y", None, 1, 1)], k
assert s["keys_total"] == 5
EOF
# without the flag, no section: the usual stats stay small
"$cli" stats --socket "$S" --json | python3 -c '
import json, sys
sys.exit("subscriptions" in json.load(sys.stdin))' || fail "stats --json has a subscriptions section"
"$cli" stats --socket "$S" --subscriptions >"$tmp/subs.txt"
grep -q "7 filters" "$tmp/subs.txt" || fail "table: no total: $(cat "$tmp/subs.txt")"
grep -qE '^  2 +3 +exact +a/b$' "$tmp/subs.txt" || fail "table: no a/b row: $(cat "$tmp/subs.txt")"
grep -qE '^  1 +1 +any +\(every key\)$' "$tmp/subs.txt" || fail "table: no any row: $(cat "$tmp/subs.txt")"
grep -qE '^  1 +1 +exact +"k e y"$' "$tmp/subs.txt" || fail "table: key not quoted: $(cat "$tmp/subs.txt")"
grep -qE '^  1 +1 +exact +base64:Ymlu/w==$' "$tmp/subs.txt" || fail "table: binary key: $(cat "$tmp/subs.txt")"
grep -qE "^  [0-9]+ +$p2 +two +[0-9]+ +1 +0x00000004 +exact +a/b$" "$tmp/subs.txt" ||
	fail "table: no filter row of two: $(cat "$tmp/subs.txt")"
stop_all_listeners
echo "stats --subscriptions: filters of 3 clients, counts per key, the table"

# ---- past the limit: 10000 entries, the totals, "truncated" ---------------------------------
mapfile -t many < <(seq -f 'many/%05g' 0 10004)
"$cli" listen --socket "$S" "${many[@]}" >/dev/null &
pids+=($!)
subs 10005
"$cli" stats --socket "$S" --subscriptions --json >"$tmp/big.json"
python3 - "$tmp/big.json" <<'EOF' || fail "10005 filters: $(head -c 600 "$tmp/big.json")"
import json, sys
s = json.load(open(sys.argv[1]))["subscriptions"]
assert (s["filters_total"], len(s["filters"]), s["filters_truncated"]) == (10005, 10000, True), s["filters_total"]
assert (s["keys_total"], len(s["keys"]), s["keys_truncated"]) == (10005, 10000, True), s["keys_total"]
assert [x["key"] for x in s["keys"][:2]] == ["many/00000", "many/00001"]
assert all(x["ports"] == 1 and x["filters"] == 1 for x in s["keys"])
EOF
"$cli" stats --socket "$S" --subscriptions >"$tmp/big.txt"
grep -q "(the first 10000 of 10005, in byte order: the broker lists at most 10000)" "$tmp/big.txt" ||
	fail "table: no truncation line: $(tail -3 "$tmp/big.txt")"
stop_all_listeners
echo "stats --subscriptions: 10005 filters listed as 10000, totals 10005, truncated"
echo "test_cli_filters: ok"
