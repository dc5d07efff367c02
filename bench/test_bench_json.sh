#!/usr/bin/env bash
# test_bench_json.sh BENCH - the JSON's status of each figure: "ok" with its
# runs, "skipped" with a reason for a case a transport does not take
# (shmnotify-lowlat runs blocking latency and idle only), never "failed" for
# one that was not run.
set -u
bench=$1
tmp=$(mktemp -d /tmp/shn-bench-json.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$bench" --smoke --check --peers shmnotify-lowlat --workloads throughput,latency \
	--case "64B batch 64,blocking,spin" --json="$tmp/r.json" >"$tmp/out" 2>"$tmp/err" ||
	{ cat "$tmp/out" "$tmp/err" >&2; fail "bench --smoke --check: exit $?"; }
row() { grep -F "\"case\": \"$1\", \"transport\": \"$2\"" "$tmp/r.json" | head -1; }

r=$(row "64B batch 64" shmnotify-lowlat)
[[ $r == *'"status": "skipped", "why": "skipped: the low-latency mode is measured on'* ]] ||
	fail "lowlat's throughput figure: $r"
r=$(row spin shmnotify-lowlat)
[[ $r == *'"status": "skipped"'* ]] || fail "lowlat's spin figure: $r"
r=$(row blocking shmnotify-lowlat)
[[ $r == *'"status": "ok", "median": '* ]] || fail "lowlat's blocking figure: $r"
r=$(row "64B batch 64" shmnotify)
[[ $r == *'"status": "ok", "median": '* ]] || fail "shmnotify's throughput figure: $r"
! grep -q '"status": "failed"' "$tmp/r.json" || fail "a figure failed: $(grep '"failed"' "$tmp/r.json")"
echo "ok: the JSON says ok for what ran and skipped, with why, for what a transport does not take"
