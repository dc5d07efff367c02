#!/usr/bin/env bash
# test_cli_commands.sh SRCDIR SHMNOTIFYD SHMNOTIFY [BINARY...] - the
# command line as a whole: every binary answers --version and --help the
# same way (the version shmnotify.h says); shmnotify --socket PATH COMMAND
# works as COMMAND --socket PATH; an unknown command lists every command
# and suggests the nearest; the bash completion loads (complete -p) and
# offers every command and every option each command's --help lists; the
# zsh one parses.
set -euo pipefail
src=$1 broker=$2 cli=$3
shift 3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shn-cli-cmd.XXXXXX")
bpid=
cleanup() {
	[[ -n $bpid ]] && kill -TERM "$bpid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "test_cli_commands: FAIL: $*" >&2; exit 1; }

hdr=$src/libclient/include/shmnotify.h
version=$(for p in MAJOR MINOR PATCH; do
	awk -v m="SHN_VERSION_$p" '$1 == "#define" && $2 == m { print $3 }' "$hdr"; done | paste -sd.)
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "no version in $hdr"

# ---- --version, -V, --help, -h: the same answer everywhere ---------------------
for bin in "$broker" "$cli" "$@"; do
	name=$(basename "$bin")
	for opt in --version -V; do
		out=$("$bin" $opt) || fail "$name $opt exited $?"
		[[ $out == "$name $version" ]] || fail "$name $opt printed '$out', not '$name $version'"
	done
	for opt in --help -h; do
		"$bin" $opt >"$tmp/help" 2>"$tmp/help.err" || fail "$name $opt exited $?"
		[[ -s $tmp/help.err ]] && fail "$name $opt wrote to stderr: $(cat "$tmp/help.err")"
		head -1 "$tmp/help" | grep -q "^usage: $name " ||
			fail "$name $opt does not start with 'usage: $name': $(head -1 "$tmp/help")"
		grep -q -- "--version" "$tmp/help" || fail "$name $opt does not mention --version"
	done
	echo "$name: --version, -V, --help, -h"
done

# ---- --socket before the command --------------------------------------------------
S=$tmp/s.sock
"$broker" --socket "$S" 2>"$tmp/broker.log" &
bpid=$!
for _ in $(seq 100); do [[ -S $S ]] && break; sleep 0.05; done
out=$(SHMNOTIFY_SOCKET=$tmp/nothing.sock "$cli" --socket "$S" stats --json) ||
	fail "shmnotify --socket PATH stats exited $?"
grep -q '"broker"' <<<"$out" || fail "stats printed: $out"
SHMNOTIFY_SOCKET=$tmp/nothing.sock "$cli" --socket="$S" publish k x || fail "--socket=PATH publish"
# the command's own --socket wins over the one before it
"$cli" --socket "$tmp/nothing.sock" stats --socket "$S" >/dev/null ||
	fail "stats --socket after a global --socket"
rc=0; "$cli" --socket "$tmp/nothing.sock" stats 2>"$tmp/err" || rc=$?
[[ $rc == 1 ]] && grep -q "cannot connect to $tmp/nothing.sock" "$tmp/err" ||
	fail "a global --socket to nothing: exit $rc: $(cat "$tmp/err")"
rc=0; "$cli" --socket 2>"$tmp/err" || rc=$?
[[ $rc == 2 ]] || fail "--socket without PATH exited $rc"
echo "--socket PATH before the command"

# ---- an unknown command ---------------------------------------------------------
commands="publish listen stats monitor doctor help"
for typo in lsiten publsh stat pub; do
	rc=0; "$cli" "$typo" 2>"$tmp/err" || rc=$?
	[[ $rc == 2 ]] || fail "unknown command $typo exited $rc"
	grep -q "^Commands: $commands$" "$tmp/err" || fail "'$typo': no command list: $(cat "$tmp/err")"
	grep -q "unknown command '$typo'; did you mean '" "$tmp/err" ||
		fail "'$typo': no suggestion: $(cat "$tmp/err")"
done
grep -q "did you mean 'publish'" <("$cli" publsh 2>&1) || fail "publsh: not publish"
grep -q "did you mean 'listen'" <("$cli" lsiten 2>&1) || fail "lsiten: not listen"
rc=0; "$cli" frobnicate 2>"$tmp/err" || rc=$?
[[ $rc == 2 ]] && ! grep -q "did you mean" "$tmp/err" || fail "frobnicate: $(cat "$tmp/err")"
echo "unknown command: every command listed, the nearest suggested"

# ---- completion ------------------------------------------------------------------
comp=$src/cli/completion/shmnotify.bash
out=$(bash -c "source '$comp' && complete -p shmnotify") || fail "the bash completion does not load"
[[ $out == "complete -F _shmnotify shmnotify" ]] || fail "complete -p shmnotify: $out"
complete_words() {   # WORDS...: what the completion offers for the last word
	bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _shmnotify
		 printf "%s\n" "${COMPREPLY[@]}"' _ "$comp" "$@"
}
[[ $(complete_words shmnotify "" | paste -sd' ') == "$commands" ]] ||
	fail "commands offered: $(complete_words shmnotify "")"
[[ $(complete_words shmnotify --socket /x li) == listen ]] || fail "after --socket PATH: no command"
[[ $(complete_words shmnotify listen --format "" | paste -sd' ') == "plain json raw" ]] ||
	fail "--format values"
for cmd in publish listen stats monitor doctor; do
	# every long option the command's --help lists is offered
	want=$("$cli" "$cmd" --help | grep -oE '^ +(-[a-zA-Z], )?--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+' | sort -u)
	got=$(complete_words shmnotify "$cmd" -- | sort -u)
	missing=$(comm -23 <(echo "$want") <(echo "$got"))
	[[ -z $missing ]] || fail "bash completion of $cmd lacks: $missing"
	for o in $want; do
		grep -q -- "$o" "$src/cli/completion/_shmnotify" || fail "zsh completion lacks $cmd $o"
	done
done
echo "bash completion: loads, offers every command and every option of each"
if command -v zsh >/dev/null; then
	zsh -n "$src/cli/completion/_shmnotify" || fail "the zsh completion does not parse"
	echo "zsh completion: parses"
else
	echo "skip: zsh not installed, the zsh completion was not parsed"
fi
