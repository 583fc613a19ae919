#!/usr/bin/env bats
# kwh-handle as the original k8s-webhook-handler's users run it: -l :8080
# on every interface, its liveness path (-lp), its log level (-debug).

load test_helper

setup() {
	setup_tmp
	export HOME=$TMP
	unset LISTEN_PID
}

teardown() {
	[ -z "${LISTEN_PID:-}" ] || stop_pid "$LISTEN_PID"
}

# start_handle LISTEN [OPTION...]: kwh-handle --listen LISTEN (a port from
# free_port in PORT), client dry-run: no cluster needed.
start_handle() {
	local l=$1
	shift
	WEBHOOK_SECRET=migration-secret kwh-handle --listen "$l" --workers 1 --dry-run \
		--cache "$TMP/cache" --log "$TMP/log" "$@" 2>"$TMP/err" 3>&- &
	LISTEN_PID=$!
	wait_port "$PORT"
}

# bound: the local address the server listens on (ss).
bound() {
	ss -Hltn "( sport = :$PORT )" | awk '{ print $4 }'
}

@test "--listen :PORT listens on every interface, IPv4 included" {
	PORT=$(free_port)
	start_handle ":$PORT"
	run bound
	# IPv6's any address (taking IPv4 too), or IPv4's without IPv6
	assert_output --regexp "^(\[::\]|\*|0\.0\.0\.0):$PORT$"
	run curl -sS --max-time 5 "http://127.0.0.1:$PORT/-/alive"
	assert_success
	if [ -e /proc/net/if_inet6 ] && [[ $(bound) == "[::]:$PORT" ]]; then
		run curl -sS --max-time 5 "http://[::1]:$PORT/-/alive"
		assert_success
	fi
}

@test "--listen PORT alone stays on 127.0.0.1" {
	PORT=$(free_port)
	start_handle "$PORT"
	run bound
	assert_output "127.0.0.1:$PORT"
}

@test "--liveness-path: GET on it is 200 alive; /-/alive is then a POST-only path" {
	PORT=$(free_port)
	start_handle "127.0.0.1:$PORT" --liveness-path /healthz
	run curl -sS --max-time 5 -o "$TMP/body" -w '%{http_code}' "http://127.0.0.1:$PORT/healthz"
	assert_output 200
	jq -e '.message == "alive"' "$TMP/body"
	run curl -sS --max-time 5 -o "$TMP/body" -w '%{http_code}' "http://127.0.0.1:$PORT/-/alive"
	assert_output 405
	run --separate-stderr kwh-handle --liveness-path healthz --insecure </dev/null
	assert_failure 100
	[[ $stderr == *"--liveness-path: 'healthz'"* ]] || fail "$stderr"
}

@test "--log-level warn hides info lines, debug and info keep them; a bad level is 100" {
	PORT=$(free_port)
	start_handle "127.0.0.1:$PORT" --log-level warn
	curl -sS --max-time 5 "http://127.0.0.1:$PORT/-/alive" >/dev/null
	stop_pid "$LISTEN_PID"; unset LISTEN_PID
	run ! grep -q 'level=info' "$TMP/log"
	: >"$TMP/log"
	PORT=$(free_port)
	start_handle "127.0.0.1:$PORT" --log-level debug
	curl -sS --max-time 5 "http://127.0.0.1:$PORT/-/alive" >/dev/null
	stop_pid "$LISTEN_PID"; unset LISTEN_PID
	grep -q 'level=info.*listening on' "$TMP/log"
	run --separate-stderr kwh-handle --log-level loud --insecure </dev/null
	assert_failure 100
	[[ $stderr == *"--log-level: 'loud' is not debug, info, warn or error"* ]] || fail "$stderr"
}
