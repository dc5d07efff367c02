# bash completion for shmnotify(1): commands, their options, and the
# values some options take.  Installed as
# share/bash-completion/completions/shmnotify.
# shellcheck shell=bash

_shmnotify_commands="publish listen stats monitor doctor help"

_shmnotify() {
	local cur prev cmd i opts
	COMPREPLY=()
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD - 1]}

	# the command: the first word that is not an option or --socket's value
	cmd=
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		-s | --socket) ((i++)) ;;
		-*) ;;
		*) cmd=${COMP_WORDS[i]}; break ;;
		esac
	done

	case $prev in
	-s | --socket)
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return ;;
	-b | --bridge)
		[[ $cmd == stats ]] && mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		[[ -n $cmd ]] && return ;;
	-f | --format)
		mapfile -t COMPREPLY < <(compgen -W "plain json raw" -- "$cur")
		return ;;
	--color | --colour)
		mapfile -t COMPREPLY < <(compgen -W "auto always never" -- "$cur")
		return ;;
	-e | --event | --events | -n | --count | -t | --timeout | --name | --batch | -p | --prefix | -k | --key)
		return ;;
	esac

	case $cmd in
	"")
		opts="--help --version --socket"
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
		else
			mapfile -t COMPREPLY < <(compgen -W "$_shmnotify_commands" -- "$cur")
		fi
		return ;;
	publish)
		opts="--socket --event --sync --timeout --batch --data-base64 --json --name --help" ;;
	listen)
		opts="--socket --events --count --timeout --format --json --color --name --prefix --key --help" ;;
	monitor)
		opts="--socket --events --count --timeout --name --key --prefix --help" ;;
	stats)
		opts="--socket --json --openmetrics --watch --count --bridge --subscriptions --help" ;;
	doctor)
		opts="--socket --help" ;;
	help)
		mapfile -t COMPREPLY < <(compgen -W "$_shmnotify_commands" -- "$cur")
		return ;;
	*)
		return ;;
	esac
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
	elif [[ $cmd == publish ]]; then
		mapfile -t COMPREPLY < <(compgen -W "-" -- "$cur")
	fi
}
complete -F _shmnotify shmnotify
