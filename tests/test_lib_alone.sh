#!/usr/bin/env bash
# test_lib_alone.sh SOURCE_DIR CC - libshmnotify configured and built alone:
#
#   cmake -DSHN_BUILD_BROKER=OFF -DSHN_BUILD_TESTS=OFF -DSHN_BUILD_BENCH=OFF
#         -DSHN_BUILD_BRIDGE=OFF
#
# with PKG_CONFIG_LIBDIR naming a directory that holds only libxxhash's .pc
# file, so that any other pkg-config lookup (liburing, inih, jansson,
# cmocka, libnats) fails the configure step.  Then: the shared and static
# libraries, shmnotify.pc and the CMake package are built and installed,
# no program is, and the shared library needs only libc (libpthread) and
# libxxhash.  Exit 77 (skipped) when libxxhash's .pc file is not found.
set -euo pipefail
src=$1
cc=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shn-lib-alone.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_lib_alone: FAIL: $*" >&2; exit 1; }

pcdir=$(pkg-config --variable=pcfiledir libxxhash 2>/dev/null) || {
	echo "test_lib_alone: skipped: pkg-config does not find libxxhash"; exit 77; }
mkdir "$tmp/pc"
cp "$pcdir/libxxhash.pc" "$tmp/pc/"

if ! env PKG_CONFIG_LIBDIR="$tmp/pc" PKG_CONFIG_PATH= cmake -S "$src" -B "$tmp/b" \
	-DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHN_SANITIZE= \
	-DCMAKE_INSTALL_PREFIX=/usr -DSHN_BUILD_BROKER=OFF -DSHN_BUILD_TESTS=OFF \
	-DSHN_BUILD_BENCH=OFF -DSHN_BUILD_BRIDGE=OFF >"$tmp/configure.log" 2>&1; then
	cat "$tmp/configure.log" >&2
	fail "configuring with only libxxhash findable failed (above)"
fi
if grep -Eq "Checking for module '(liburing|inih|jansson|cmocka|libnats)'" "$tmp/configure.log"; then
	grep -E "Checking for module" "$tmp/configure.log" >&2
	fail "a part that is off still looked up its library"
fi
cmake --build "$tmp/b" -j2 >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; fail "build failed"; }
DESTDIR="$tmp/inst" cmake --install "$tmp/b" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log" >&2; fail "install failed"; }

root=$tmp/inst/usr
so=$(find "$root" -name 'libshmnotify.so.*.*' -type f | head -1)
[[ -n $so ]] || fail "no libshmnotify.so.X.Y.Z installed"
for f in libshmnotify.a pkgconfig/shmnotify.pc cmake/shmnotify/shmnotifyConfig.cmake \
	 cmake/shmnotify/shmnotifyTargets.cmake; do
	[[ -n $(find "$root" -path "*/$f" -type f) ]] || fail "$f not installed"
done
[[ -f $root/include/shmnotify.h ]] || fail "shmnotify.h not installed"
if [[ -d $root/bin || -d $root/sbin ]]; then
	fail "programs were installed with everything off: $(ls "$root"/bin "$root"/sbin 2>/dev/null)"
fi

needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
[[ -n $needed ]] || fail "readelf found no NEEDED entry in $so"
for lib in $needed; do
	case $lib in
	libc.so.* | libpthread.so.* | libxxhash.so.* | ld-linux*.so.*) ;;
	*) fail "$so needs $lib (only libc, libpthread and libxxhash are allowed)" ;;
	esac
done
echo "ok: libshmnotify built alone with only libxxhash findable; NEEDED: $(echo $needed)"
