#!/usr/bin/env bats
# kwh-handle's bounds on what one delivery may cost: a --listen worker
# gives the memory of a large request back once it is answered, and a
# payload with more JSON values than --max-json-values is refused (413)
# before anything builds them.

load test_helper

setup() {
	setup_tmp
	handler_setup memory-secret
	unset LISTEN_PID
}

teardown() {
	[ -z "${LISTEN_PID:-}" ] || stop_pid "$LISTEN_PID"
	stop_git_servers
	apiserver_stop
}

# start_listen [OPTIONS]: as in tests/6001: PORT, LISTEN_PID, $TMP/listen.log.
start_listen() {
	PORT=$(free_port)
	kwh-handle --listen "127.0.0.1:$PORT" "${VOPTS[@]}" "${AOPTS[@]}" "${FOPTS[@]}" \
		"${POPTS[@]}" --log "$TMP/listen.log" "$@" 2>"$TMP/listen.err" 3>&- &
	LISTEN_PID=$!
	wait_port "$PORT"
}

# rss PID: the resident size of PID in kB.
rss() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# big_push N FILE: the test's push with a "padding" array of N small
# objects (two JSON values each) added.
big_push() {
	jq -c --argjson n "$1" '. + {padding: [range($n) | {k: "0123456789abcdefghijklmnopqrstuvwxyz0123"}]}' \
		"$TMP/push.json" >"$2"
}

@test "listen: a worker is back near its idle size after a 20 MB body" {
	[ -z "${KWH_SANITIZED:-}" ] || skip "RSS is meaningless under ASan (its quarantine)"
	big_push 450000 "$TMP/big.json"
	size=$(stat -c %s "$TMP/big.json")
	[ "$size" -gt 20000000 ]
	[ "$size" -lt 25000000 ]
	start_listen --workers 1
	n=100
	until [ -n "$(pgrep -P "$LISTEN_PID")" ] && grep -q 'worker [0-9]* started' "$TMP/listen.log"; do
		n=$((n - 1)); [ "$n" -gt 0 ]; sleep 0.05
	done
	w=$(pgrep -P "$LISTEN_PID")
	run post "$TMP/push.json" push d-warm
	assert_output 201
	idle=$(rss "$w")
	run post "$TMP/big.json" push d-big
	assert_output 201
	# the response is written before the memory is trimmed
	sleep 0.5
	after=$(rss "$w")
	echo "worker $w: idle $idle kB, after the 20 MB body $after kB"
	assert_equal "$(pgrep -P "$LISTEN_PID")" "$w"
	[ "$after" -lt $((idle + 50000)) ]
}

@test "kwh-handle: more JSON values than --max-json-values is 413, nothing created" {
	# 500,000 objects of 2 values each: over the default of 1,000,000
	big_push 500000 "$TMP/big.json"
	kwh-sign --event push --delivery d-values --secret-file "$TMP/secret" "$TMP/big.json" >"$TMP/req"
	before=$(apiserver_objects | jq length)
	kwh-handle "${VOPTS[@]}" "${FOPTS[@]}" "${POPTS[@]}" <"$TMP/req" >"$TMP/resp" 2>"$TMP/err" &&
		rc=0 || rc=$?
	assert_equal "$rc" 1
	assert_equal "$(http_status "$TMP/resp")" 413
	http_body "$TMP/resp" | jq -e '.status == 413 and
		(.message | test("^payload has more than 1000000 JSON values at byte [0-9]+ \\(the limit is --max-json-values\\)$"))'
	assert_equal "$(apiserver_objects | jq length)" "$before"
	# raised, it passes
	kwh-handle "${VOPTS[@]}" "${FOPTS[@]}" "${POPTS[@]}" --max-json-values 2000000 \
		<"$TMP/req" >"$TMP/resp" 2>"$TMP/err"
	assert_equal "$(http_status "$TMP/resp")" 201
	assert_equal "$(apiserver_objects | jq length)" $((before + 1))
}
