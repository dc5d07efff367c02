#!/usr/bin/env bash
# test_readme.sh SOURCE_DIR SHMNOTIFYD - README.md says what is true:
#   - the quick start is exactly two commands, make run and make test;
#   - every package `make deps` installs (the Makefile's DEPS) is named;
#   - every file under examples/ is named (a folder as `NAME/`);
#   - every option `shmnotifyd --help` lists has a row in shmnotifyd's table;
#   - the install section names make install, DESTDIR, cmake --install,
#     pkg-config, find_package and both kinds of systemd units.
set -u
src=$1 broker=$2
readme=$src/README.md
fail() { echo "test_readme: FAIL: $*" >&2; exit 1; }
[[ -f $readme ]] || fail "no README.md in $src"

# the quick start: the first sh block after its heading, two commands
quick=$(awk '/^## Quick start/ { q = 1; next } q && /^```sh/ { b = 1; next }
	     b && /^```/ { exit } b' "$readme" | sed 's/ *#.*//; /^ *$/d')
[[ $quick == $'make run\nmake test' ]] ||
	fail "the quick start is not exactly 'make run' and 'make test': $quick"

deps=$(make -s -C "$src" --no-print-directory --eval 'print-deps: ; @echo $(DEPS)' print-deps)
[[ -n $deps ]] || fail "cannot read DEPS from the Makefile"
for p in $deps; do
	grep -qwF -- "$p" "$readme" ||
		fail "package '$p' (Makefile DEPS) is not named in README.md"
done

for f in "$src"/examples/*; do
	d=$f
	f=${f##*/}
	[[ $f == CMakeLists.txt ]] && continue
	[[ -d $d ]] && f=$f/
	grep -qF "\`$f\`" "$readme" || fail "examples/$f is not named in README.md"
done

opts=$("$broker" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u)
[[ -n $opts ]] || fail "shmnotifyd --help lists no option"
for o in $opts; do
	grep -qE "^\| \`$o( |\`)" "$readme" || fail "shmnotifyd $o has no row in README.md"
done

install=$(awk '/^## Install/ { i = 1; next } i && /^## / { exit } i' "$readme")
for w in "make install" DESTDIR "cmake --install" pkg-config find_package \
	 "lib/systemd/system" "lib/systemd/user" shmnotify-bench shmnotifyd.conf; do
	grep -qF -- "$w" <<<"$install" || fail "the install section does not mention '$w'"
done
echo "test_readme: ok: quick start, $(wc -w <<<"$deps") packages, examples/, $(wc -l <<<"$opts") shmnotifyd options, install"
