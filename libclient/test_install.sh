#!/usr/bin/env bash
# test_install.sh BUILD_DIR SOURCE_DIR SHMNOTIFYD - the library as a user
# installs it: `cmake --install` into a DESTDIR; the shared library exports
# only shn_* (nm -D); examples/pull_consumer.c builds against the installed
# tree with pkg-config and with find_package(shmnotify), statically and
# dynamically, and each build runs against a real broker.
set -euo pipefail
build=$1 src=$2 broker=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shn-install.XXXXXX")
bpid=""
cleanup() {
	[[ -n $bpid ]] && kill -TERM "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "test_install: FAIL: $*" >&2; exit 1; }

prefix=/usr/local
dest=$tmp/dest
DESTDIR=$dest cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" ||
	{ cat "$tmp/install.log"; fail "cmake --install failed"; }
root=$dest$prefix
libdir=$(cd "$root" && for f in lib*/libshmnotify.so.0; do dirname "$f"; break; done)
for f in include/shmnotify.h "$libdir/libshmnotify.a" "$libdir/libshmnotify.so" \
	 "$libdir/pkgconfig/shmnotify.pc" "$libdir/cmake/shmnotify/shmnotifyConfig.cmake" \
	 "$libdir/cmake/shmnotify/shmnotifyConfigVersion.cmake" bin/shmnotifyd bin/shmnotify; do
	[[ -e $root/$f ]] || fail "$f is not installed"
done
# systemd units and (when scdoc built them) man pages
for f in lib/systemd/system/shmnotifyd.service lib/systemd/system/shmnotifyd.socket \
	 lib/systemd/user/shmnotifyd.service lib/systemd/user/shmnotifyd.socket; do
	[[ -e $root/$f ]] || fail "$f is not installed"
done
if [[ -e $build/man/man3/shmnotify.3 ]]; then
	for f in share/man/man8/shmnotifyd.8 share/man/man1/shmnotify.1 share/man/man3/shmnotify.3 \
		 share/man/man3/shn_notify.3 share/man/man3/shn_port_close.3; do
		[[ -e $root/$f ]] || fail "$f is not installed"
	done
fi
dyn=$(objdump -p "$root/$libdir/libshmnotify.so")
soname=$(awk '/SONAME/ {print $2}' <<<"$dyn")
[[ $soname == libshmnotify.so.0 ]] || fail "SONAME is '$soname', expected libshmnotify.so.0"
syms=$(nm -D --defined-only "$root/$libdir/libshmnotify.so")
others=$(awk '$2 ~ /[TDBR]/ {print $3}' <<<"$syms" | grep -v -e '^shn_' -e '^SHMNOTIFY_' || true)
[[ -z $others ]] || fail "exported symbols outside shn_*: $others"
echo "installed: $(cd "$root" && find . -type f | sort | tr '\n' ' ')"
echo "exports: $(grep -c ' T shn_' <<<"$syms") shn_* functions, nothing else"

# 1. pkg-config (the .pc names the final prefix; the sysroot maps it into DESTDIR)
export PKG_CONFIG_PATH=$root/$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
cc -std=gnu17 -Wall -Wextra -o "$tmp/pc_dynamic" "$src/examples/pull_consumer.c" \
	$(pkg-config --cflags --libs shmnotify) || fail "pkg-config build"
cc -std=gnu17 -Wall -Wextra -o "$tmp/pc_static" "$src/examples/pull_consumer.c" \
	$(pkg-config --cflags shmnotify) "$root/$libdir/libshmnotify.a" \
	$(pkg-config --libs-only-other --static shmnotify) -lpthread || fail "static build"

# 2. find_package(shmnotify)
mkdir -p "$tmp/cm"
cat >"$tmp/cm/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.25)
project(consumer C)
find_package(shmnotify 0.1 REQUIRED)
add_executable(cm_dynamic $src/examples/pull_consumer.c)
target_link_libraries(cm_dynamic PRIVATE shmnotify::shmnotify)
add_executable(cm_static $src/examples/pull_consumer.c)
target_link_libraries(cm_static PRIVATE shmnotify::shmnotify_static)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$root" >"$tmp/cm.log" 2>&1 &&
	cmake --build "$tmp/cm/build" >>"$tmp/cm.log" 2>&1 || { cat "$tmp/cm.log"; fail "find_package build"; }

# 3. run each against a broker
"$broker" --socket "$tmp/s.sock" 2>"$tmp/broker.log" &
bpid=$!
for _ in $(seq 100); do [[ -S $tmp/s.sock ]] && break; sleep 0.05; done
[[ -S $tmp/s.sock ]] || fail "the broker did not start: $(cat "$tmp/broker.log")"
for exe in "$tmp/pc_dynamic" "$tmp/pc_static" "$tmp/cm/build/cm_dynamic" "$tmp/cm/build/cm_static"; do
	out=$(LD_LIBRARY_PATH=$root/$libdir "$exe" "$tmp/s.sock") || fail "$exe exited $?: $out"
	[[ $(grep -c '^seq=' <<<"$out") == 2 ]] || fail "$exe printed: $out"
	grep -q 'data=cleared \[1/2\]' <<<"$out" || fail "$exe printed: $out"
	if [[ $exe == *dynamic ]]; then
		# whole output first: grep -q quitting early would SIGPIPE ldd under pipefail
		deps=$(LD_LIBRARY_PATH=$root/$libdir ldd "$exe")
		grep -q "$root/$libdir/libshmnotify.so.0" <<<"$deps" ||
			fail "$exe does not use the installed libshmnotify.so.0: $deps"
	fi
	echo "ok: $(basename "$exe") received the batch: $(tr '\n' ' ' <<<"$out")"
done
