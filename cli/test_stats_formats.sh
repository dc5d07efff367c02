#!/usr/bin/env bash
# test_stats_formats.sh SHMNOTIFYD SHMNOTIFY - shmnotify stats --json parses
# as JSON (python3's json module) with the documented members, --openmetrics
# follows the OpenMetrics text format line by line, and shmnotify doctor
# passes against a live broker, and monitor shows traffic on any key.
set -euo pipefail
broker=$1 cli=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shn-stats.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "test_stats_formats: FAIL: $*" >&2; exit 1; }
"$broker" --socket "$tmp/s.sock" 2>"$tmp/broker.log" &
pids+=($!)
for _ in $(seq 100); do [[ -S $tmp/s.sock ]] && break; sleep 0.05; done
"$cli" listen --socket "$tmp/s.sock" --count 1000 --timeout 20000 --name 'indexer "one"' \
	some/key >/dev/null &
pids+=($!)
for _ in $(seq 100); do
	"$cli" stats --socket "$tmp/s.sock" --json | grep -q '"subscriptions": *1' && break
	sleep 0.05
done
"$cli" publish --socket "$tmp/s.sock" some/key one two three
# publish returns once the batch is in its ring: wait until the broker routed it
for _ in $(seq 100); do
	"$cli" stats --socket "$tmp/s.sock" --json | grep -q '"delivered": *3' && break
	sleep 0.05
done

"$cli" stats --socket "$tmp/s.sock" --json >"$tmp/stats.json"
python3 - "$tmp/stats.json" <<'PY' || fail "stats --json"
import json, sys
doc = json.load(open(sys.argv[1]))
b = doc["broker"]
for k in ("pid", "clients", "ports", "subscriptions", "protocol_errors", "ring_errors",
          "notifications_routed"):
    assert isinstance(b[k], int), k
ports = [p for c in doc["clients"] for p in c["ports"]]
assert len(ports) == 1 and ports[0]["delivered"] == 3, ports
assert ports[0]["high_water"] > 0, ports          # three records waited there at some publish
assert isinstance(b["uptime_seconds"], int) and b["uptime_seconds"] >= 0
for c in doc["clients"]:
    for k in ("id", "pid", "uid", "published", "pub_ring_used", "pub_ring_capacity",
              "last_publish_ms_ago"):
        assert isinstance(c[k], int), k
    assert c["last_publish_ms_ago"] >= -1
    assert c["name"] is None or isinstance(c["name"], str), c
names = sorted(c["name"] or "-" for c in doc["clients"])
# the listener's --name, and this stats command's own name
assert 'indexer "one"' in names and "shmnotify stats" in names, names
print("stats --json: valid JSON,", len(doc["clients"]), "clients (%s), 1 port with 3 delivered"
      % ", ".join(names))
PY

"$cli" stats --socket "$tmp/s.sock" --openmetrics >"$tmp/stats.om"
python3 - "$tmp/stats.om" <<'PY' || fail "stats --openmetrics"
import re, sys
lines = open(sys.argv[1]).read().split("\n")
assert lines[-1] == "" and lines[-2] == "# EOF", "must end with '# EOF' and a newline"
name = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
typ = re.compile(r"# TYPE (%s) (counter|gauge)$" % name)
# a label value escapes backslash, double quote and newline (\\ \" \n), nothing else
val = r'"(?:[^"\\\n]|\\[\\"n])*"'
smp = re.compile(r"(%s)(\{%s=%s(,%s=%s)*\})? (-?[0-9]+(\.[0-9]+)?)$" % (name, name, val, name, val))
families, current, samples = {}, None, 0
for ln in lines[:-2]:
    m = typ.match(ln)
    if m:
        assert m.group(1) not in families, "family %s declared twice" % m.group(1)
        families[m.group(1)] = m.group(2)
        current = m.group(1)
        continue
    m = smp.match(ln)
    assert m, "bad line: %r" % ln
    expect = current + "_total" if families[current] == "counter" else current
    assert m.group(1) == expect, "sample %s outside its family %s" % (m.group(1), current)
    samples += 1
assert "shmnotify_port_delivered" in families and samples > 10
named = [ln for ln in lines if ln.startswith("shmnotify_client_published_total{")]
assert any(',name="indexer \\"one\\""}' in ln for ln in named), named
print("stats --openmetrics: %d families, %d samples, format ok" % (len(families), samples))
PY

# monitor: sees a notification on a key nobody subscribed to, as listen --json would
"$cli" monitor --socket "$tmp/s.sock" --count 2 --timeout 10000 >"$tmp/monitor.out" &
mpid=$!
for _ in $(seq 100); do
	"$cli" stats --socket "$tmp/s.sock" --json | grep -q '"subscriptions": *2' && break
	sleep 0.05
done
"$cli" publish --socket "$tmp/s.sock" --event 0x4 nobody/else "m1" "m2"
wait "$mpid" || fail "monitor exited $?: $(cat "$tmp/monitor.out")"
grep -q '"key":"nobody/else","data":"m2","batch_id":1,"batch_index":1,"batch_count":2' \
	"$tmp/monitor.out" || fail "monitor printed: $(cat "$tmp/monitor.out")"
"$cli" monitor --socket "$tmp/s.sock" some/key 2>/dev/null && fail "monitor accepted a KEY"
echo "monitor: saw $(wc -l <"$tmp/monitor.out") notifications on an unwatched key"

# bad arguments: a usage error (exit 2), not a run
for bad in "stats --json --openmetrics" "doctor extra" "monitor --json"; do
	rc=0; "$cli" $bad --socket "$tmp/s.sock" >/dev/null 2>"$tmp/err" || rc=$?
	[[ $rc == 2 ]] && grep -q "^usage: shmnotify" "$tmp/err" ||
		fail "'shmnotify $bad' exited $rc: $(cat "$tmp/err")"
done
rc=0; "$cli" listen --socket "$tmp/s.sock" --name $'tab\there' k >/dev/null 2>"$tmp/err" || rc=$?
[[ $rc == 2 ]] && grep -q "^shmnotify listen: --name: a name may not contain control characters" \
	"$tmp/err" || fail "listen --name with a tab exited $rc: $(cat "$tmp/err")"
echo "usage errors: exit 2 with a usage line"

# the human table: the listener under its name
"$cli" stats --socket "$tmp/s.sock" >"$tmp/stats.txt"
grep -Eq '^  [0-9]+ +[0-9]+ +[0-9]+ +indexer "one" +[0-9]+ ' "$tmp/stats.txt" ||
	fail "no client named indexer \"one\" in the table: $(cat "$tmp/stats.txt")"
echo "stats table: $(grep -c 'indexer "one"' "$tmp/stats.txt") client named indexer \"one\""

# monitor by another user of a shared broker: refused with a clear message
if [[ $(id -u) == 0 ]] && command -v setpriv >/dev/null; then
	printf '[socket]\nmode = 0666\n' >"$tmp/shared.conf"
	chmod 755 "$tmp"
	"$broker" --socket "$tmp/shared.sock" --config "$tmp/shared.conf" 2>"$tmp/shared.log" &
	pids+=($!)
	for _ in $(seq 100); do [[ -S $tmp/shared.sock ]] && break; sleep 0.05; done
	# The build tree may sit where uid 65534 cannot reach (a clone under
	# /root or in a mktemp -d directory): run copies of the command and its
	# library from $tmp, which it can.
	mkdir -p "$tmp/nobody"
	cp "$cli" "$tmp/nobody/shmnotify"
	lib=$(ldd "$cli" | awk '/libshmnotify\.so/ { print $3 }')
	[[ -n $lib ]] && cp -L "$lib" "$tmp/nobody/$(basename "$lib")"
	chmod -R a+rX "$tmp/nobody"
	rc=0
	setpriv --reuid=65534 --regid=65534 --clear-groups env LD_LIBRARY_PATH="$tmp/nobody" \
		"$tmp/nobody/shmnotify" monitor \
		--socket "$tmp/shared.sock" --count 1 >/dev/null 2>"$tmp/err" || rc=$?
	[[ $rc == 1 ]] && grep -q "cannot monitor: only root or the broker's own user" "$tmp/err" ||
		fail "monitor as uid 65534 exited $rc: $(cat "$tmp/err")"
	grep -q "monitor refused" "$tmp/shared.log" || fail "the broker did not log the refusal"
	echo "monitor as uid 65534: $(cat "$tmp/err")"
else
	echo "skip: monitor refusal needs root and setpriv"
fi

out=$("$cli" doctor --socket "$tmp/s.sock") || fail "doctor exited non-zero: $out"
grep -q '^ok    broker' <<<"$out" || fail "doctor did not see the broker: $out"
echo "doctor: $(tail -1 <<<"$out")"
