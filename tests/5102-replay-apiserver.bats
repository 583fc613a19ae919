#!/usr/bin/env bats
# Nothing lost, end to end with the real stages and the test API server:
# deliveries that fail while a dependency is down are spooled by
# kwh-respond --spool, and kwh-replay creates each Workflow exactly once
# when it is back.

load test_helper

setup() {
	[ -x "$KWH_BIN/kwh-apply" ] || skip "no kwh-apply in $KWH_BIN"
	setup_tmp
	export HOME=$TMP
	mkdir "$TMP/spool"
	ci_repo "$TMP/repo"
	printf 'replay-secret\n' >"$TMP/secret"
	ci_push "file://$TMP/repo" >"$TMP/push.json"
	apiserver_start
	cp "$APISERVER_DIR/kubeconfig" "$TMP/kubeconfig"
}

teardown() {
	apiserver_stop
}

# deliver ID [APPLY OPTIONS...]: the whole handler chain for a signed push
# with delivery ID, kwh-respond --spool; the response in $TMP/resp.ID.
# Each ID is its own push (the payload names it, as GitHub's differ from
# push to push): the same ID again is a redelivery, the same request.
deliver() {
	local id=$1; shift
	jq -c --arg id "$id" '.kwh_test_push = $id' "$TMP/push.json" >"$TMP/push.$id.json"
	kwh-sign --event push --delivery "$id" --secret-file "$TMP/secret" "$TMP/push.$id.json" |
		kwh-verify --secret-file "$TMP/secret" --log none |
		kwh-annotate --log none |
		kwh-fetch --cache "$TMP/git-cache" --allow-remote-host file:// --log none |
		kwh-apply --kubeconfig "$TMP/kubeconfig" --cache "$TMP/kcache" --log none "$@" |
		kwh-respond --spool "$TMP/spool" --log "$TMP/respond.log" >"$TMP/resp.$id"
}

CHAIN='kwh-annotate --log none | kwh-fetch --cache "$TMP/git-cache" --allow-remote-host file:// --log none | kwh-apply --kubeconfig "$TMP/kubeconfig" --cache "$TMP/kcache" --log none'

@test "API server killed: every delivery is spooled with 503; restarted, one replay creates each Workflow once" {
	deliver before-1
	assert_equal "$(http_status "$TMP/resp.before-1")" 201
	port=$APISERVER_PORT
	old=$APISERVER_DIR
	apiserver_stop
	# five deliveries at once, each giving up after its 1 s deadline
	for i in 1 2 3 4 5; do deliver "down-$i" --deadline 1 & done
	wait
	for i in 1 2 3 4 5; do
		assert_equal "$(http_status "$TMP/resp.down-$i")" 503
		http_body "$TMP/resp.down-$i" | jq -e '.spooled == true and (.message | endswith("; delivery spooled for replay"))'
	done
	[ "$(ls "$TMP/spool" | wc -l)" -eq 5 ]
	cat "$TMP/spool"/*.json | jq -se 'all(.spool.stage == "kwh-apply" and .spool.status == 503 and
		.verified == "sha256" and (.manifests | length) == 1)'
	# back at the same address, accepting the same token; its store is empty
	apiserver_start --port "$port" --token-file "$old/token"
	run --separate-stderr kwh-replay --spool "$TMP/spool" "$CHAIN"
	assert_success
	[ "$(echo "$output" | jq -s 'length')" -eq 5 ]
	[ -z "$(ls -A "$TMP/spool")" ]
	apiserver_objects | jq -e --arg rev "$REV" 'length == 5 and all(.kind == "Workflow" and
		.metadata.annotations."k8s-webhook-handler.io/revision" == $rev) and
		([.[].metadata.name] | unique | length) == 5'
	# replaying again, and redelivering one of them, creates nothing more
	run --separate-stderr kwh-replay --spool "$TMP/spool" "$CHAIN"
	assert_success
	assert_output ''
	deliver down-3
	assert_equal "$(http_status "$TMP/resp.down-3")" 200
	[ "$(apiserver_objects | jq length)" -eq 5 ]
	# the restarted server answered 201 (created) exactly five times
	apiserver_requests | jq -e '[.[] | select(.status == 201)] | length == 5'
}

@test "a create that reached the server but whose answer was lost is found on replay, not made twice" {
	# the answer comes after kwh-apply gave up: the object exists, the delivery is spooled
	apiserver_fault '{"count":1,"delay":2.5,"method":"POST"}'
	deliver lost-answer --deadline 1
	status=$(http_status "$TMP/resp.lost-answer")
	[[ "$status" == 5* ]]
	http_body "$TMP/resp.lost-answer" | jq -e '.spooled == true'
	jq -e '.spool.stage == "kwh-apply"' "$(spool_file "$TMP/spool" lost-answer)"
	n=0
	until [ "$(apiserver_objects | jq length)" -ge 1 ]; do
		n=$((n + 1)); [ "$n" -lt 100 ] || false; sleep 0.05
	done
	run --separate-stderr kwh-replay --spool "$TMP/spool" "$CHAIN"
	assert_success
	# found by its dedupe name (kwh-apply wrote the named object into the
	# envelope before giving up: it is applied, not created again)
	name=$(apiserver_objects | jq -r '.[0].metadata.name')
	echo "$output" | jq -e --arg n "$name" '.results | length == 1 and .[0].name == $n and
		(.[0].action == "exists" or .[0].action == "unchanged")'
	[ -z "$(ls -A "$TMP/spool")" ]
	[ "$(apiserver_objects | jq length)" -eq 1 ]
	apiserver_requests | jq -e '[.[] | select(.status == 201)] | length == 1'
}

@test "a git remote that was down: spooled at kwh-fetch with 502, replayed from kwh-fetch once it is back" {
	mv "$TMP/repo" "$TMP/repo.away"
	deliver git-down
	assert_equal "$(http_status "$TMP/resp.git-down")" 502
	jq -e '.spool.stage == "kwh-fetch" and .spool.status == 502 and (.annotations | length) >= 8' \
		"$(spool_file "$TMP/spool" git-down)"
	# still down: kept, attempts counted
	run --separate-stderr kwh-replay --spool "$TMP/spool" "$CHAIN"
	assert_failure 1
	jq -e '.spool.attempts == 1 and .spool.last.status == 502' "$(spool_file "$TMP/spool" git-down)"
	mv "$TMP/repo.away" "$TMP/repo"
	run --separate-stderr kwh-replay --spool "$TMP/spool" "$CHAIN"
	assert_success
	[[ "$stderr" == *"replayed from kwh-fetch (attempt 2)"* ]]
	[ -z "$(ls -A "$TMP/spool")" ]
	apiserver_objects | jq -e --arg rev "$REV" 'length == 1 and
		.[0].metadata.annotations."k8s-webhook-handler.io/revision" == $rev'
}
