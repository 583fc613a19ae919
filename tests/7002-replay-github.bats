#!/usr/bin/env bats
# kwh-replay --from-github: the hook's failed deliveries, listed through
# the test GitHub API server, redelivered by it to a kwh-handle --listen
# on 127.0.0.1 (the hook's URL), which creates each Workflow once.

load test_helper

setup() {
	setup_tmp
	handler_setup replay-secret
	unset LISTEN_PID
	github_start
	HOOK=9
	# deduplication on (handler_setup's POPTS turn it off for other tests)
	POPTS=(--kubeconfig "$APISERVER_DIR/kubeconfig" --cache "$TMP/cache")
	PORT=$(free_port)
	kwh-handle --listen "127.0.0.1:$PORT" "${VOPTS[@]}" "${AOPTS[@]}" "${FOPTS[@]}" \
		"${POPTS[@]}" --log "$TMP/listen.log" 2>"$TMP/listen.err" 3>&- &
	LISTEN_PID=$!
	wait_port "$PORT"
	github_control POST /_test/hooks "$(jq -nc --arg url "http://127.0.0.1:$PORT/" --argjson id "$HOOK" \
		'{owner:"octo", repo:"repo", hook_id:$id, url:$url, secret:"replay-secret"}')" >/dev/null
	GH=(--api-url "$GITHUB_URL" --ca-file "$GITHUB_CA" --repo octo/repo --hook-id "$HOOK")
}

teardown() {
	[ -z "${LISTEN_PID:-}" ] || stop_pid "$LISTEN_PID"
	stop_git_servers
	github_stop
	apiserver_stop
}

# ago MINUTES: RFC 3339 time MINUTES ago.
ago() { date -u -d "-$1 min" +%Y-%m-%dT%H:%M:%SZ; }

# seed GUID STATUS MINUTES_AGO [JQ on the push payload] [REDELIVERY]: a
# delivery in the hook's log, as GitHub recorded it.
seed() {
	jq -c --arg guid "$1" --argjson sc "$2" --arg at "$(ago "$3")" --argjson id "$HOOK" \
		--argjson re "${5:-false}" \
		"{owner:\"octo\", repo:\"repo\", hook_id:\$id, guid:\$guid, event:\"push\",
		  payload:(${4:-.}), status_code:\$sc, delivered_at:\$at, redelivery:\$re}" \
		"$TMP/push.json" >"$TMP/seed.json"
	github_control POST /_test/deliveries "$(cat "$TMP/seed.json")" >/dev/null
}

# the deliveries the tests start from (in the order GitHub would list them
# reversed: the server lists by id, newest first)
seed_all() {
	seed g-old 502 4000 '.seq = "old"'			# failed, older than --since 1d
	seed g-fixed 503 50 '.seq = "fixed"'			# failed ...
	seed g-fixed 201 45 '.seq = "fixed"' true		# ... then redelivered by hand
	seed g-502 502 30					# failed: redelivered
	seed g-0 0 20 '.seq = "conn"'				# never connected: redelivered
	seed g-lost 0 15					# the same push (body) again: kwh finds it
	seed g-400 400 10 '.seq = "bad"'			# refused by kwh: final
}

workflows() { apiserver_objects | jq '[.[] | select(.kind == "Workflow")] | length'; }

@test "the failed deliveries are redelivered oldest first, each Workflow created once; a second run asks for nothing" {
	seed_all
	run --separate-stderr kwh-replay --from-github "${GH[@]}" --token-file "$GITHUB_DIR/token" --since 1d
	assert_success
	assert_equal "$(jq -r '"\(.guid) \(.status_code) \(.result)"' <<<"$output" | tr '\n' ,)" \
		"g-502 502 redelivered,g-0 0 redelivered,g-lost 0 redelivered,"
	assert_log_has "redelivery of push delivery"
	[ "$(grep -c 'redelivery of push delivery' <<<"$stderr")" -eq 3 ]
	assert_log_has "3 redelivered of 3 to redeliver"
	# kwh answered each redelivery: 201 for the two pushes, 200 (exists)
	# for the same push under another guid
	run github_state
	assert_equal "$(jq -c '[.redeliveries[] | [.guid, .status_code]]' <<<"$output")" \
		'[["g-502",201],["g-0",201],["g-lost",200]]'
	assert_equal "$(workflows)" 2
	# the redelivered carry the same delivery id
	grep -q 'g-502' "$TMP/listen.log"

	run --separate-stderr kwh-replay --from-github "${GH[@]}" --token-file "$GITHUB_DIR/token" --since 1d
	assert_success
	assert_output ""
	assert_log_has "0 redelivered of 0 to redeliver"
	run github_state
	assert_equal "$(jq '.redeliveries | length' <<<"$output")" 3
	assert_equal "$(workflows)" 2
	run github_check
	assert_success
}

@test "--since as RFC 3339 takes the old one in; --max bounds the redeliveries; --dry-run asks for nothing" {
	seed_all
	run --separate-stderr kwh-replay --from-github "${GH[@]}" --token-file "$GITHUB_DIR/token" \
		--since "$(ago 5000)" --dry-run
	assert_success
	assert_equal "$(jq -r '"\(.guid) \(.result)"' <<<"$output" | tr '\n' ,)" \
		"g-old would-redeliver,g-502 would-redeliver,g-0 would-redeliver,g-lost would-redeliver,"
	assert_equal "$(github_requests | jq -c '[.[].method] | unique')" '["GET"]'
	assert_equal "$(github_state | jq '.redeliveries | length')" 0

	run --separate-stderr kwh-replay --from-github "${GH[@]}" --token-file "$GITHUB_DIR/token" \
		--since 25m --max 1
	assert_failure 1
	assert_equal "$(jq -r '"\(.guid) \(.result)"' <<<"$output" | tr '\n' ,)" \
		"g-0 redelivered,g-lost not-asked,"
	assert_log_has "--max 1 redeliveries reached"
	assert_equal "$(github_state | jq -c '[.redeliveries[].guid]')" '["g-0"]'
	run github_check
	assert_success
}

@test "every page is read (Link rel=next); 5xx and rate limits are retried; the token stays out of argv and logs" {
	seed g-502 502 30
	# 120 successful deliveries after it: it is on the second page
	for i in $(seq 1 120); do
		printf '{"owner":"octo","repo":"repo","hook_id":%s,"guid":"ok-%s","event":"ping","payload":{},"status_code":202,"delivered_at":"%s"}\n' \
			"$HOOK" "$i" "$(ago 5)"
	done >"$TMP/many"
	while read -r l; do github_control POST /_test/deliveries "$l" >/dev/null; done <"$TMP/many"
	github_fault '{"count":1,"status":502,"method":"GET","path":"/deliveries$"}'
	github_fault '{"count":1,"status":429,"retry_after":1,"method":"POST","path":"/attempts$"}'
	GITHUB_TOKEN=$GITHUB_TEST_TOKEN run --separate-stderr kwh-replay --from-github "${GH[@]}" --since 1h
	assert_success
	assert_equal "$(jq -r .guid <<<"$output")" g-502
	assert_log_has "GitHub answered 502"
	assert_log_has "GitHub answered 429"
	[[ "$stderr$output" != *"$GITHUB_TEST_TOKEN"* ]]
	run github_requests
	# the first page twice (502, then 200), the second by its cursor, the redelivery twice
	assert_equal "$(jq -c '[.[] | [.method, (.query.cursor != null), .status]]' <<<"$output")" \
		'[["GET",false,502],["GET",false,200],["GET",true,200],["POST",false,429],["POST",false,202]]'
	assert_equal "$(jq -c '[.[].auth_kind] | unique' <<<"$output")" '["personal"]'
	assert_equal "$(github_state | jq '.redeliveries | length')" 1
	run github_check
	assert_success
}

@test "through a GitHub App: one installation token for the listing and the redeliveries" {
	stop_pid "$GITHUB_PID"; unset GITHUB_PID
	github_start --installation 77
	github_control POST /_test/hooks "$(jq -nc --arg url "http://127.0.0.1:$PORT/" --argjson id "$HOOK" \
		'{owner:"octo", repo:"repo", hook_id:$id, url:$url, secret:"replay-secret"}')" >/dev/null
	GH=(--api-url "$GITHUB_URL" --ca-file "$GITHUB_CA" --repo octo/repo --hook-id "$HOOK")
	seed g-502 502 30
	seed g-0 0 20 '.seq = "conn"'
	run --separate-stderr kwh-replay --from-github "${GH[@]}" --app-id "$GITHUB_APP_ID" \
		--app-key-file "$GITHUB_DIR/app.pem" --installation-id 77 --since 2h
	assert_success
	assert_equal "$(jq -r .result <<<"$output" | tr '\n' ,)" "redelivered,redelivered,"
	run github_state
	assert_equal "$(jq '.tokens_issued' <<<"$output")" 1
	assert_equal "$(jq -c '[.redeliveries[].status_code]' <<<"$output")" '[201,201]'
	assert_equal "$(github_requests | jq -c '[.[].auth_kind]')" '["jwt","installation","installation","installation"]'
	[[ "$stderr" != *ghs_* ]]
	run github_check
	assert_success
}

@test "usage: what --from-github needs, and what it does not take" {
	run -100 kwh-replay --from-github --repo octo/repo --hook-id 9 --token-file "$GITHUB_DIR/token"
	assert_output --partial "--since"
	run -100 kwh-replay --from-github "${GH[@]}" --token-file "$GITHUB_DIR/token" --since yesterday
	assert_output --partial "neither RFC 3339"
	run -100 kwh-replay --from-github "${GH[@]}" --token-file "$GITHUB_DIR/token" --since 1h --spool "$TMP"
	assert_output --partial "takes no --spool"
	run -100 kwh-replay --from-github "${GH[@]}" --app-id 4242 --app-key-file "$GITHUB_DIR/app.pem" --since 1h
	assert_output --partial "--installation-id"
	run -100 kwh-replay --repo octo/repo 'kwh-apply'
	assert_output --partial "go with --from-github"
	GITHUB_TOKEN= run -100 kwh-replay --from-github "${GH[@]}" --since 1h
	assert_output --partial "no GitHub credentials"
}

@test "a listing GitHub refuses: exit 111 and GitHub's message" {
	run --separate-stderr kwh-replay --from-github --api-url "$GITHUB_URL" --ca-file "$GITHUB_CA" \
		--repo octo/none --hook-id 1 --token-file "$GITHUB_DIR/token" --since 1h
	assert_failure 111
	assert_log_has "cannot list the deliveries of hook 1 of octo/none: GitHub answered 404: Not Found"
}

@test "share/systemd/kwh-redeliver.{service,timer} verify, and the service's command line redelivers" {
	command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
	mkdir -p "$TMP/units" "$TMP/creds"
	cp "$TOP_DIR"/share/systemd/kwh-redeliver.service "$TOP_DIR"/share/systemd/kwh-redeliver.timer "$TMP/units/"
	sed -i "s|^ExecStart=/usr/local/bin/kwh-replay |ExecStart=$KWH_BIN/kwh-replay |" "$TMP/units/kwh-redeliver.service"
	grep -q "^ExecStart=$KWH_BIN/kwh-replay " "$TMP/units/kwh-redeliver.service"
	cd "$TMP/units"
	run systemd-analyze verify --man=no ./kwh-redeliver.timer ./kwh-redeliver.service
	assert_success
	assert_output ''
	seed g-502 502 30
	cp "$GITHUB_DIR/token" "$TMP/creds/github-token"
	cmd=$(sed -n '/^ExecStart=/,/[^\\]$/p' "$TMP/units/kwh-redeliver.service" |
		sed 's/^ExecStart=//; s/\\$//' | tr -d '\n\t' |
		sed "s|%d|$TMP/creds|g; s|\${KWH_REDELIVER_REPO}|octo/repo|; s|\${KWH_REDELIVER_HOOK}|$HOOK|")
	[[ "$cmd" == *"--from-github"* ]]
	# shellcheck disable=SC2086
	run --separate-stderr $cmd --api-url "$GITHUB_URL" --ca-file "$GITHUB_CA"
	assert_success
	assert_equal "$(jq -r '"\(.guid) \(.result)"' <<<"$output")" "g-502 redelivered"
	assert_equal "$(github_state | jq -c '[.redeliveries[].status_code]')" '[201]'
}

@test "examples/kubernetes/cronjob-redeliver.yaml: its container's command redelivers" {
	f=$TOP_DIR/examples/kubernetes/cronjob-redeliver.yaml
	seed g-0 0 20
	mkdir -p "$TMP/etc"
	cp "$GITHUB_DIR/token" "$TMP/etc/token"
	# (lib/yaml through the tests' own YAML-to-JSON tool)
	kwh-yaml2json "$f" >"$TMP/cronjob.json"
	mapfile -t cmd < <(jq -r '.spec.jobTemplate.spec.template.spec.containers[0] | (.command + .args)[]' "$TMP/cronjob.json")
	assert_equal "$(jq -r .kind "$TMP/cronjob.json")" CronJob
	assert_equal "${cmd[0]}" kwh-replay
	cmd=("${cmd[@]/\/etc\/kwh\/github\/token/$TMP/etc/token}")
	cmd=("${cmd[@]/octo\/app/octo/repo}")
	cmd=("${cmd[@]/12345678/$HOOK}")
	run --separate-stderr "${cmd[@]}" --api-url "$GITHUB_URL" --ca-file "$GITHUB_CA"
	assert_success
	assert_equal "$(jq -r '"\(.guid) \(.result)"' <<<"$output")" "g-0 redelivered"
}
