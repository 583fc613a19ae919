#!/usr/bin/env bats
# kwh-status: each delivery's outcome reported on its commit, through a
# personal token or a GitHub App, against the test GitHub API server.

load test_helper

setup() { setup_tmp; }
teardown() { github_stop; }

SHA=0123456789abcdef0123456789abcdef01234567

# env_created: an envelope as kwh-apply leaves it after creating a Workflow.
env_created() {
	jq -nc --arg sha "$SHA" '{kwh:1, delivery:"d-1", event:"push",
		payload:{ref:"refs/heads/main", after:$sha, repository:{full_name:"octo/app", id:5},
			installation:{id:77}},
		annotations:{"k8s-webhook-handler.io/revision":$sha},
		results:[{apiVersion:"argoproj.io/v1alpha1", kind:"Workflow", namespace:"ci",
			name:"build-x7k2p", uid:"u1", action:"created"}]}'
}

@test "a created Workflow: a pending status with its name and link, the envelope unchanged (personal token)" {
	github_start
	env_created >"$TMP/in"
	run --separate-stderr kwh-status --api-url "$GITHUB_URL" --ca-file "$GITHUB_CA" \
		--token-file "$GITHUB_DIR/token" \
		--target-url 'https://argo.example/workflows/{namespace}/{name}' <"$TMP/in"
	assert_success
	assert_equal "$(jq -S . <<<"$output")" "$(jq -S . "$TMP/in")"
	run github_state
	assert_equal "$(jq -c '.statuses | map({state, context, description, target_url, owner, repo, sha})' <<<"$output")" \
		'[{"state":"pending","context":"kwh","description":"Workflow build-x7k2p created","target_url":"https://argo.example/workflows/ci/build-x7k2p","owner":"octo","repo":"app","sha":"'$SHA'"}]'
	run github_requests
	assert_equal "$(jq -r '.[0].auth_kind' <<<"$output")" personal
	run github_check
	assert_success
}

@test "through a GitHub App: the JWT checked, one installation token for two deliveries" {
	github_start --installation 77
	{ env_created; env_created | jq -c '.delivery = "d-2"'; } >"$TMP/in"
	run --separate-stderr kwh-status --api-url "$GITHUB_URL" --ca-file "$GITHUB_CA" \
		--app-id "$GITHUB_APP_ID" --app-key-file "$GITHUB_DIR/app.pem" <"$TMP/in"
	assert_success
	run github_state
	assert_equal "$(jq '.tokens_issued' <<<"$output")" 1
	assert_equal "$(jq '.statuses | length' <<<"$output")" 2
	run github_requests
	assert_equal "$(jq -c 'map(.auth_kind)' <<<"$output")" '["jwt","installation","installation"]'
	run github_check
	assert_success
}

@test "an App key that is not the App's: the JWT refused, the envelope unchanged, the failure logged" {
	github_start
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$TMP/other.pem" 2>/dev/null
	env_created >"$TMP/in"
	run --separate-stderr kwh-status --api-url "$GITHUB_URL" --ca-file "$GITHUB_CA" \
		--app-id "$GITHUB_APP_ID" --app-key-file "$TMP/other.pem" <"$TMP/in"
	assert_success
	assert_equal "$(jq -S . <<<"$output")" "$(jq -S . "$TMP/in")"
	assert_log_has "GitHub answered 401: A JSON web token could not be decoded"
	run github_state
	assert_equal "$(jq '.tokens_issued, (.statuses | length)' <<<"$output" | tr '\n' ' ')" "0 0 "
}

@test "a refused delivery: a failure status with kwh's message; a check run with --check-run" {
	github_start
	env_created | jq -c 'del(.results) | .response = {status:422, message:"policy refuses kind Pod", stage:"kwh-apply"}' >"$TMP/in"
	run --separate-stderr kwh-status --api-url "$GITHUB_URL" --ca-file "$GITHUB_CA" \
		--token-file "$GITHUB_DIR/token" <"$TMP/in"
	assert_success
	run --separate-stderr kwh-status --api-url "$GITHUB_URL" --ca-file "$GITHUB_CA" \
		--token-file "$GITHUB_DIR/token" --check-run --context kwh/ci <"$TMP/in"
	assert_success
	run github_state
	assert_equal "$(jq -c '.statuses | map([.state, .description])' <<<"$output")" \
		'[["failure","kwh refused (422): policy refuses kind Pod"]]'
	assert_equal "$(jq -c '.check_runs | map([.name, .status, .conclusion, .output.title])' <<<"$output")" \
		'[["kwh/ci","completed","failure","kwh refused (422): policy refuses kind Pod"]]'
	run github_check
	assert_success
}

@test "a skipped delivery reports nothing, unless --report-skipped" {
	github_start
	env_created | jq -c 'del(.results) | .response = {status:202, message:"ref ignored", stage:"kwh-annotate"}' >"$TMP/in"
	run kwh-status --api-url "$GITHUB_URL" --ca-file "$GITHUB_CA" --token-file "$GITHUB_DIR/token" <"$TMP/in"
	assert_success
	run github_state
	assert_equal "$(jq '.statuses | length' <<<"$output")" 0
	run kwh-status --api-url "$GITHUB_URL" --ca-file "$GITHUB_CA" --token-file "$GITHUB_DIR/token" \
		--report-skipped <"$TMP/in"
	run github_state
	assert_equal "$(jq -c '.statuses | map(.state)' <<<"$output")" '["success"]'
}

@test "rate limits (403 and 429) and a 5xx are retried" {
	github_start
	github_fault '{"count":1,"status":403,"reset_in":1}'
	github_fault '{"count":1,"status":429,"retry_after":1,"kind":"secondary"}'
	github_fault '{"count":1,"status":502}'
	env_created >"$TMP/in"
	run --separate-stderr kwh-status --api-url "$GITHUB_URL" --ca-file "$GITHUB_CA" \
		--token-file "$GITHUB_DIR/token" --timeout 20 <"$TMP/in"
	assert_success
	assert_log_has "retry 3"
	run github_requests
	assert_equal "$(jq -c 'map(.status)' <<<"$output")" '[403,429,502,201]'
	run github_check
	assert_success
}

@test "an unreachable API: logged, the envelope unchanged, exit 0" {
	env_created >"$TMP/in"
	port=$(free_port)
	echo tok >"$TMP/token"
	run --separate-stderr kwh-status --api-url "http://127.0.0.1:$port" \
		--token-file "$TMP/token" --timeout 1 <"$TMP/in"
	assert_success
	assert_equal "$(jq -S . <<<"$output")" "$(jq -S . "$TMP/in")"
	assert_log_has "cannot report pending on octo/app@0123456789ab: cannot reach GitHub"
}

@test "GITHUB_TOKEN used, and the token never in the log nor in what the server recorded" {
	github_start
	github_fault '{"count":1,"status":500}'
	env_created >"$TMP/in"
	GITHUB_TOKEN=$GITHUB_TEST_TOKEN run --separate-stderr kwh-status --api-url "$GITHUB_URL" \
		--ca-file "$GITHUB_CA" --log "$TMP/log" <"$TMP/in"
	assert_success
	run github_state
	assert_equal "$(jq '.statuses | length' <<<"$output")" 1
	run ! grep -rF "$GITHUB_TEST_TOKEN" "$TMP/log" <(github_requests)
	grep -q "retry 1" "$TMP/log"
}

@test "standalone: an exit handler reports the Workflow's end" {
	github_start
	run --separate-stderr kwh-status --api-url "$GITHUB_URL" --ca-file "$GITHUB_CA" \
		--token-file "$GITHUB_DIR/token" --state success --repo octo/app --sha "$SHA" \
		--description "Workflow build-x7k2p Succeeded" --target-url https://argo.example/w/ci/build-x7k2p
	assert_success
	run github_state
	assert_equal "$(jq -c '.statuses | map([.state, .description, .target_url])' <<<"$output")" \
		'[["success","Workflow build-x7k2p Succeeded","https://argo.example/w/ci/build-x7k2p"]]'
	run -100 kwh-status --token-file "$GITHUB_DIR/token" --state done --repo octo/app --sha "$SHA"
}

@test "examples/workflows/status-exit-handler.yaml: its exit handler's script, as Argo fills it in, reports the end" {
	github_start
	# the block scalar of the report step, its {{...}} filled in as Argo would
	sed -n '/^      - |$/,/^      env:$/p' "$TOP_DIR/examples/workflows/status-exit-handler.yaml" |
		sed '1d;$d; s/^        //' |
		sed -e "s|{{workflow.status}}|Failed|g; s|{{workflow.name}}|ci-abc|g; s|{{workflow.namespace}}|ci|g" \
		    -e "s|{{workflow.annotations.k8s-webhook-handler.io/repo_name}}|octo/app|g" \
		    -e "s|{{workflow.annotations.k8s-webhook-handler.io/revision}}|$SHA|g" \
		    -e "s|exec kwh-status|exec kwh-status --api-url $GITHUB_URL --ca-file $GITHUB_CA|" >"$TMP/report.sh"
	grep -q 'kwh-status' "$TMP/report.sh"
	GITHUB_TOKEN=$GITHUB_TEST_TOKEN run sh "$TMP/report.sh"
	assert_success
	run github_state
	assert_equal "$(jq -c '.statuses | map([.state, .description, .target_url])' <<<"$output")" \
		'[["failure","Workflow ci-abc Failed","https://argo.example/workflows/ci/ci-abc"]]'
}
