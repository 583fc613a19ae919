#!/usr/bin/env bats
# kwh-handle when the fetch outlasts the budget (issue 16, point 2): with
# --spool the delivery is spooled and answered 202 "queued" within the
# budget, then the same process waits for the background fetch, creates
# the Workflow and removes the spool file, with no further command;
# without --spool, 503 with Retry-After.  The remote is a git daemon
# whose upload-pack waits at a gate the test opens (as in tests/2013).

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
	kwh-sign --event push --delivery d-bg --secret-file "$TMP/secret" "$TMP/push.json" > "$TMP/req"
	mkdir "$TMP/spool"
}

teardown() {
	: > "$TMP/gate-open"
	[ -z "${HPID:-}" ] || { wait "$HPID" || true; }
	stop_git_servers
	apiserver_stop
	github_stop
}

@test "--spool: 202 queued and spooled in time, then completed by the same process" {
	before=$(uids)
	kwh-handle "${VOPTS[@]}" "${FOPTS[@]}" "${POPTS[@]}" --budget 2 --spool "$TMP/spool" \
	    --log "$TMP/handle.log" < "$TMP/req" > "$TMP/resp" &
	HPID=$!
	# the answer is complete (its body ends the output) before the gate opens
	wait_for grep -q '"queued":true' "$TMP/resp"
	[ -e "$TMP/gate-reached" ]
	[ ! -e "$TMP/gate-passed" ]
	[[ "$(head -n1 "$TMP/resp")" == "HTTP/1.1 202 "* ]]
	http_body "$TMP/resp" | jq -e '.queued == true and .spooled == true and
	    (.message | startswith("accepted for processing"))'
	spool_file "$TMP/spool" d-bg
	grep -F "delivery accepted for processing and spooled" "$TMP/handle.log"
	assert_equal "$(new_objects "$before" | jq length)" 0
	# the fetch lands: the Workflow is created, the spool file removed
	: > "$TMP/gate-open"
	wait "$HPID"
	HPID=
	assert_equal "$(new_objects "$before" | jq -r "map(.kind) | join(\",\")")" Workflow
	not_spooled "$TMP/spool" d-bg
	grep -F "queued delivery completed after the background fetch (status 201)" "$TMP/handle.log"
	# the next delivery of that revision: 201 from the cache, no fetch
	packs=$(upload_packs)
	kwh-handle "${VOPTS[@]}" "${FOPTS[@]}" "${POPTS[@]}" --budget 2 --spool "$TMP/spool" \
	    --log "$TMP/handle.log" < "$TMP/req" > "$TMP/resp"
	[[ "$(head -n1 "$TMP/resp")" == "HTTP/1.1 201 "* ]]
	assert_equal "$(upload_packs)" "$packs"
}

@test "--status: a queued delivery reports pending at once, then the Workflow's pending status once completed" {
	github_start
	kwh-handle "${VOPTS[@]}" "${FOPTS[@]}" "${POPTS[@]}" --budget 2 --spool "$TMP/spool" \
	    --status commit --api-url "$GITHUB_URL" --ca-file "$GITHUB_CA" \
	    --token-file "$GITHUB_DIR/token" --status-target-url 'https://argo.example/{namespace}/{name}' \
	    --log "$TMP/handle.log" < "$TMP/req" > "$TMP/resp" &
	HPID=$!
	wait_for grep -q '"queued":true' "$TMP/resp"
	# reported after the answer, while the fetch still waits at the gate
	wait_for grep -qF "reported pending" "$TMP/handle.log"
	[ ! -e "$TMP/gate-passed" ]
	assert_equal "$(github_state | jq -c '.statuses | map([.state, (.description | startswith("kwh queued it: accepted for processing")), .target_url])')" \
		'[["pending",true,null]]'
	: > "$TMP/gate-open"
	wait "$HPID"
	HPID=
	name=$(apiserver_objects | jq -r 'map(select(.kind == "Workflow"))[0].metadata.name')
	assert_equal "$(github_state | jq -c '.statuses[1] | [.state, .description, .target_url]')" \
		"$(jq -nc --arg n "$name" '["pending", "Workflow \($n) created", "https://argo.example/ci/\($n)"]')"
	run github_check
	assert_success
}

@test "a skipped delivery's 202 is not queued" {
	push_payload refs/heads/other "$URL" > "$TMP/push.json"
	kwh-sign --event push --delivery d-skip --secret-file "$TMP/secret" "$TMP/push.json" > "$TMP/req"
	kwh-handle "${VOPTS[@]}" "${FOPTS[@]}" "${POPTS[@]}" --ignore-ref '^refs/heads/other$' \
	    --spool "$TMP/spool" --log "$TMP/handle.log" < "$TMP/req" > "$TMP/resp" || true
	[[ "$(head -n1 "$TMP/resp")" == "HTTP/1.1 202 "* ]]
	http_body "$TMP/resp" | jq -e 'has("queued") | not'
}

@test "without --spool: 503 with Retry-After in time; the fetch still lands" {
	run --separate-stderr kwh-handle "${VOPTS[@]}" "${FOPTS[@]}" "${POPTS[@]}" --budget 2 \
	    --log "$TMP/handle.log" < "$TMP/req"
	[ ! -e "$TMP/gate-passed" ]
	[[ "$output" == "HTTP/1.1 503 "* ]]
	[[ "$output" == *$'\r\nRetry-After: 30\r\n'* ]]
	: > "$TMP/gate-open"
	wait_for grep -qF "landed" "$TMP/handle.log"
	packs=$(upload_packs)
	run --separate-stderr kwh-handle "${VOPTS[@]}" "${FOPTS[@]}" "${POPTS[@]}" --budget 2 \
	    --log "$TMP/handle.log" < "$TMP/req"
	[[ "$output" == "HTTP/1.1 201 "* ]]
	assert_equal "$(upload_packs)" "$packs"
}
