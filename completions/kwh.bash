# bash completion for the kwh tools.
# The options come from each tool's own --help, so they never drift from
# what the tool accepts.  Install as /usr/share/bash-completion/completions/kwh
# (make install does) and link or source it for each tool name.

_kwh_options()
{
	"$1" --help 2>/dev/null | grep -oE -- '--[a-z][a-z0-9-]*(=[a-z|]+)?' | sed 's/=.*//' | sort -u
}

_kwh()
{
	local cur prev
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	case $prev in
	--secret-file|--kubeconfig|--ssh-key|--known-hosts|--token-file|--ca-file|--log|--app-key-file|--config)
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	--cache|--spool)
		COMPREPLY=($(compgen -d -- "$cur"))
		return
		;;
	--dry-run)
		COMPREPLY=($(compgen -W 'client server' -- "$cur"))
		return
		;;
	--log-format)
		COMPREPLY=($(compgen -W 'logfmt json' -- "$cur"))
		return
		;;
	--metrics-path)
		COMPREPLY=($(compgen -W '/metrics none' -- "$cur"))
		return
		;;
	--status)
		COMPREPLY=($(compgen -W 'commit check-run' -- "$cur"))
		return
		;;
	--status-context|--status-target-url)
		COMPREPLY=()
		return
		;;
	--statsd)
		# HOST:PORT
		COMPREPLY=()
		return
		;;
	--listen)
		# [HOST:]PORT, or the socket systemd passes
		COMPREPLY=($(compgen -W 'systemd' -- "$cur"))
		return
		;;
	--workers|--max-requests|--max-pending|--header-timeout|--backlog|\
	--app-id|--installation-id|--hook-id|--max|--since|--repo|--api-url)
		COMPREPLY=()
		return
		;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(_kwh_options "${COMP_WORDS[0]}")" -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}

complete -F _kwh kwh-verify kwh-annotate kwh-fetch kwh-apply kwh-respond kwh-sign kwh-replay kwh-handle kwh-status
