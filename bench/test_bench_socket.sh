#!/usr/bin/env bash
# test_bench_socket.sh BENCH SHMNOTIFYD SHMNOTIFY - shmnotify-bench --socket:
# a smoke run against a broker that is already running (as redis-benchmark -s
# and nats bench do).  The bench must measure that broker (its counters
# rise), leave it running, skip the variants that need a broker of their own
# with a reason, and say so in its table and JSON; against a socket where no
# broker answers it must fail with a message.
set -u
bench=$1 broker=$2 cli=$3
tmp=$(mktemp -d /tmp/shn-bench-socket.XXXXXX)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; echo "--- broker log:" >&2; cat "$tmp/broker.log" >&2; exit 1; }

sock=$tmp/s.sock
env -u SHMNOTIFY_SOCKET -u SHMNOTIFY_CONFIG XDG_CONFIG_HOME=$tmp \
	"$broker" --socket "$sock" 2>"$tmp/broker.log" &
pid=$!
for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
[[ -S $sock ]] || fail "the broker did not start"

before=$("$cli" stats --socket "$sock" --json | grep -o '"connections":[0-9]*' | cut -d: -f2)
"$bench" --socket "$sock" --smoke --check --peers shmnotify-block,shmnotify-brokered \
	--workloads throughput,latency,idle --json="$tmp/r.json" >"$tmp/out" 2>"$tmp/err"
rc=$?
[[ $rc == 0 ]] || { cat "$tmp/out" "$tmp/err" >&2; fail "bench --socket --smoke --check: exit $rc"; }
grep -qF "shmnotify: the broker running on $sock" "$tmp/out" ||
	fail "the table does not name the running broker: $(head -5 "$tmp/out")"
grep -q '^throughput .* shmnotify-block ' "$tmp/out" || fail "no shmnotify-block row"
grep -qF "shmnotify-brokered skipped: needs a broker of its own" "$tmp/err" ||
	fail "shmnotify-brokered not skipped with a reason: $(cat "$tmp/err")"
grep -qF "\"socket\": \"$sock\"" "$tmp/r.json" || fail "the JSON does not name the socket"
kill -0 "$pid" 2>/dev/null || fail "the bench stopped the running broker"
[[ -S $sock ]] || fail "the socket file is gone"
after=$("$cli" stats --socket "$sock" --json | grep -o '"connections":[0-9]*' | cut -d: -f2)
(( after >= before + 4 )) || fail "the broker saw $before then $after connections: the bench did not use it"
echo "ok: bench --socket measured the running broker ($before -> $after connections) and left it running"

# no broker there: a message and exit 1, no figure for shmnotify
"$bench" --socket "$tmp/none.sock" --smoke --workloads idle >"$tmp/out" 2>"$tmp/err"
rc=$?
[[ $rc == 1 ]] && grep -qF "shmnotify skipped: no broker answers on $tmp/none.sock" "$tmp/err" ||
	fail "bench --socket to nothing: exit $rc, said: $(cat "$tmp/err")"
echo "ok: bench --socket with no broker there fails with a message"
