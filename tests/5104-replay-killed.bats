#!/usr/bin/env bats
# kwh-replay killed while its chain runs (issue 15, point 7): the chain
# keeps the delivery's lock until it ends, so a second kwh-replay started
# meanwhile does not send the same delivery again.  The chain is a
# stand-in that counts its runs; the subject is kwh-replay.

load test_helper

setup() {
	setup_tmp
	SPOOL=$TMP/spool
	mkdir "$SPOOL"
	jq -nc '{kwh: 1, delivery: "k1", verified: "sha256", deadline: 1000,
		payload: {ref: "refs/heads/main"}, annotations: {a: "b"}, manifests: [],
		spool: {stage: "kwh-apply", status: 503, message: "down", time: 1000, attempts: 0}}' >"$SPOOL/k1.json"
	# each run of the chain appends a line, waits for $TMP/go, then answers 201
	CHAIN="echo run >>'$TMP/runs'; while [ ! -e '$TMP/go' ]; do sleep 0.05; done; jq -c '.results = [{action: \"created\"}]'"
	# the same without the wait
	QUICK="echo run >>'$TMP/runs'; jq -c '.results = [{action: \"created\"}]'"
}

teardown() {
	touch "$TMP/go"
	[ -z "${REPLAY:-}" ] || kill -9 "$REPLAY" 2>/dev/null || true
}

# runs: how many times the chain has started.
runs() { [ -f "$TMP/runs" ] && wc -l <"$TMP/runs" || echo 0; }

# wait_runs N: waits up to 10 s until the chain has started N times.
wait_runs() {
	local i
	for i in $(seq 1 200); do [ "$(runs)" -ge "$1" ] && return 0; sleep 0.05; done
	fail "the chain started $(runs) times, not $1"
}

@test "SIGKILL of kwh-replay mid-chain: the chain holds the lock, a second replay skips the delivery" {
	kwh-replay --spool "$SPOOL" "$CHAIN" >/dev/null 2>"$TMP/err1" &
	REPLAY=$!
	wait_runs 1
	kill -9 "$REPLAY"
	wait "$REPLAY" 2>/dev/null || true
	# the chain is still running, and so holds the lock: nothing to replay
	run --separate-stderr timeout 20 kwh-replay --spool "$SPOOL" "$QUICK"
	assert_success
	assert_equal "$(runs)" 1
	[ -f "$SPOOL/k1.json" ]
	# once the chain has ended, the delivery may be replayed again
	touch "$TMP/go"
	for i in $(seq 1 100); do
		pgrep -f "while \[ ! -e '$TMP/go' \]" >/dev/null || break
		sleep 0.05
	done
	run --separate-stderr timeout 20 kwh-replay --spool "$SPOOL" "$QUICK"
	assert_success
	assert_equal "$(runs)" 2
	[ ! -e "$SPOOL/k1.json" ]
}

@test "the chain runs in a process group of its own, not kwh-replay's" {
	kwh-replay --spool "$SPOOL" "echo \$(ps -o pgid= -p \$\$) >'$TMP/pgid'; $CHAIN" >/dev/null 2>&1 &
	REPLAY=$!
	wait_runs 1
	local mine chain
	mine=$(ps -o pgid= -p "$REPLAY" | tr -d ' ')
	chain=$(tr -d ' ' <"$TMP/pgid")
	[ -n "$mine" ] && [ -n "$chain" ] || fail "no process group read"
	[ "$mine" != "$chain" ] || fail "the chain is in kwh-replay's process group $mine"
	touch "$TMP/go"
	timeout 20 tail --pid="$REPLAY" -f /dev/null
}
