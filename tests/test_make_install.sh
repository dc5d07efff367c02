#!/usr/bin/env bash
# test_make_install.sh SOURCE_DIR BUILD_DIR - what `make install DESTDIR=...`
# places, and the installed example configuration.
#
#   - `make install` runs `cmake --install` of the build with DESTDIR;
#   - the programs (shmnotifyd, shmnotify, shmnotify-bench), the library, its
#     header, shmnotify.pc and CMake package, the systemd units, the man pages
#     (when scdoc built them), and share/doc/shmnotify/examples/ (the example
#     configuration and the examples' sources) land under DESTDIR/PREFIX;
#   - the installed shmnotify-bench starts the shmnotifyd installed beside it;
#   - the installed example passes the installed `shmnotifyd --check-config`,
#     its values are the defaults (--print-config prints the same with it as
#     without it), every key of the configuration is in it, each under a '#'
#     comment, and with every ';' setting turned on it still passes.
set -u
src=$1 build=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shn-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_make_install: FAIL: $*" >&2; exit 1; }

# make install: cmake --install of BUILD_DIR, with DESTDIR
dry=$(make -n -C "$src" install BUILD_DIR="$build" DESTDIR=/stage 2>&1)
grep -qF "DESTDIR=\"/stage\" cmake --install $build" <<<"$dry" ||
	fail "make install does not run 'DESTDIR=\"/stage\" cmake --install $build':"$'\n'"$dry"

DESTDIR="$tmp/stage" cmake --install "$build" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log" >&2; fail "cmake --install failed"; }
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
root=$tmp/stage$prefix
for f in bin/shmnotifyd bin/shmnotify bin/shmnotify-bench include/shmnotify.h \
	 lib/systemd/system/shmnotifyd.service lib/systemd/system/shmnotifyd.socket \
	 lib/systemd/user/shmnotifyd.service lib/systemd/user/shmnotifyd.socket \
	 share/doc/shmnotify/examples/shmnotifyd.conf; do
	[[ -e $root/$f ]] || fail "$prefix/$f not installed (DESTDIR=$tmp/stage)"
done
for f in pull_consumer.c flood.c advise_sink.c epoll_loop.c uring_loop.c; do
	[[ -f $root/share/doc/shmnotify/examples/$f ]] || fail "examples/$f not installed"
done
for pat in 'libshmnotify.so.*' shmnotify.pc 'shmnotify*onfig.cmake'; do
	[[ -n $(find "$root" -name "$pat" -print -quit) ]] || fail "no $pat installed"
done
if [[ -f $build/man/man1/shmnotify-bench.1 ]]; then
	[[ -f $root/share/man/man1/shmnotify-bench.1 && -f $root/share/man/man8/shmnotifyd.8 ]] ||
		fail "man pages built but not installed"
fi
[[ -x $root/bin/shmnotify-bench ]] || fail "shmnotify-bench not executable"
echo "ok: make install DESTDIR=... places the programs (shmnotify-bench too), library, units, pages, examples"

# the installed bench starts the installed broker, beside it
libdir=$(dirname "$(find "$root" -name 'libshmnotify.so*' -print -quit)")
out=$(env -u SHMNOTIFY_BENCH_BROKER LD_LIBRARY_PATH="$libdir" \
	"$root/bin/shmnotify-bench" --smoke --check --workloads idle --peers none 2>"$tmp/bench.err") ||
	{ cat "$tmp/bench.err" >&2; fail "the installed shmnotify-bench failed"; }
grep -qF "shmnotify: private brokers, $root/bin/shmnotifyd" <<<"$out" ||
	fail "the installed bench did not start the installed shmnotifyd:"$'\n'"$out"
echo "ok: the installed shmnotify-bench runs the shmnotifyd installed beside it"

# the installed example configuration
d=$root/bin/shmnotifyd
conf=$root/share/doc/shmnotify/examples/shmnotifyd.conf
out=$("$d" --check-config "$conf" 2>&1) || fail "the example fails --check-config: $out"
[[ $out == "$conf: ok" ]] || fail "--check-config said: $out"
clean() { env -u SHMNOTIFY_SOCKET -u SHMNOTIFY_CONFIG XDG_CONFIG_HOME="$tmp" "$@"; }
diff <(clean "$d" --socket "$tmp/s" --print-config | tail -n +2) \
     <(clean "$d" --socket "$tmp/s" --config "$conf" --print-config | tail -n +2) >"$tmp/diff" ||
	fail "the example's values are not the defaults:"$'\n'"$(cat "$tmp/diff")"
# every key --print-config knows, and the [socket] and [acl] keys, under a comment
keys=$(clean "$d" --socket "$tmp/s" --print-config | sed -nE 's/^(; )?([a-z-]+) = .*/\2/p' | sort -u)
for k in $keys mode group publish subscribe; do
	awk -v k="$k" '
		/^#/ { comment = 1; next }
		/^;?\[/ || /^$/ { if (!/^;\[acl/) comment = 0; next }
		{ split($0, kv, " = "); key = kv[1]; sub(/^;/, "", key)
		  if (key == k && comment) found = 1 }
		END { exit !found }' "$conf" ||
		fail "key '$k' is not in the example under a '#' comment"
done
echo "ok: the example passes --check-config, holds the defaults, and explains every key"
# every ';' setting turned on (the group made one that exists)
sed -E 's/^;([a-z[])/\1/; s/^group = .*/group = '"$(id -g)"'/' "$conf" >"$tmp/on.conf"
out=$("$d" --check-config "$tmp/on.conf" 2>&1) ||
	fail "the example with its ';' settings on fails --check-config: $out"
grep -q '^\[acl "sensors/"\]' "$tmp/on.conf" && grep -q '^mode = 0660' "$tmp/on.conf" ||
	fail "the ';' settings were not turned on"
echo "ok: the example with every ';' setting turned on passes --check-config"
