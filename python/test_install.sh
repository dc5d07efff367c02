#!/usr/bin/env bash
# test_install.sh SOURCE_DIR BUILD_DIR PYTHON - the Python package as a user
# installs it: `cmake --install` of the build into a prefix (as `make
# install` does), then
#   python3 -m venv --system-site-packages v && v/bin/pip install --no-build-isolation ./python
# with no package index, and the README's tour run from the venv against a
# broker from that prefix, finding the library through SHMNOTIFY_LIBRARY and
# through the loader's path.  The package's files are py.typed and typed.
set -euo pipefail
src=$1 build=$2 py=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shn-pyinstall.XXXXXX")
bpid=""
cleanup() {
	[[ -n $bpid ]] && kill -TERM "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "test_python_install: FAIL: $*" >&2; exit 1; }

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log" >&2; fail "cmake --install failed"; }
lib=$(find "$prefix" -name libshmnotify.so.0 -print -quit)
[[ -n $lib ]] || fail "no libshmnotify.so.0 under $prefix"

# pip writes build/ and *.egg-info next to the sources: install from a copy
cp -r "$src/python" "$tmp/pkg"
rm -rf "$tmp/pkg/build" "$tmp/pkg"/*.egg-info
"$py" -m venv --system-site-packages "$tmp/v" >"$tmp/venv.log" 2>&1 ||
	{ cat "$tmp/venv.log" >&2; fail "python3 -m venv failed (python3-venv installed?)"; }
PIP_NO_INDEX=1 "$tmp/v/bin/pip" install --no-build-isolation "$tmp/pkg" >"$tmp/pip.log" 2>&1 ||
	{ cat "$tmp/pip.log" >&2; fail "pip install --no-build-isolation ./python failed"; }
site=$(cd "$tmp" && "$tmp/v/bin/python" -c 'import shmnotify, os; print(os.path.dirname(shmnotify.__file__))' 2>/dev/null ||
       SHMNOTIFY_LIBRARY=$lib "$tmp/v/bin/python" -c 'import shmnotify, os; print(os.path.dirname(shmnotify.__file__))')
[[ $site == "$tmp/v/"* ]] || fail "shmnotify imported from $site, not from the venv"
[[ -f $site/py.typed ]] || fail "py.typed not installed"
echo "ok: pip install --no-build-isolation ./python into a venv: $site"

"$prefix/bin/shmnotifyd" --socket "$tmp/demo.sock" 2>"$tmp/broker.log" &
bpid=$!
for _ in $(seq 100); do [[ -S $tmp/demo.sock ]] && break; sleep 0.05; done
[[ -S $tmp/demo.sock ]] || fail "the installed broker did not start: $(cat "$tmp/broker.log")"

# the tour from python/README.md, as written (its socket path replaced)
awk '/^## The two-minute tour/ { t = 1 } t && /^```python/ { b = 1; next } b && /^```/ { exit } b' \
	"$src/python/README.md" | sed "s|/tmp/demo.sock|$tmp/demo.sock|" >"$tmp/tour.py"
[[ -s $tmp/tour.py ]] || fail "no tour in python/README.md"
for how in SHMNOTIFY_LIBRARY LD_LIBRARY_PATH; do
	if [[ $how == SHMNOTIFY_LIBRARY ]]; then
		out=$(cd "$tmp" && env -u LD_LIBRARY_PATH SHMNOTIFY_LIBRARY="$lib" "$tmp/v/bin/python" tour.py 2>&1) ||
			fail "the tour failed ($how): $out"
	else
		out=$(cd "$tmp" && env -u SHMNOTIFY_LIBRARY LD_LIBRARY_PATH="$(dirname "$lib")" "$tmp/v/bin/python" tour.py 2>&1) ||
			fail "the tour failed ($how): $out"
	fi
	grep -qxF "1 0x1 b'printers/lp0' b'jam' [0/2]" <<<"$out" || fail "the tour printed ($how): $out"
	grep -qxF "2 0x2 b'printers/lp0' b'cleared' [1/2]" <<<"$out" || fail "the tour printed ($how): $out"
	grep -q "^HandleClose(" <<<"$out" || fail "the tour printed ($how): $out"
	echo "ok: the README's tour from the venv, the library found through $how"
done

# a library that is not there: an ImportError that says what to do
out=$(cd "$tmp" && SHMNOTIFY_LIBRARY=$tmp/nowhere.so "$tmp/v/bin/python" -c 'import shmnotify' 2>&1) &&
	fail "import with a missing library succeeded"
grep -q "SHMNOTIFY_LIBRARY" <<<"$out" && grep -q "ImportError\|LibraryNotFound" <<<"$out" ||
	fail "a missing library said: $out"
echo "ok: a missing library is an ImportError naming SHMNOTIFY_LIBRARY"
