#!/usr/bin/env bats
# kwh-apply when the API server fails: retries, Retry-After, resets,
# deadlines, credentials refused, forbidden, unreachable.

load test_helper
load "$FIXTURES/apply/apply"

setup() {
	setup_tmp
	export HOME=$TMP
	A=$FIXTURES/apply
	apiserver_start
	apply_envelope "$A/workflow.json" >"$TMP/in"
}

teardown() {
	apiserver_stop
}

@test "503 twice, then success: retried" {
	apiserver_fault '{"count":2,"status":503,"method":"POST"}'
	run --separate-stderr kwh_apply --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -e '.results[0].action == "created"'
	apiserver_requests | jq -e '[.[] | select(.method == "POST") | .status] == [503, 503, 201]'
}

@test "429 with Retry-After: waits as told, then succeeds" {
	apiserver_fault '{"count":1,"status":429,"retry_after":1,"method":"POST"}'
	start=$(date +%s%N)
	run --separate-stderr kwh_apply --log none <"$TMP/in"
	end=$(date +%s%N)
	assert_success
	apiserver_requests | jq -e '[.[] | select(.method == "POST") | .status] == [429, 201]'
	# the wait honoured Retry-After (a lower bound, not a timing target)
	[ $(( (end - start) / 1000000 )) -ge 1000 ]
}

@test "Retry-After beyond the deadline: 503 at once, saying what was tried" {
	apiserver_fault '{"count":5,"status":429,"retry_after":30,"method":"POST"}'
	run --separate-stderr kwh_apply --deadline 3 --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 503'
	echo "$output" | jq -r .response.message | grep -F '429'
	echo "$output" | jq -r .response.message | grep -F 'created 0 of 1'
}

@test "5xx until the deadline: 503 with what was tried" {
	apiserver_fault '{"count":100,"status":503}'
	run --separate-stderr kwh_apply --deadline 1 --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 503'
	echo "$output" | jq -r .response.message | grep -E 'attempts'
}

@test "a reset connection: GET retried; a POST already sent is not retried under --no-dedupe" {
	apiserver_fault '{"count":1,"reset":true,"method":"GET"}'
	run --separate-stderr kwh_apply --no-dedupe --log none <"$TMP/in"
	assert_success
	apiserver_fault '{"count":1,"reset":true,"method":"POST"}'
	run --separate-stderr kwh_apply --no-dedupe --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 503'
	echo "$output" | jq -r .response.message | grep -F -- '--no-dedupe'
	apiserver_requests | jq -e '[.[] | select(.method == "POST")] | length == 2'
}

@test "a reset connection under --dedupe: the POST is repeated, harmlessly" {
	apiserver_fault '{"count":1,"reset":true,"method":"POST"}'
	run --separate-stderr kwh_apply --dedupe --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -e '.results[0].action == "created"'
	apiserver_objects | jq -e 'length == 1'
}

@test "the deadline runs out while the server is slow: 504" {
	apiserver_fault '{"count":1,"delay":3,"status":503,"method":"POST"}'
	run --separate-stderr kwh_apply --deadline 1 --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 504'
	echo "$output" | jq -r .response.message | grep -F 'deadline'
}

@test "the envelope's deadline is honoured when earlier than --deadline" {
	now=$(date +%s%3N)
	jq -c --argjson d $((now + 800)) '.deadline = $d' "$TMP/in" >"$TMP/in2"
	apiserver_fault '{"count":1,"delay":3,"status":503,"method":"POST"}'
	run --separate-stderr kwh_apply --deadline 20 --log none <"$TMP/in2"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 504'
	jq -c --argjson d $((now - 1000)) '.deadline = $d' "$TMP/in" >"$TMP/in3"
	run --separate-stderr kwh_apply --log none <"$TMP/in3"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 504'
}

@test "a wrong token: 502 naming the refusal, the token in no output" {
	write_kubeconfig "$TMP/kc" "    token: not-the-token-$RANDOM"
	run --separate-stderr env KUBECONFIG_FILE="$TMP/kc" bash -c '. "$FIXTURES/apply/apply.bash"; kwh_apply' <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 502'
	echo "$output" | jq -r .response.message | grep -F 'the API server refused our credentials (401 Unauthorized)'
	tok=$(sed -n 's/.*token: //p' "$TMP/kc")
	[[ $output != *"$tok"* && $stderr != *"$tok"* ]]
	[[ $output != *"$APISERVER_TOKEN"* && $stderr != *"$APISERVER_TOKEN"* ]]
}

@test "forbidden: 502 with the API's own message" {
	apiserver_control POST /_test/forbid '{"user":"system:serviceaccount:ci:kwh","verb":"create","namespace":"ci"}' >/dev/null
	run --separate-stderr kwh_apply --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 502'
	echo "$output" | jq -r .response.message | grep -F '(403 Forbidden): workflows.argoproj.io is forbidden: User "system:serviceaccount:ci:kwh" cannot create resource "workflows"'
}

@test "nothing listening: 503 after retries, within the deadline" {
	port=$(free_port)
	sed "s|$APISERVER_URL|https://127.0.0.1:$port|" "$APISERVER_DIR/kubeconfig" >"$TMP/kc"
	run --separate-stderr kwh-apply --kubeconfig "$TMP/kc" --cache "$TMP/cache" --deadline 1 --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 503'
	echo "$output" | jq -r .response.message | grep -F "127.0.0.1:$port"
}

@test "TLS is verified: a server certificate from another CA is refused (502), not retried" {
	sed "s|$APISERVER_CA|$APISERVER_DIR/other-ca.crt|" "$APISERVER_DIR/kubeconfig" >"$TMP/kc"
	run --separate-stderr kwh-apply --kubeconfig "$TMP/kc" --cache "$TMP/cache" --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 502'
	apiserver_objects | jq -e 'length == 0'
}

@test "the log names the retries with the delivery id, never the token" {
	apiserver_fault '{"count":1,"status":503,"method":"POST"}'
	run --separate-stderr kwh_apply --log "$TMP/log" <"$TMP/in"
	assert_success
	grep -F 'delivery=d-1' "$TMP/log" | grep -F 'retrying'
	run -1 grep -F "$APISERVER_TOKEN" "$TMP/log"
}

@test "a POST answered 500 is not repeated under --no-dedupe, and is by default" {
	apiserver_fault '{"count":1,"status":500,"method":"POST"}'
	run --separate-stderr kwh_apply --no-dedupe --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 503'
	apiserver_requests | jq -e '[.[] | select(.method == "POST")] | length == 1'
	apiserver_fault '{"count":1,"status":500,"method":"POST"}'
	run --separate-stderr kwh_apply --log none <"$TMP/in"
	assert_success
	apiserver_requests | jq -e '[.[] | select(.method == "POST") | .status] == [500, 500, 201]'
}

@test "a GET answered 500 (discovery) is retried" {
	apiserver_fault '{"count":2,"status":500,"method":"GET"}'
	run --separate-stderr kwh_apply --log none <"$TMP/in"
	assert_success
	apiserver_requests | jq -e '[.[] | select(.method == "GET") | .status] == [500, 500, 200]'
}
