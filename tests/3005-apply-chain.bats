#!/usr/bin/env bats
# The whole chain, kwh-sign | kwh-verify | kwh-annotate | kwh-fetch |
# kwh-apply | kwh-respond, creating a Workflow in the test API server from
# a local git repository.

load test_helper
load "$FIXTURES/apply/apply"

setup() {
	setup_tmp
	export HOME=$TMP
	apiserver_start
	ci_repo "$TMP/repo"
	printf 'chain-secret\n' >"$TMP/secret"
	ci_push "file://$TMP/repo" >"$TMP/push.json"
}

teardown() {
	apiserver_stop
}

chain() {
	bash -o pipefail -c '
		kwh-sign --event push --delivery chain-1 --secret-file "$TMP/secret" "$TMP/push.json" |
		kwh-verify --secret-file "$TMP/secret" --log none |
		kwh-annotate --log none |
		kwh-fetch --cache "$TMP/git-cache" --allow-remote-host file:// --log none |
		kwh-apply --kubeconfig "$APISERVER_DIR/kubeconfig" --cache "$TMP/kcache" --dedupe --log none |
		kwh-respond --log none'
}

@test "a signed push creates the Workflow, annotated, and the answer is 201; a redelivery 200" {
	run --separate-stderr chain
	assert_success
	assert_line --index 0 --regexp '^HTTP/1.1 201'
	apiserver_objects | jq -e --arg rev "$REV" 'length == 1 and .[0].kind == "Workflow" and
		.[0].metadata.namespace == "ci" and (.[0].metadata.name | startswith("ci-")) and
		.[0].metadata.annotations."k8s-webhook-handler.io/revision" == $rev and
		.[0].metadata.annotations."k8s-webhook-handler.io/event_type" == "push" and
		.[0].metadata.annotations.owner == "platform"'
	# the same delivery again (GitHub's redeliver): found, not created twice
	run --separate-stderr chain
	assert_success
	assert_line --index 0 --regexp '^HTTP/1.1 200'
	apiserver_objects | jq -e 'length == 1'
}
