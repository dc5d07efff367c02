#!/usr/bin/env bash
# test_cli_io.sh SHMNOTIFYD SHMNOTIFY - what shmnotify reads and writes:
# `listen --json` piped into `publish --json -` reproduces the stream
# (binary data by data_base64, batches kept, system events skipped);
# publish KEY - (a line each, --batch N) and --data-base64; listen's plain
# lines quote what would read two ways, --format raw prints the data
# alone, colour only on a terminal and never with NO_COLOR; publish --sync
# --timeout and Ctrl-C during a --sync wait say what became of the batch.
set -euo pipefail
broker=$1 cli=$2
name=test_cli_io
# shellcheck source=cli/test_lib.sh
. "$(dirname "$0")/test_lib.sh"
# key, data or data_base64, event, position in the batch: what a replay keeps
fields() {
	python3 -c '
import json, sys
for ln in open(sys.argv[1]):
    o = json.loads(ln)
    print(json.dumps([o.get(k) for k in ("key", "key_base64", "data", "data_base64", "event",
                                         "batch_index", "batch_count", "seq")]))' "$1"
}

# ---- 1. a captured stream replays: listen --json | publish --json - -----------
"$cli" listen --socket "$S" --json --count 9 --timeout 20000 >"$tmp/cap1" &
l1=$!
subs 1
printf 'one line\nsecond "line" with = and \\\n\n' | "$cli" publish --socket "$S" --event 0x2 k/lines -
printf 'AAEC/w==\n//79\n' | "$cli" publish --socket "$S" --data-base64 --batch 1 k/bin -
"$cli" publish --socket "$S" --data-base64 k/arg "$(printf 'tab\there' | base64)" ""
"$cli" publish --socket "$S" --event 0x4 "k/ütf" "ünïcode" x
wait "$l1" || fail "listen exited $?: $(cat "$tmp/cap1")"
subs 0
grep -q '"data":null,"data_base64":"AAEC/w=="' "$tmp/cap1" || fail "no binary data: $(cat "$tmp/cap1")"
grep -q '"key":"k/lines","data":"","batch_id":1,"batch_index":2,"batch_count":3' "$tmp/cap1" ||
	fail "publish KEY - did not make the three lines one batch: $(cat "$tmp/cap1")"
# a system event in the capture (as listen writes an overflow) is skipped on replay
{ head -3 "$tmp/cap1"
  echo '{"seq":0,"event":268435456,"system":"overflow","lost":5,"key":null,"data":null}'
  tail -n +4 "$tmp/cap1"; } >"$tmp/cap1.in"

"$cli" listen --socket "$S" --json --count 9 --timeout 20000 >"$tmp/cap2" &
l2=$!
subs 1
"$cli" publish --socket "$S" --json - <"$tmp/cap1.in" 2>"$tmp/replay.err" ||
	fail "publish --json - failed: $(cat "$tmp/replay.err")"
wait "$l2" || fail "listen exited $?: $(cat "$tmp/cap2")"
subs 0
grep -q "skipped 1 system event line" "$tmp/replay.err" ||
	fail "no note about the skipped system event: $(cat "$tmp/replay.err")"
diff <(fields "$tmp/cap1") <(fields "$tmp/cap2") >"$tmp/diff" ||
	fail "the replayed stream differs: $(cat "$tmp/diff")"
echo "replay: $(wc -l <"$tmp/cap2") notifications in $(python3 -c '
import json, sys
print(len({json.loads(l)["time_ns"] for l in open(sys.argv[1])}))' "$tmp/cap2") batches, as captured"

# bad input: the line is named, nothing from it on is published
rc=0
printf '{"key":"a","data":"x"}\nnot json\n' |
	"$cli" publish --socket "$S" --json - 2>"$tmp/err" || rc=$?
[[ $rc == 1 ]] && grep -q "standard input, line 2: not JSON" "$tmp/err" ||
	fail "bad JSON line: exit $rc: $(cat "$tmp/err")"
rc=0; echo '!!' | "$cli" publish --socket "$S" --data-base64 k - 2>"$tmp/err" || rc=$?
[[ $rc == 1 ]] && grep -q "line 1: not base64" "$tmp/err" ||
	fail "bad base64 line: exit $rc: $(cat "$tmp/err")"
for bad in "--json k -" "--batch 2 k a b" "--timeout 5 k a" "--json --data-base64 -"; do
	rc=0; "$cli" publish --socket "$S" $bad </dev/null >/dev/null 2>"$tmp/err" || rc=$?
	[[ $rc == 2 ]] && grep -q "^usage: shmnotify publish" "$tmp/err" ||
		fail "'publish $bad' exited $rc: $(cat "$tmp/err")"
done
echo "bad input: the line named; bad arguments exit 2"

# ---- 2. listen's plain lines, --format raw, colour -------------------------------
"$cli" listen --socket "$S" --count 6 --timeout 20000 k/q >"$tmp/plain" &
l3=$!
"$cli" listen --socket "$S" --format raw --count 6 --timeout 20000 k/q >"$tmp/raw" &
l4=$!
subs 2
"$cli" publish --socket "$S" k/q "a b" 'say "hi"' "" "x=y" "$(printf 'bell\a')" plain
wait "$l3" "$l4" || fail "listen exited non-zero"
subs 0
want='data="a b" 
data="say \"hi\"" 
data="" 
data="x=y" 
data="bell\x07" 
data=plain '
got=$(grep -o 'data=.* batch=' "$tmp/plain" | sed 's/batch=$//')
[[ $got == "$want" ]] || fail "plain lines: $(cat "$tmp/plain")"
printf 'a b\nsay "hi"\n\nx=y\nbell\a\nplain\n' | cmp - "$tmp/raw" || fail "raw: $(od -c "$tmp/raw")"
grep -q $'\033' "$tmp/plain" && fail "colour on a pipe: $(cat -v "$tmp/plain")"
echo "plain: values with blanks, quotes, '=' or controls quoted; raw: the data alone"

# colour: on a terminal (script(1) gives one), not with NO_COLOR, forced by --color always
colour_run() {   # ENV... : listen on a terminal for one notification; its output
	"$@" script -qec "$cli listen --socket $S --count 1 --timeout 20000 k/c" /dev/null \
		>"$tmp/tty.out" 2>&1 &
	local p=$!
	subs 1
	"$cli" publish --socket "$S" k/c hello
	wait "$p" || fail "listen on a terminal exited $?: $(cat -v "$tmp/tty.out")"
	subs 0
}
if command -v script >/dev/null; then
	colour_run env -u NO_COLOR TERM=xterm
	grep -q $'\033\\[1;36mk/c\033\\[0m' "$tmp/tty.out" ||
		fail "no colour on a terminal: $(cat -v "$tmp/tty.out")"
	colour_run env NO_COLOR=1 TERM=xterm
	grep -q 'key=k/c data=hello' "$tmp/tty.out" && ! grep -q $'\033\\[' "$tmp/tty.out" ||
		fail "colour despite NO_COLOR: $(cat -v "$tmp/tty.out")"
	echo "colour: on a terminal, none with NO_COLOR"
else
	echo "skip: colour on a terminal needs script(1) (util-linux)"
fi
"$cli" listen --socket "$S" --color always --count 1 --timeout 20000 k/c >"$tmp/always" &
l5=$!
subs 1
NO_COLOR=1 "$cli" publish --socket "$S" k/c hello
wait "$l5"
subs 0
grep -q $'\033\\[1;36m' "$tmp/always" || fail "--color always: $(cat -v "$tmp/always")"

# ---- 3. publish --sync: --timeout, Ctrl-C ---------------------------------------
"$cli" listen --socket "$S" --timeout 60000 k/sync >/dev/null &
l6=$!
pids+=($l6)
subs 1
kill -STOP "$l6"          # a subscriber that does not read
rc=0; "$cli" publish --socket "$S" --sync --timeout 300 k/sync x 2>"$tmp/err" || rc=$?
[[ $rc == 1 ]] && grep -q "did not consume the batch within 300 ms" "$tmp/err" ||
	fail "publish --sync --timeout 300: exit $rc: $(cat "$tmp/err")"
"$cli" publish --socket "$S" --sync k/sync y 2>"$tmp/err" &
p=$!
sleep 0.5
kill -INT "$p"
rc=0; wait "$p" || rc=$?
[[ $rc == 130 ]] && grep -q "publish --sync interrupted while batch 1 waited" "$tmp/err" ||
	fail "Ctrl-C during publish --sync: exit $rc: $(cat "$tmp/err")"
kill -CONT "$l6"
echo "publish --sync: --timeout and Ctrl-C say what became of the batch"
