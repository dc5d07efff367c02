#!/usr/bin/env bash
# test_config_search.sh SHMNOTIFYD - where shmnotifyd finds its configuration
# and how --check-config reports: --config wins over $SHMNOTIFY_CONFIG, which
# wins over $XDG_CONFIG_HOME/shmnotify/shmnotifyd.conf (~/.config when unset);
# a bad key is reported with its file and line and exit status 2.
set -euo pipefail
broker=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shn-config.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_config_search: FAIL: $*" >&2; exit 1; }
conf() { printf '[limits]\nmax-clients = %s\n' "$2" >"$1"; }
clients() { grep -E '^max-clients *=' | sed 's/.*= *//'; }

mkdir -p "$tmp/xdg/shmnotify" "$tmp/home/.config/shmnotify"
conf "$tmp/xdg/shmnotify/shmnotifyd.conf" 11
conf "$tmp/home/.config/shmnotify/shmnotifyd.conf" 12
conf "$tmp/env.conf" 13
conf "$tmp/explicit.conf" 14
base=(env -u SHMNOTIFY_CONFIG -u XDG_CONFIG_HOME HOME="$tmp/home")

got=$("${base[@]}" XDG_CONFIG_HOME="$tmp/xdg" "$broker" --print-config | clients)
[[ $got == 11 ]] || fail "\$XDG_CONFIG_HOME file not used: max-clients $got"
got=$("${base[@]}" "$broker" --print-config | clients)
[[ $got == 12 ]] || fail "~/.config file not used: max-clients $got"
got=$("${base[@]}" SHMNOTIFY_CONFIG="$tmp/env.conf" XDG_CONFIG_HOME="$tmp/xdg" "$broker" --print-config | clients)
[[ $got == 13 ]] || fail "\$SHMNOTIFY_CONFIG does not win: max-clients $got"
got=$("${base[@]}" SHMNOTIFY_CONFIG="$tmp/env.conf" "$broker" --config "$tmp/explicit.conf" --print-config | clients)
[[ $got == 14 ]] || fail "--config does not win: max-clients $got"
if "${base[@]}" SHMNOTIFY_CONFIG="$tmp/missing.conf" "$broker" --print-config 2>"$tmp/err"; then
	fail "a missing \$SHMNOTIFY_CONFIG file was ignored"
fi
grep -q "missing.conf" "$tmp/err" || fail "no message naming the missing file: $(cat "$tmp/err")"
echo "ok: --config > \$SHMNOTIFY_CONFIG > \$XDG_CONFIG_HOME (or ~/.config) > /etc"

printf '[broker]\nlog-level = info\n\n[limits]\nmax-clients = 5\nmax-cliens = 6\n' >"$tmp/bad.conf"
rc=0; "$broker" --check-config "$tmp/bad.conf" >"$tmp/out" 2>"$tmp/err" || rc=$?
[[ $rc == 2 ]] || fail "--check-config of a bad key exited $rc, expected 2"
grep -q "bad.conf:6: unknown key 'max-cliens'" "$tmp/err" ||
	fail "--check-config did not name the line: $(cat "$tmp/err")"
out=$("$broker" --check-config "$tmp/explicit.conf")
[[ $out == "$tmp/explicit.conf: ok" ]] || fail "--check-config of a good file printed: $out"
echo "ok: --check-config: $(cat "$tmp/err")"

# spin-us (the low-latency mode): bounded, reported with its line, and shown
# by --print-config whether it came from the file or the command line.
printf '[broker]\nlog-level = warn\nspin-us = 5000\n' >"$tmp/spin.conf"
rc=0; "$broker" --check-config "$tmp/spin.conf" >"$tmp/out" 2>"$tmp/err" || rc=$?
[[ $rc == 2 ]] || fail "--check-config with spin-us = 5000 exited $rc, expected 2"
grep -q "spin.conf:3: spin-us '5000': expected microseconds from 0" "$tmp/err" ||
	fail "spin-us out of range not reported with its line: $(cat "$tmp/err")"
printf '[broker]\nspin-us = 200\n' >"$tmp/spin.conf"
"$broker" --config "$tmp/spin.conf" --print-config | grep -qx 'spin-us = 200' ||
	fail "--print-config does not show spin-us = 200 from the file"
"$broker" --config "$tmp/spin.conf" --spin-us 30 --print-config | grep -qx 'spin-us = 30' ||
	fail "--spin-us 30 does not win over the file"
rc=0; "$broker" --spin-us -1 --print-config >"$tmp/out" 2>"$tmp/err" || rc=$?
[[ $rc != 0 ]] && grep -q "bad --spin-us '-1'" "$tmp/err" ||
	fail "--spin-us -1 was not refused: rc $rc, $(cat "$tmp/err")"
echo "ok: spin-us checked in the file and on the command line"
