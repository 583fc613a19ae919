#!/usr/bin/env bats
# kwh-handle --status: each delivery's outcome reported on its commit, as
# kwh-status does in the chain (one implementation, lib/status.c), once
# the HTTP answer is written; one-shot and --listen, through a personal
# token and a GitHub App, against the test GitHub API server
# (tests/lib/github.bash) and the test Kubernetes API server.

load test_helper

setup() {
	setup_tmp
	handler_setup status-secret
	unset LISTEN_PID
}

teardown() {
	[ -z "${LISTEN_PID:-}" ] || stop_pid "$LISTEN_PID"
	stop_git_servers
	apiserver_stop
	github_stop
}

LINK='https://argo.example/workflows/{namespace}/{name}'

# request FILE DELIVERY: a signed push of FILE in $TMP/req.
request() {
	kwh-sign --event push --delivery "$2" --secret-file "$TMP/secret" "$1" >"$TMP/req"
}

# handle [OPTIONS]: the one-shot kwh-handle on $TMP/req with --status
# commit against the test GitHub server; the answer in $TMP/resp, the exit
# status in HANDLE_RC, the log in $TMP/handle.log.
handle() {
	kwh-handle "${VOPTS[@]}" "${FOPTS[@]}" "${POPTS[@]}" --status commit \
		--api-url "$GITHUB_URL" --ca-file "$GITHUB_CA" --log "$TMP/handle.log" "$@" \
		<"$TMP/req" >"$TMP/resp" && HANDLE_RC=0 || HANDLE_RC=$?
}

# start_listen [OPTIONS]: kwh-handle --listen --status commit on a free
# port; sets PORT and LISTEN_PID, logs to $TMP/listen.log.
start_listen() {
	PORT=$(free_port)
	kwh-handle --listen "127.0.0.1:$PORT" --workers 1 "${VOPTS[@]}" "${FOPTS[@]}" \
		"${POPTS[@]}" --status commit --api-url "$GITHUB_URL" --ca-file "$GITHUB_CA" \
		--log "$TMP/listen.log" "$@" 2>"$TMP/listen.err" 3>&- &
	LISTEN_PID=$!
	wait_port "$PORT"
}

statuses_are() { [ "$(github_state | jq '.statuses | length')" = "$1" ]; }

@test "one-shot, personal token: 201, then a pending status with the Workflow's name and link" {
	github_start
	request "$TMP/push.json" d-st-1
	handle --token-file "$GITHUB_DIR/token" --status-target-url "$LINK"
	assert_equal "$HANDLE_RC" 0
	[[ "$(head -n 1 "$TMP/resp")" == "HTTP/1.1 201 "* ]]
	name=$(http_body "$TMP/resp" | jq -r '.results[0].name')
	[[ "$name" == ci-* ]]
	run github_state
	assert_equal "$(jq -c '.statuses | map({state, context, description, target_url, owner, repo, sha})' <<<"$output")" \
		"$(jq -nc --arg n "$name" --arg sha "$REV" '[{state:"pending", context:"kwh",
			description:"Workflow \($n) created", target_url:"https://argo.example/workflows/ci/\($n)",
			owner:"octo", repo:"repo", sha:$sha}]')"
	assert_equal "$(github_requests | jq -c 'map(.auth_kind)')" '["personal"]'
	grep -F "kwh-status" "$TMP/handle.log" | grep -qF "reported pending on octo/repo@"
	run github_check
	assert_success
}

@test "GITHUB_TOKEN is the status token too, and never logged nor recorded; --status-context names it" {
	github_start
	request "$TMP/push.json" d-st-env
	GITHUB_TOKEN=$GITHUB_TEST_TOKEN handle --status-context kwh/argo
	assert_equal "$HANDLE_RC" 0
	assert_equal "$(github_state | jq -c '.statuses | map([.state, .context])')" '[["pending","kwh/argo"]]'
	run ! grep -rF "$GITHUB_TEST_TOKEN" "$TMP/handle.log" "$TMP/resp" <(github_requests)
}

@test "a refused delivery: a failure status with kwh's message; a skipped one: nothing, unless --status-report-skipped" {
	github_start
	request "$TMP/push.json" d-st-refused
	handle --token-file "$GITHUB_DIR/token" --allow-kind batch/Job
	assert_equal "$HANDLE_RC" 1
	st=$(http_status "$TMP/resp")
	[ "$st" -ge 400 ] && [ "$st" -lt 500 ]
	msg=$(http_body "$TMP/resp" | jq -r .message)
	assert_equal "$(github_state | jq -c '.statuses | map([.state, .description])')" \
		"$(jq -nc --arg d "kwh refused ($st): $msg" '[["failure", $d[:140]]]')"
	# a ref the handler ignores: 202, no status; then reported as success
	jq '.ref = "refs/heads/wip"' "$TMP/push.json" >"$TMP/wip.json"
	request "$TMP/wip.json" d-st-skipped
	handle --token-file "$GITHUB_DIR/token" --ignore-ref '^refs/heads/wip$'
	[[ "$(head -n 1 "$TMP/resp")" == "HTTP/1.1 202 "* ]]
	assert_equal "$(github_state | jq '.statuses | length')" 1
	handle --token-file "$GITHUB_DIR/token" --ignore-ref '^refs/heads/wip$' --status-report-skipped
	assert_equal "$(github_state | jq -c '.statuses[1] | [.state, (.description | startswith("kwh skipped it: "))]')" \
		'["success",true]'
	run github_check
	assert_success
}

@test "a request that fails verification reports nothing (its payload is not trusted)" {
	github_start
	kwh-sign --event push --delivery d-st-forged --secret-file "$TMP/other" "$TMP/push.json" >"$TMP/req"
	handle --token-file "$GITHUB_DIR/token"
	assert_equal "$(http_status "$TMP/resp")" 401
	assert_equal "$(github_requests | jq length)" 0
}

@test "--listen through a GitHub App: one installation token for two deliveries, two statuses" {
	github_start --installation 77
	jq -c '.installation = {id: 77}' "$TMP/push.json" >"$TMP/push-app.json"
	start_listen --app-id "$GITHUB_APP_ID" --app-key-file "$GITHUB_DIR/app.pem" \
		--status-target-url "$LINK"
	run post "$TMP/push-app.json" push d-app-1
	assert_output 201
	n1=$(jq -r '.results[0].name' "$TMP/listen.body")
	run post "$TMP/push-app.json" push d-app-2
	assert_output 201
	n2=$(jq -r '.results[0].name' "$TMP/listen.body")
	wait_for statuses_are 2
	run github_state
	assert_equal "$(jq .tokens_issued <<<"$output")" 1
	assert_equal "$(jq -c '.statuses | map(.target_url) | sort' <<<"$output")" \
		"$(jq -nc --arg a "$n1" --arg b "$n2" '[$a, $b] | map("https://argo.example/workflows/ci/\(.)") | sort')"
	assert_equal "$(github_requests | jq -c 'map(.auth_kind)')" '["jwt","installation","installation"]'
	run github_check
	assert_success
}

@test "--listen, the GitHub API failing (5xx) or stopped: the answers are unchanged, the failure logged" {
	github_start
	github_fault '{"count":1000,"status":502}'
	start_listen --token-file "$GITHUB_DIR/token"
	run post "$TMP/push.json" push d-down-1
	assert_output 201
	jq -e '.status == 201 and (.results | length == 1)' "$TMP/listen.body"
	wait_for grep -q "cannot report pending on octo/repo@" "$TMP/listen.log"
	grep -q "GitHub answered 502" "$TMP/listen.log"
	assert_equal "$(github_state | jq '.statuses | length')" 0
	# stopped: nothing listens on its port
	github_stop
	run post "$TMP/push.json" push d-down-2
	assert_output 201
	wait_for grep -q "delivery=d-down-2 .*cannot report pending" "$TMP/listen.log"
	# the worker serves on
	run post "$TMP/push.json" push d-down-3
	assert_output 201
}

@test "one-shot, the GitHub API stopped: the answer unchanged, exit 0, the failure logged" {
	github_start
	github_stop
	request "$TMP/push.json" d-st-down
	handle --token-file "$GITHUB_DIR/token"
	assert_equal "$HANDLE_RC" 0
	[[ "$(head -n 1 "$TMP/resp")" == "HTTP/1.1 201 "* ]]
	grep -q "cannot report pending on octo/repo@.*cannot reach GitHub" "$TMP/handle.log"
}

@test "--status: its usage errors" {
	run -100 kwh-handle "${VOPTS[@]}" --status yes
	assert_output --partial "--status: 'yes' is not commit or check-run"
	run -100 kwh-handle "${VOPTS[@]}" --status check-run --token-file "$TMP/secret"
	assert_output --partial "GitHub creates check runs for GitHub Apps only"
	run -100 kwh-handle "${VOPTS[@]}" --status-context kwh
	assert_output --partial "go with --status"
	run -100 kwh-handle "${VOPTS[@]}" --api-url http://127.0.0.1:1
	assert_output --partial "--api-url goes with --app-id or --status"
	run -100 env -u GITHUB_TOKEN kwh-handle "${VOPTS[@]}" "${FOPTS[@]}" --status commit </dev/null
	assert_output --partial "--status: no GitHub credentials"
}
