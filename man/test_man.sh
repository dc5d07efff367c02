#!/usr/bin/env bash
# test_man.sh MANDIR SOURCE_DIR CC LIBSHMNOTIFY SHMNOTIFYD SHMNOTIFY [SANITIZE [BENCH]]
#
# The man pages, checked the way a reader meets them:
#  1. every built page (MANDIR/man[138]/*, alias pages included) renders with
#     `man -l` at MANWIDTH=80 with exit status 0 and nothing on stderr (man
#     passes groff's warnings there), and has the sections a page needs;
#  2. every alias page's function is named on the page it points to, and
#     every function of shmnotify.h has a page or an alias page;
#  3. every option that `shmnotifyd --help`, `shmnotify COMMAND --help` and
#     (when it is built) `shmnotify-bench --help` print is documented in
#     shmnotifyd(8), shmnotify(1) and shmnotify-bench(1);
#  4. each library page's EXAMPLE (the code block after the "; example.c"
#     comment in its scdoc source) is what the rendered page shows, compiles
#     with -Wall -Wextra -Werror, links against libshmnotify, and runs
#     against a private broker with exit status 0.
# Without man(1) installed, 1 and the rendering check of 4 cannot run: the
# rest still does, and the test then reports itself skipped (77).
set -euo pipefail
mandir=$1 src=$2 cc=$3 lib=$4 broker=$5 cli=$6 sanitize=${7:-} bench=${8:-}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/shn-man.XXXXXX")
bpid=""
cleanup() {
	[[ -n $bpid ]] && kill -TERM "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
fail() { echo "test_man: FAIL: $*" >&2; fails=$((fails + 1)); }

export MANWIDTH=80 MANPAGER=cat PAGER=cat MAN_KEEP_FORMATTING=
if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then export LC_ALL=C.UTF-8; else export LC_ALL=C; fi
have_man=false
command -v man >/dev/null 2>&1 && have_man=true
$have_man || echo "test_man: man(1) is not installed (Debian: man-db): pages not rendered"

# ---- 1. rendering ------------------------------------------------------------
pages=()
for f in "$mandir"/man[138]/*; do
	[[ -f $f ]] && pages+=("${f#"$mandir"/}")
done
((${#pages[@]} > 0)) || fail "no pages in $mandir"

is_alias() { head -n1 "$mandir/$1" | grep -q '^\.so '; }

render() {   # render PAGE: the text in $tmp/render/PAGE, 0 when clean
	local page=$1 out=$tmp/render/$1 err=$tmp/render/$1.err
	mkdir -p "$(dirname "$out")"
	# from MANDIR, so that an alias's ".so man3/PAGE" resolves
	if ! (cd "$mandir" && man --warnings -l "$page" >"$out" 2>"$err"); then
		fail "man -l $page failed: $(cat "$err")"
		return 1
	fi
	if [[ -s $err ]]; then
		fail "man -l $page wrote to stderr:"; cat "$err" >&2
		return 1
	fi
	return 0
}

if $have_man; then
	for page in "${pages[@]}"; do
		render "$page" || continue
		out=$tmp/render/$page
		if is_alias "$page"; then
			continue
		fi
		sec=${page##*.}
		need=(NAME SYNOPSIS DESCRIPTION EXAMPLE "SEE ALSO")
		[[ $sec == 3 ]] && need+=("RETURN VALUE")
		[[ $sec != 3 ]] && need+=("EXIT STATUS")
		for s in "${need[@]}"; do
			grep -qx "$s" "$out" || fail "$page has no $s section"
		done
		lexgrog "$mandir/$page" >/dev/null 2>&1 || fail "$page: lexgrog cannot read its NAME line"
	done
fi

# ---- 2. aliases and API coverage ---------------------------------------------
names_of() {   # the names a page's NAME section lists
	awk '/^\.SH NAME/ {on = 1; next} /^\.SH/ {on = 0} on && !/^\./' "$mandir/$1" |
		sed -E 's/ +\\?- .*//; s/\\//g' | tr ',' '\n' | sed 's/^ *//; s/ *$//' | grep -v '^$'
}
for page in "${pages[@]}"; do
	is_alias "$page" || continue
	target=$(head -n1 "$mandir/$page" | sed 's/^\.so //')
	name=$(basename "$page" | sed 's/\.[0-9]$//')
	if [[ ! -f $mandir/$target ]]; then
		fail "alias $page points to $target, which is not built"
		continue
	fi
	names_of "$target" | grep -qx "$name" || fail "alias $page: $target does not name $name"
done
header=$src/libclient/include/shmnotify.h
funcs=$(sed -nE 's/^[a-z][a-z_ ]*[ *]+(shn_[a-z_]+)\(.*/\1/p' "$header" | sort -u)
[[ -n $funcs ]] || fail "no functions found in $header"
for fn in $funcs; do
	if [[ ! -f $mandir/man3/$fn.3 ]]; then
		fail "$fn (shmnotify.h) has no man page: add it to a page's NAME and to man/CMakeLists.txt"
		continue
	fi
	target=man3/$fn.3
	is_alias "$target" && target=$(head -n1 "$mandir/$target" | sed 's/^\.so //')
	grep -q "$fn(" "$src/man/$(basename "$target").scd" ||
		fail "$fn has no prototype on $(basename "$target")"
done

# ---- 3. command options --------------------------------------------------------
options_of() {   # the -x and --xyz options of a --help text: its usage line and option lines
	grep -E '^usage:|^[[:space:]]+-' | grep -oE '(^|[ ,[|])--?[a-zA-Z][a-zA-Z0-9-]*' |
		sed -E 's/^[ ,[|]//' | sort -u
}
section_of() {   # section_of FILE HEADING: the lines of "## HEADING" up to the next heading
	awk -v h="## $2" '$0 == h {on = 1; next} /^#/ {on = 0} on' "$1"
}
check_options() {   # check_options WHAT HELP-TEXT-FILE DOC-TEXT-FILE
	local opt
	for opt in $(options_of <"$2"); do
		[[ $opt == -h || $opt == --help ]] && continue
		# documented: on a line of its own that starts an option's entry
		grep -E '^\*-' "$3" | grep -qF -- "*$opt*" ||
			fail "$1: option $opt (from --help) has no entry in the page"
	done
}
"$broker" --help >"$tmp/shmnotifyd.help"
check_options "shmnotifyd(8)" "$tmp/shmnotifyd.help" "$src/man/shmnotifyd.8.scd"
"$cli" --help >"$tmp/shmnotify.help"
check_options "shmnotify(1)" "$tmp/shmnotify.help" "$src/man/shmnotify.1.scd"
commands=$(awk '/^Commands:/ {on = 1; next} /^$/ {on = 0} on {print $1}' "$tmp/shmnotify.help")
[[ -n $commands ]] || fail "shmnotify --help lists no commands"
for cmd in $commands; do
	[[ $cmd == help ]] && continue
	section_of "$src/man/shmnotify.1.scd" "$cmd" >"$tmp/doc.$cmd"
	if [[ ! -s $tmp/doc.$cmd ]]; then
		fail "shmnotify(1) has no section '## $cmd' for the command $cmd"
		continue
	fi
	"$cli" "$cmd" --help >"$tmp/help.$cmd"
	check_options "shmnotify(1) $cmd" "$tmp/help.$cmd" "$tmp/doc.$cmd"
done

if [[ -n $bench ]]; then
	"$bench" --help >"$tmp/bench.help"
	check_options "shmnotify-bench(1)" "$tmp/bench.help" "$src/man/shmnotify-bench.1.scd"
fi

# ---- 4. examples -----------------------------------------------------------------
sanflags=()
case $sanitize in
address) sanflags=(-fsanitize=address,undefined) ;;
thread) sanflags=(-fsanitize=thread) ;;
esac
"$broker" --socket "$tmp/s.sock" 2>"$tmp/broker.log" &
bpid=$!
for _ in $(seq 200); do [[ -S $tmp/s.sock ]] && break; sleep 0.05; done
[[ -S $tmp/s.sock ]] || { cat "$tmp/broker.log" >&2; fail "the broker did not start"; exit 1; }

examples=0
for scd in "$src"/man/*.3.scd; do
	name=$(basename "$scd" .3.scd)
	n=$(grep -c '^; example\.c$' "$scd" || true)
	if [[ $n != 1 ]]; then
		fail "$name.3: $n '; example.c' markers, expected 1"
		continue
	fi
	# the fenced block right after the marker; scdoc reads \X as X
	awk '/^; example\.c$/ {m = 1; next}
	     m == 1 && /^```$/ {m = 2; next}
	     m == 1 && !/^;/ {exit 1}
	     m == 2 && /^```$/ {exit}
	     m == 2 {print}' "$scd" | sed -E 's/\\(.)/\1/g' >"$tmp/$name.c" ||
		{ fail "$name.3: no code block after '; example.c'"; continue; }
	examples=$((examples + 1))
	if $have_man && [[ -f $tmp/render/man3/$name.3 ]]; then
		# the reader sees exactly this code, line by line, in order
		awk 'NR == FNR {sub(/^[ \t]+/, ""); if ($0 != "") want[++n] = $0; next}
		     {sub(/^[ \t]+/, ""); if (i < n && $0 == want[i + 1]) i++}
		     END {if (i < n) {print "first line not shown: " want[i + 1]; exit 1}}' \
			"$tmp/$name.c" "$tmp/render/man3/$name.3" >"$tmp/$name.shown" ||
			fail "$name.3: the rendered EXAMPLE differs from its source: $(cat "$tmp/$name.shown")"
	fi
	if ! "$cc" -std=gnu17 -Wall -Wextra -Wshadow -Werror -pthread "${sanflags[@]}" \
		-I "$src/libclient/include" -o "$tmp/$name" "$tmp/$name.c" \
		"$lib" -Wl,-rpath,"$(dirname "$lib")" 2>"$tmp/$name.cc"; then
		fail "$name.3: the EXAMPLE does not compile:"; cat "$tmp/$name.cc" >&2
		continue
	fi
	rc=0
	timeout 30 "$tmp/$name" "$tmp/s.sock" >"$tmp/$name.out" 2>&1 || rc=$?
	if [[ $rc != 0 ]]; then
		fail "$name.3: the EXAMPLE exited $rc against a broker; it printed:"
		cat "$tmp/$name.out" >&2
	else
		echo "ok: $name.3 example: $(tail -n1 "$tmp/$name.out")"
	fi
done
((examples > 0)) || fail "no library page has an example"
kill -0 "$bpid" 2>/dev/null || { fail "the broker died during the examples:"; cat "$tmp/broker.log" >&2; }

if ((fails > 0)); then
	echo "test_man: $fails failure(s)" >&2
	exit 1
fi
echo "test_man: ${#pages[@]} pages, $examples examples: ok"
$have_man || exit 77
exit 0
