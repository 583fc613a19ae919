#!/usr/bin/env bats
# A GitHub App's installation token as the git HTTPS password: kwh-fetch
# and kwh-handle --listen against git http-backend behind basic auth that
# accepts only the installation tokens the test GitHub API server issued.

load test_helper

setup() {
	setup_tmp
	export HOME=$TMP
	unset LISTEN_PID
}

teardown() {
	[ -z "${LISTEN_PID:-}" ] || stop_pid "$LISTEN_PID"
	stop_git_servers
	github_stop
	apiserver_stop
}

# git_app_setup: the test GitHub server (installation 77, issued tokens in
# $TMP/issued) and a git server of $SRV accepting exactly those tokens.
git_app_setup() {
	github_start --installation 77 --issued-tokens-file "$TMP/issued"
	start_http_git "@$TMP/issued"
	URL=http://127.0.0.1:$HTTP_GIT_PORT/octo/repo.git
	APP=(--app-id "$GITHUB_APP_ID" --app-key-file "$GITHUB_DIR/app.pem"
		--api-url "$GITHUB_URL" --ca-file "$GITHUB_CA")
}

@test "kwh-fetch --app-id: the installation token of payload.installation.id is the password" {
	make_test_repo
	git_app_setup
	envelope "$REV2" refs/heads/main "$URL" | jq -c '.payload.installation = {id: 77}' >"$TMP/in"
	run --separate-stderr kwh-fetch --cache "$TMP/cache" --allow-remote-host http://127.0.0.1 \
		"${APP[@]}" <"$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<<"$output")" two
	grep -q '^POST /octo/repo.git/git-upload-pack 200$' "$TMP/http.log"
	run github_state
	assert_equal "$(jq .tokens_issued <<<"$output")" 1
	assert_equal "$(github_requests | jq -c '[.[] | [.method, .path, .auth_kind]]')" \
		'[["POST","/app/installations/77/access_tokens","jwt"]]'
	# the token is nowhere but in the server's file
	tok=$(cat "$TMP/issued")
	[ -n "$tok" ]
	[[ "$output$stderr" != *"$tok"* ]]
	run grep -rlF "$tok" "$TMP/cache"
	assert_failure 1
	run github_check
	assert_success
}

@test "kwh-fetch: without the App, or with the personal token, the git server refuses (502)" {
	make_test_repo
	git_app_setup
	envelope "$REV2" refs/heads/main "$URL" | jq -c '.payload.installation = {id: 77}' >"$TMP/in"
	run --separate-stderr kwh-fetch --cache "$TMP/cache" --allow-remote-host http://127.0.0.1 \
		--token-file "$GITHUB_DIR/token" <"$TMP/in"
	assert_failure 1
	assert_equal "$(jq .response.status <<<"$output")" 502
	assert_equal "$(github_state | jq .tokens_issued)" 0
}

@test "kwh-fetch --app-id: no installation.id is 400; --installation-id supplies it; one the App lacks is 502" {
	make_test_repo
	git_app_setup
	envelope "$REV2" refs/heads/main "$URL" >"$TMP/in"
	run --separate-stderr kwh-fetch --cache "$TMP/cache" --allow-remote-host http://127.0.0.1 \
		"${APP[@]}" <"$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r '"\(.response.status) \(.response.message)"' <<<"$output")" \
		"400 the payload has no installation.id: the hook is not a GitHub App's (give --installation-id, or --token-file)"
	run --separate-stderr kwh-fetch --cache "$TMP/cache" --allow-remote-host http://127.0.0.1 \
		"${APP[@]}" --installation-id 77 <"$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<<"$output")" two
	jq -c '.payload.installation = {id: 78}' "$TMP/in" >"$TMP/in78"
	run --separate-stderr kwh-fetch --cache "$TMP/cache" --allow-remote-host http://127.0.0.1 \
		"${APP[@]}" <"$TMP/in78"
	assert_failure 1
	assert_equal "$(jq .response.status <<<"$output")" 502
	assert_log_has "GitHub answered 404"
	run -100 kwh-fetch --app-id 4242
	assert_output --partial "--app-id and --app-key-file go together"
	run -100 kwh-fetch --installation-id 7
	assert_output --partial "go with --app-id"
}

@test "kwh-handle --listen --app-id: one installation token for two deliveries, Workflows created" {
	handler_setup app-secret
	mkdir -p "$TMP/srv/octo"
	git clone -q --bare "$TMP/repo" "$TMP/srv/octo/repo.git"
	SRV=$TMP/srv
	git_app_setup
	push_payload refs/heads/main "$URL" | jq -c '.installation = {id: 77}' >"$TMP/push-app.json"
	PORT=$(free_port)
	kwh-handle --listen "127.0.0.1:$PORT" --workers 1 "${VOPTS[@]}" "${FOPTS[@]}" \
		--allow-remote-host http://127.0.0.1 "${POPTS[@]}" "${APP[@]}" \
		--log "$TMP/listen.log" 2>"$TMP/listen.err" 3>&- &
	LISTEN_PID=$!
	wait_port "$PORT"
	sig=$(sig_of "$TMP/push-app.json" "$TMP/secret")
	for d in d-app-1 d-app-2; do
		run curl -sS --max-time 20 -o "$TMP/body" -w '%{http_code}' \
			-H 'Content-Type: application/json' -H "X-GitHub-Event: push" \
			-H "X-GitHub-Delivery: $d" -H "X-Hub-Signature-256: $sig" \
			--data-binary @"$TMP/push-app.json" "http://127.0.0.1:$PORT/"
		assert_output 201
	done
	assert_equal "$(apiserver_objects | jq '[.[] | select(.kind == "Workflow")] | length')" 2
	assert_equal "$(github_state | jq .tokens_issued)" 1
	tok=$(cat "$TMP/issued")
	run grep -rlF "$tok" "$TMP/listen.log" "$TMP/listen.err" "$TMP/cache"
	assert_failure 1
}
