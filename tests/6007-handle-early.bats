#!/usr/bin/env bats
# kwh-handle --listen answers in time or says why (issue 16, point 5): a
# request that waited in the parent's queue for a free worker until too
# little of its --budget was left is answered as soon as a worker takes
# it: 202 queued under --spool (then completed by that worker), 503 with
# Retry-After without.  A worker completing a queued delivery counts
# against --max-queued: beyond it, 503 with Retry-After (and spooled).
# The single worker is kept busy by a delivery whose fetch waits at a gate
# (an uploadpack.packObjectsHook, as in tests/6006) the test opens, or by
# SIGSTOP: what happened in which order is told by the gate's files and
# the processes, not by timings.

load test_helper

setup() {
	setup_tmp
	handler_setup s3cret
	SRV=$TMP/srv
	mkdir -p "$SRV/octo"
	git clone -q --bare "$TMP/repo" "$SRV/octo/repo.git"
	start_gated_git_daemon
	URL=git://127.0.0.1:$GIT_DAEMON_PORT/octo/repo.git
	FOPTS=(--cache "$TMP/cache" --allow-remote-host git://127.0.0.1)
	push_payload refs/heads/main "$URL" > "$TMP/push.json"
	mkdir "$TMP/spool"
	LOG=$TMP/listen.log
	CURLS=()
}

teardown() {
	: > "$TMP/gate-open"
	[ -z "${WORKER:-}" ] || kill -CONT "$WORKER" 2>/dev/null || true
	local p
	for p in "${CURLS[@]}"; do stop_pid "$p"; done
	[ -z "${LISTEN_PID:-}" ] || stop_pid "$LISTEN_PID"
	stop_git_servers
	apiserver_stop
}

# serve [OPTIONS]: kwh-handle --listen, one worker, --budget 2, on a free
# port (PORT, LISTEN_PID); logs to $LOG.
serve() {
	PORT=$(free_port)
	kwh-handle --listen "127.0.0.1:$PORT" --workers 1 --budget 2 "${VOPTS[@]}" \
	    "${FOPTS[@]}" "${POPTS[@]}" --log "$LOG" "$@" 2>"$TMP/listen.err" 3>&- &
	LISTEN_PID=$!
	wait_port "$PORT"
}

# send DELIVERY: POSTs the signed push in the background; the answer
# (status line, headers, body) goes to $TMP/DELIVERY.resp; its pid is
# appended to CURLS and put in SENT.
send() {
	local sig
	sig=$(sig_of "$TMP/push.json" "$TMP/secret")
	curl -sS --max-time 30 -i -o "$TMP/$1.resp" -H 'Content-Type: application/json' \
	    -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: $1" \
	    -H "X-Hub-Signature-256: $sig" --data-binary @"$TMP/push.json" \
	    "http://127.0.0.1:$PORT/" &
	SENT=$!
	CURLS+=("$SENT")
}

# wait_for CMD...: runs CMD every 0.1 s until it succeeds (20 s at most).
wait_for() {
	local n=200
	until "$@" 2>/dev/null; do
		[ $n -gt 0 ] || { echo "never true: $*" >&2; cat "$LOG" >&2; return 1; }
		sleep 0.1
		n=$((n - 1))
	done
}

# status DELIVERY: the HTTP status of its answer.
status() {
	head -n1 "$TMP/$1.resp" | cut -d' ' -f2
}

@test "--spool: a request that waited for the busy worker is answered 202 queued, then completed" {
	serve --spool "$TMP/spool"
	before=$(uids)
	# d1 takes the only worker; its fetch waits at the gate
	send d1
	wait_for test -e "$TMP/gate-reached"
	send d2
	d2=$SENT
	# d1: 202 queued at its deadline; the worker goes on waiting for the
	# fetch, so d2 waits in the parent's queue, past all but the last
	# second of its budget (it was accepted before d1 was answered)
	wait_for grep -q '"queued":true' "$TMP/d1.resp"
	sleep 1.5
	kill -0 "$d2"
	[ ! -e "$TMP/gate-passed" ]
	: > "$TMP/gate-open"
	wait "$d2"
	assert_equal "$(status d2)" 202
	http_body "$TMP/d2.resp" | jq -e '.queued == true and .spooled == true and
	    (.message | startswith("accepted for processing: the server was busy"))'
	grep -F 'delivery=d2' "$LOG" | grep -F "ms for a free worker, too long to be completed within --budget"
	# both completed by the worker: two Workflows, nothing left in the spool
	wait_for grep -qF 'queued delivery completed (status 201)' "$LOG"
	grep -F 'delivery=d1' "$LOG" | grep -F 'queued delivery completed after the background fetch (status 201)'
	assert_equal "$(new_objects "$before" | jq -r 'map(.kind) | join(",")')" Workflow,Workflow
	not_spooled "$TMP/spool" d1
	not_spooled "$TMP/spool" d2
}

@test "without --spool: a request that waited for the stopped worker is answered 503 with Retry-After" {
	: > "$TMP/gate-open"
	serve
	WORKER=$(pgrep -P "$LISTEN_PID")
	wait_for grep -q "worker $WORKER started" "$LOG"
	kill -STOP "$WORKER"
	send d2
	d2=$SENT
	# past all but the last second of d2's budget, with no worker to take it
	sleep 1.5
	kill -0 "$d2"
	kill -CONT "$WORKER"
	WORKER=
	wait "$d2"
	assert_equal "$(status d2)" 503
	grep -q $'^Retry-After: 30\r$' "$TMP/d2.resp"
	http_body "$TMP/d2.resp" | jq -e '(.message | startswith("the server is busy")) and
	    (has("queued") | not)'
	grep -F 'delivery=d2' "$LOG" | grep -F "ms for a free worker: "
	# verified before: a request with a bad signature still gets its 401
	kill -STOP "$(pgrep -P "$LISTEN_PID")"
	WORKER=$(pgrep -P "$LISTEN_PID")
	printf 'x' >> "$TMP/push.json"
	sig=$(sig_of "$TMP/push.json" "$TMP/other")
	curl -sS --max-time 30 -i -o "$TMP/bad.resp" -H 'Content-Type: application/json' \
	    -H 'X-GitHub-Event: push' -H 'X-GitHub-Delivery: bad' \
	    -H "X-Hub-Signature-256: $sig" --data-binary @"$TMP/push.json" \
	    "http://127.0.0.1:$PORT/" &
	CURLS+=($!)
	sleep 1.5
	kill -CONT "$WORKER"
	WORKER=
	wait "${CURLS[-1]}"
	assert_equal "$(head -n1 "$TMP/bad.resp" | cut -d' ' -f2)" 401
}

@test "--max-queued: beyond it a delivery is answered 503 with Retry-After and spooled, not queued" {
	serve --spool "$TMP/spool" --workers 2 --max-queued 1
	before=$(uids)
	send d1
	wait_for grep -q '"queued":true' "$TMP/d1.resp"
	# d1's worker holds the one slot while it waits for the fetch; d2 goes
	# to the other worker, whose fetch finds the entry taken until the deadline
	send d2
	wait "$SENT"
	[ ! -e "$TMP/gate-passed" ]
	assert_equal "$(status d2)" 503
	grep -q $'^Retry-After: 30\r$' "$TMP/d2.resp"
	http_body "$TMP/d2.resp" | jq -e 'has("queued") | not'
	grep -F 'delivery=d2' "$LOG" | grep -F "not queued: 1 queued delivery is being completed already (--max-queued)"
	spool_file "$TMP/spool" d2
	: > "$TMP/gate-open"
	wait_for grep -qF 'queued delivery completed after the background fetch (status 201)' "$LOG"
	assert_equal "$(new_objects "$before" | jq -r 'map(.kind) | join(",")')" Workflow
	not_spooled "$TMP/spool" d1
}

@test "--max-queued: 1 to 1024" {
	run -100 --separate-stderr kwh-handle --insecure --max-queued 0 </dev/null
	[[ $stderr == *"--max-queued: '0' is not between 1 and 1024"* ]] || fail "stderr: $stderr"
	run -100 --separate-stderr kwh-handle --insecure --max-queued 1025 </dev/null
}

# Nothing is closed without a log line (issue 16, point 5).

@test "--max-pending: each connection closed unfinished is logged, those within the 10 s between warnings too" {
	serve --max-pending 2
	exec {C1}<>"/dev/tcp/127.0.0.1/$PORT"
	exec {C2}<>"/dev/tcp/127.0.0.1/$PORT"
	wait_for test -n "$(ss -Htn state established "( sport = :$PORT )" | sed -n 2p)"
	# the third closes the first (logged at once), the fourth the second
	# (within 10 s of that line: counted, and logged when they are up)
	exec {C3}<>"/dev/tcp/127.0.0.1/$PORT"
	run timeout 5 cat <&$C1
	assert_success
	exec {C4}<>"/dev/tcp/127.0.0.1/$PORT"
	run timeout 5 cat <&$C2
	assert_success
	wait_for grep -q 'closed 1 unfinished connection, the oldest' "$LOG"
	n=150
	until [ "$(grep -c 'closed 1 unfinished connection, the oldest' "$LOG")" = 2 ]; do
		[ $n -gt 0 ] || fail "the second close was never logged: $(cat "$LOG")"
		sleep 0.1
		n=$((n - 1))
	done
	exec {C1}>&- {C2}>&- {C3}>&- {C4}>&-
}

@test "SIGTERM: the connections that sent nothing are closed, and that is logged" {
	serve
	exec {C1}<>"/dev/tcp/127.0.0.1/$PORT"
	wait_for test -n "$(ss -Htn state established "( sport = :$PORT )")"
	kill -TERM "$LISTEN_PID"
	wait "$LISTEN_PID"
	LISTEN_PID=
	grep -F 'stopping: closed 1 connection that had sent nothing' "$LOG"
	run timeout 5 cat <&$C1
	assert_success
	exec {C1}>&-
}
