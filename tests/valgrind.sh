#!/usr/bin/env bash
# tests/valgrind.sh BUILD_DIR - the integration tests under valgrind memcheck:
# each test program runs under valgrind (the forked client processes with
# it), and the broker each test starts runs under valgrind too
# (SHN_TEST_BROKER_WRAPPER, see harness.c).  Any memcheck error or definite
# leak in any of those processes fails the test: valgrind exits 99 (a child
# reports it through its exit status, the broker through its exit status at
# the end of the test).
#
# Left out: test_interest (it compares the broker's CPU time over a million
# notifications: a measurement, meaningless and minutes long under valgrind).
# Smaller volumes where a test has a knob: SHN_TEST_PER_PUBLISHER.
#
# Environment: VALGRIND_IO="epoll uring" (the backends; uring is skipped
# where io_uring is unavailable), VALGRIND_JOBS (default 2), VALGRIND_EXCLUDE
# (an extended regex of test names to leave out as well), VALGRIND_ONLY (an
# extended regex: run only the tests it matches).
set -euo pipefail

build=${1:-build}
ios=${VALGRIND_IO:-epoll uring}
jobs=${VALGRIND_JOBS:-2}
exclude='^test_interest$'
[[ -n ${VALGRIND_EXCLUDE:-} ]] && exclude="$exclude|${VALGRIND_EXCLUDE}"

command -v valgrind >/dev/null || { echo "valgrind: not installed" >&2; exit 1; }
[[ -d $build/tests ]] || { echo "valgrind.sh: no $build/tests (build first)" >&2; exit 1; }

vg=(valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite
    --errors-for-leak-kinds=definite --track-fds=no --child-silent-after-fork=no)
export SHN_TEST_BROKER_WRAPPER="${vg[*]}"
export SHN_TEST_PER_PUBLISHER=${SHN_TEST_PER_PUBLISHER:-2000}
export SHN_TEST_VALGRIND=1

# the integration programs ctest knows, NAME_io -> NAME
mapfile -t names < <(ctest --test-dir "$build" -N -L integration |
	sed -n 's/^ *Test *#[0-9]*: \(test_[a-z_]*\)_\(epoll\|uring\)$/\1/p' | sort -u)
((${#names[@]})) || { echo "valgrind.sh: no integration tests found in $build" >&2; exit 1; }

logdir="$build/valgrind"
rm -rf "$logdir"
mkdir -p "$logdir"
runs=()
for n in "${names[@]}"; do
	[[ $n =~ $exclude ]] && continue
	[[ -n ${VALGRIND_ONLY:-} && ! $n =~ ${VALGRIND_ONLY} ]] && continue
	for io in $ios; do runs+=("$n $io"); done
done

run_one() {
	local n=$1 io=$2 log="$logdir/$1_$2.log" start=$SECONDS rc=0
	(cd "$build/tests" && timeout 600 "${vg[@]}" "./$n" --io "$io") >"$log" 2>&1 || rc=$?
	case $rc in
	0) echo "valgrind: $n --io $io passed in $((SECONDS - start)) s" ;;
	77) echo "valgrind: $n --io $io skipped (io_uring unavailable)" ;;
	*) echo "valgrind: $n --io $io FAILED (status $rc) in $((SECONDS - start)) s; log:"
	   sed 's/^/    /' "$log"
	   return 1 ;;
	esac
}
export -f run_one
export logdir build
export VG_CMD="${vg[*]}"

# run_one needs the vg array: rebuild it from VG_CMD in the subshells
fail=0
printf '%s\n' "${runs[@]}" |
	xargs -P "$jobs" -L 1 bash -c 'read -ra vg <<<"$VG_CMD"; run_one "$0" "$1"' || fail=1
if ((fail)); then
	echo "valgrind: FAILED (logs in $logdir)"
	exit 1
fi
echo "valgrind: ${#runs[@]} runs (program x backend; each with its brokers and client processes): 0 memcheck errors, no definite leaks"
