#!/usr/bin/env bash
# test_stats_formats.sh SHMNOTIFYD SHMNOTIFY - shmnotify stats --json parses
# as JSON (python3's json module) with the documented members, --openmetrics
# follows the OpenMetrics text format line by line and passes the
# prometheus_client OpenMetrics parser (Debian: python3-prometheus-client)
# with the right types, a # HELP each, limits, no pid label; the tables name
# refusal counters as refusals and leave the stats client out; stats
# --watch prints rates per second; shmnotify doctor passes against a live
# broker, and monitor shows traffic on any key.
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
typ = re.compile(r"# TYPE (%s) (counter|gauge|info)$" % name)
hlp = re.compile(r"# HELP (%s) \S.*$" % name)
# a label value escapes backslash, double quote and newline (\\ \" \n), nothing else
val = r'"(?:[^"\\\n]|\\[\\"n])*"'
smp = re.compile(r"(%s)(\{%s=%s(,%s=%s)*\})? (-?[0-9]+(\.[0-9]+)?)$" % (name, name, val, name, val))
families, current, samples = {}, None, 0
helped = set()
for ln in lines[:-2]:
    m = hlp.match(ln)
    if m:
        assert m.group(1) == current and current not in helped, "HELP out of place: %r" % ln
        helped.add(current)
        continue
    m = typ.match(ln)
    if m:
        assert m.group(1) not in families, "family %s declared twice" % m.group(1)
        families[m.group(1)] = m.group(2)
        current = m.group(1)
        continue
    m = smp.match(ln)
    assert m, "bad line: %r" % ln
    expect = current + {"counter": "_total", "info": "_info"}.get(families[current], "")
    assert m.group(1) == expect, "sample %s outside its family %s" % (m.group(1), current)
    samples += 1
assert "shmnotify_port_delivered" in families and samples > 10
assert helped == set(families), "no # HELP for %s" % (set(families) - helped)
named = [ln for ln in lines if ln.startswith("shmnotify_client_published_total{")]
assert any(',name="indexer \\"one\\""}' in ln for ln in named), named
print("stats --openmetrics: %d families, %d samples, format ok" % (len(families), samples))
PY

# the real parser: Debian's python3-prometheus-client (in the Makefile's DEPS)
om_python=
for py in python3 /usr/bin/python3; do
	if command -v "$py" >/dev/null &&
	   "$py" -c 'import prometheus_client.openmetrics.parser' 2>/dev/null; then
		om_python=$py
		break
	fi
done
if [[ -n $om_python ]]; then
	"$om_python" - "$tmp/stats.om" <<'PY' || fail "stats --openmetrics (prometheus_client parser)"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
def typ(n): return fams[n].type
for n in ("shmnotify_broker_clients", "shmnotify_broker_acl_rules",
          "shmnotify_broker_limits_max_clients", "shmnotify_broker_limits_max_data_size",
          "shmnotify_broker_default_capacity", "shmnotify_port_capacity"):
    assert typ(n) == "gauge", (n, typ(n))     # configured or current: gauges
for n in ("shmnotify_broker_notifications_routed", "shmnotify_broker_refused_clients_limit",
          "shmnotify_port_delivered", "shmnotify_client_published"):
    assert typ(n) == "counter", (n, typ(n))
assert "shmnotify_broker_limit_clients" not in fams, "a refusal counter named as a limit"
assert all(f.documentation for f in fams.values()), "a family without HELP"
info = fams["shmnotify_broker"]
assert info.type == "info" and info.samples[0].labels.get("io") in ("uring", "epoll"), info
for f in fams.values():
    for s in f.samples:
        assert "pid" not in s.labels, "a pid label: %s" % (s,)
clients = fams["shmnotify_broker_clients"].samples[0].value
named = [s.labels.get("name") for s in fams["shmnotify_client_published"].samples]
# the stats client neither listed nor counted (a publisher that just left
# may still be both)
assert 'indexer "one"' in named and "shmnotify stats" not in named, named
assert clients == len(named), (clients, named)
print("stats --openmetrics: prometheus_client parsed %d families; types, HELP, limits, "
      "no pid label, the stats client not counted" % len(fams))
PY
else
	echo "skip: prometheus_client's OpenMetrics parser: no python3 with the module" \
	     "(Debian: apt-get install python3-prometheus-client)"
fi

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
# refusals named as such; the stats client itself neither counted nor listed
grep -Eq '^  refused_clients_limit +0$' "$tmp/stats.txt" && ! grep -q 'limit_clients' "$tmp/stats.txt" ||
	fail "refusal counters not named as refusals: $(cat "$tmp/stats.txt")"
n=$(awk '$1 == "clients" { print $2; exit }' "$tmp/stats.txt")
[[ -n $n ]] && grep -q "^clients: $n\$" "$tmp/stats.txt" && ! grep -q 'shmnotify stats' "$tmp/stats.txt" ||
	fail "the stats client counted itself: $(cat "$tmp/stats.txt")"
echo "stats table: refused_clients_limit, $n client(s) (the stats client left out)"

# stats --watch: a line each interval, with rates per second
"$cli" stats --socket "$tmp/s.sock" --watch 0.3 --count 4 >"$tmp/watch.txt" &
wpid=$!
for i in $(seq 12); do "$cli" publish --socket "$tmp/s.sock" some/key "w$i" w; sleep 0.1; done
wait "$wpid" || fail "stats --watch exited $?: $(cat "$tmp/watch.txt")"
python3 - "$tmp/watch.txt" <<'PY' || fail "stats --watch: $(cat "$tmp/watch.txt")"
import sys
lines = open(sys.argv[1]).read().split("\n")[:-1]
head = lines[0].split()
assert head[:4] == ["time", "clients", "ports", "subs"] and "delivered/s" in head, head
rows = [dict(zip(head, l.split())) for l in lines[1:]]
assert len(rows) == 4, rows
assert max(float(r["delivered/s"]) for r in rows) > 0, rows
print("stats --watch: %d lines, up to %s delivered/s" %
      (len(rows), max(float(r["delivered/s"]) for r in rows)))
PY
# with no publisher about: the listener alone, the watcher left out
for _ in $(seq 100); do   # the last publisher gone: the listener and the asking stats
	"$cli" stats --socket "$tmp/s.sock" --json | grep -q '"clients":2,' && break
	sleep 0.05
done
"$cli" stats --socket "$tmp/s.sock" --watch 0.1 --count 2 >"$tmp/watch2.txt" ||
	fail "stats --watch exited $?"
[[ $(awk 'NR > 1 { print $2 }' "$tmp/watch2.txt" | paste -sd' ') == "1 1" ]] ||
	fail "stats --watch counted itself: $(cat "$tmp/watch2.txt")"
# a refusal counted under its name (max-clients 1: the listener alone)
printf '[limits]\nmax-clients = 1\n' >"$tmp/one.conf"
"$broker" --socket "$tmp/one.sock" --config "$tmp/one.conf" 2>"$tmp/one.log" &
pids+=($!)
for _ in $(seq 100); do [[ -S $tmp/one.sock ]] && break; sleep 0.05; done
# the one slot held by a watcher: once it printed a line it is connected
# (nothing else may knock meanwhile, or it could be the one refused)
"$cli" stats --socket "$tmp/one.sock" --watch 0.1 >"$tmp/one.watch" 2>&1 &
pids+=($!)
for _ in $(seq 200); do [[ $(wc -l <"$tmp/one.watch") -ge 2 ]] && break; sleep 0.05; done
[[ $(wc -l <"$tmp/one.watch") -ge 2 ]] || fail "the watcher never connected: $(cat "$tmp/one.watch")"
"$cli" publish --socket "$tmp/one.sock" k x 2>/dev/null && fail "a second client was let in"
kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
for _ in $(seq 100); do
	"$cli" stats --socket "$tmp/one.sock" >"$tmp/one.txt" 2>/dev/null && break; sleep 0.05
done
grep -Eq '^  refused_clients_limit +[1-9]' "$tmp/one.txt" ||
	fail "no refusal counted: $(cat "$tmp/one.txt")"
echo "stats table: $(grep refused_clients_limit "$tmp/one.txt" | xargs)"

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
