#!/usr/bin/env bats
# kwh-handle --listen --backlog: the listen queue's length (issue 16,
# point 5, in part).  ss(8) shows it as the listening socket's Send-Q.

load test_helper

setup() {
	setup_tmp
	secret_file secret backlog-secret
}

teardown() {
	[ -z "${LISTEN_PID:-}" ] || { kill "$LISTEN_PID" 2>/dev/null; wait "$LISTEN_PID" 2>/dev/null || true; }
}

# queue_of [OPTIONS]: starts kwh-handle --listen with OPTIONS, prints its queue length.
queue_of() {
	PORT=$(free_port)
	kwh-handle --listen "127.0.0.1:$PORT" --workers 1 --secret-file "$TMP/secret" \
		--dry-run=client --log none "$@" 3>&- &
	LISTEN_PID=$!
	wait_port "$PORT"
	ss -Hltn "( sport = :$PORT )" | awk '{ print $3 }'
	kill "$LISTEN_PID"; wait "$LISTEN_PID" 2>/dev/null || true
	LISTEN_PID=
}

@test "--backlog N sets the listen queue; the default is 1024, or the kernel's cap" {
	run -0 queue_of --backlog 7
	assert_output 7
	run -0 queue_of
	cap=$(cat /proc/sys/net/core/somaxconn)
	assert_output "$(( cap < 1024 ? cap : 1024 ))"
}

@test "--backlog: only with --listen, and 1 or more" {
	run -100 --separate-stderr kwh-handle --secret-file "$TMP/secret" --backlog 5 </dev/null
	[[ $stderr == *"--backlog: only with --listen"* ]] || fail "stderr: $stderr"
	run -100 --separate-stderr kwh-handle --listen "127.0.0.1:$(free_port)" --secret-file "$TMP/secret" --backlog 0
	[[ $stderr == *"--backlog"* ]] || fail "stderr: $stderr"
}
