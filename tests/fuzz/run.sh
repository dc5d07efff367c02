#!/usr/bin/env bash
# tests/fuzz/run.sh [TARGET...] - build the libFuzzer targets with clang and
# run each for a bounded time (`make fuzz` calls it).
#
#   TARGET         control (broker/validate.c: the control-message decoder)
#                  ring    (shm/ring.h + broker/validate.c: a hostile publish
#                           ring drained and validated; a hostile consumer head)
#                  direct  (shm/direct.h: a hostile direct ring drained and
#                           each record checked as a subscriber's library
#                           does; the filter-table lookup over garbage)
#                  default: all three
#   FUZZ_SECONDS   seconds per target (default 60)
#   FUZZ_DIR       build and working directory (default build-fuzz): the
#                  binaries, the corpus each run grows (DIR/corpus/TARGET),
#                  a log per target, and any crashing input (DIR/TARGET-crash-*)
#   FUZZ_JOBS      targets run at once (default: the number of CPUs, at most
#                  the number of targets); each takes one core
#   FUZZ_CC        the compiler (default clang); FUZZ_WERROR=1: -Werror
#
# The seeds are tests/fuzz/corpus/TARGET/ (read, never written: new inputs
# go to DIR/corpus/TARGET).  Exits non-zero when a target crashed, leaked or
# failed one of its checks; the end of its log and the input are printed.
set -euo pipefail
cd "$(dirname "$0")/../.."

dir=${FUZZ_DIR:-build-fuzz}
secs=${FUZZ_SECONDS:-60}
cc=${FUZZ_CC:-clang}
targets=("$@")
((${#targets[@]})) || targets=(control ring direct)
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
((jobs > ${#targets[@]})) && jobs=${#targets[@]}
((jobs >= 1)) || jobs=1

command -v "$cc" >/dev/null || { echo "fuzz: $cc not found (make fuzz installs clang)" >&2; exit 1; }
flags=(-std=gnu17 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Wshadow
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I.)
[[ ${FUZZ_WERROR:-0} == 1 ]] && flags+=(-Werror)

mkdir -p "$dir"
for t in "${targets[@]}"; do
	[[ -f tests/fuzz/fuzz_$t.c ]] || { echo "fuzz: no target '$t'" >&2; exit 2; }
	"$cc" "${flags[@]}" "tests/fuzz/fuzz_$t.c" broker/validate.c -o "$dir/fuzz_$t"
done

run_one() {
	local t=$1 log="$dir/fuzz_$t.log" rc=0
	mkdir -p "$dir/corpus/$t"
	"$dir/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$dir/$t-" \
		"$dir/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
	local execs rate done_line
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
	if ((rc != 0)) || [[ -z $execs ]]; then
		echo "fuzz: $t FAILED (status $rc) — end of $log:"
		tail -n 60 "$log" | sed 's/^/    /'
		ls "$dir/$t-"* 2>/dev/null | sed 's/^/    input: /' || true
		return 1
	fi
	echo "fuzz: $t: $execs executions in $secs s ($rate/s), no crash, no leak, no check failed;" \
	     "${done_line#*DONE }"
}

fail=0
for t in "${targets[@]}"; do
	while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
	rm -f "$dir/fuzz_$t.rc"
	{ rc=0; run_one "$t" > "$dir/fuzz_$t.summary" 2>&1 || rc=$?; echo $rc > "$dir/fuzz_$t.rc"; } &
done
wait || true
for t in "${targets[@]}"; do
	cat "$dir/fuzz_$t.summary"
	[[ $(cat "$dir/fuzz_$t.rc" 2>/dev/null) == 0 ]] || fail=1
done
exit $fail
