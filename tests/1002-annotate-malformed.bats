#!/usr/bin/env bats
# kwh-annotate: payloads that lack what their event needs (400) and
# annotations Kubernetes would refuse (422).
load test_helper
load fixtures/annotate/helper

GH=$FIXTURES/github

@test "no repository: 400 naming the field" {
	annotate push "$(payload_with "$GH/push-payload.json" 'del(.repository)')"
	assert_failure 1
	assert_response 400 "payload.repository is missing"
	[ "$(jq -r .delivery <<<"$output")" = d-push ]
}

@test "repository not an object: 400" {
	annotate check_suite "$(payload_with "$GH/check_suite-requested.json" '.repository = "x"')"
	assert_failure 1
	assert_response 400 "payload.repository is a string, not an object"
}

@test "ref that is a number: 400 naming payload.ref" {
	annotate push "$(payload_with "$GH/push-payload.json" '.ref = 42')"
	assert_failure 1
	assert_response 400 "payload.ref is a number, not a string"
}

@test "after that is an object: 400 naming payload.after" {
	annotate push "$(payload_with "$GH/push-payload.json" '.after = {}')"
	assert_failure 1
	assert_response 400 "payload.after is an object, not a string"
}

@test "repository.ssh_url that is an array: 400" {
	annotate delete "$(payload_with "$GH/delete-payload.json" '.repository.ssh_url = []')"
	assert_failure 1
	assert_response 400 "payload.repository.ssh_url is an array, not a string"
}

@test "check_run.check_suite that is a string: 400 naming it" {
	annotate check_run "$(payload_with "$GH/check_run-created.json" '.check_run.check_suite = "s"')"
	assert_failure 1
	assert_response 400 "payload.check_run.check_suite is a string, not an object"
}

@test "check_run.head_sha that is a boolean: 400" {
	annotate check_run "$(payload_with "$GH/check_run-created.json" '.check_run.head_sha = true')"
	assert_failure 1
	assert_response 400 "payload.check_run.head_sha is a boolean, not a string"
}

@test "delete with an unknown ref_type: 400" {
	annotate delete "$(payload_with "$GH/delete-payload.json" '.ref_type = "repository"')"
	assert_failure 1
	assert_response 400 "payload.ref_type is 'repository', not 'branch' or 'tag'"
}

@test "delete with a ref but no ref_type: 400" {
	annotate delete "$(payload_with "$GH/delete-payload.json" 'del(.ref_type)')"
	assert_failure 1
	assert_response 400 "payload.ref_type is missing, needed with payload.ref"
}

@test "pull_request number that is a string: 400" {
	annotate pull_request "$(payload_with "$GH/pull_request-opened.json" '.number = "2"')" --events pull_request
	assert_failure 1
	assert_response 400 "payload.number is a string, not a number"
}

@test "action that is a number: 400" {
	annotate check_suite "$(payload_with "$GH/check_suite-requested.json" '.action = 1')"
	assert_failure 1
	assert_response 400 "payload.action is a number, not a string"
}

@test "a payload that is not an object: 400" {
	echo '{"kwh":1,"delivery":"d","event":"push","payload":[1]}' >"$BATS_TEST_TMPDIR/e.json"
	run --separate-stderr kwh-annotate --log none <"$BATS_TEST_TMPDIR/e.json"
	assert_failure 1
	assert_response 400 "the payload is an array, not an object"
}

@test "an envelope without an event: 400" {
	echo '{"kwh":1,"delivery":"d","payload":{}}' >"$BATS_TEST_TMPDIR/e.json"
	run --separate-stderr kwh-annotate --log none <"$BATS_TEST_TMPDIR/e.json"
	assert_failure 1
	assert_response 400 "the envelope has no event name"
}

@test "input that is not JSON, and no input: 500 from the envelope reader" {
	run --separate-stderr kwh-annotate --log none <<<'not json'
	assert_failure 1
	assert_response 500
	run --separate-stderr kwh-annotate --log none </dev/null
	assert_failure 1
	assert_response 500
}

# A custom step before kwh-annotate may have put annotations in.
custom() {
	envelope push "$GH/push-with-new-branch.json" | jq -c "$1" >"$BATS_TEST_TMPDIR/in.json"
	shift
	run --separate-stderr kwh-annotate --log none "$@" <"$BATS_TEST_TMPDIR/in.json"
}

@test "existing annotations are kept for keys we do not set; ours win for the eight" {
	custom '.annotations = {"team.example.com/owner": "ci", "k8s-webhook-handler.io/ref": "mine"}'
	assert_success
	assert_ann team.example.com/owner ci
	assert_ann ref refs/heads/master
}

@test "invalid keys are 422 naming the key" {
	local key
	for key in 'bad key' '/name' 'a..b/name' 'Example_Com/name' '-a.io/name' 'a.io/-name' 'a.io/name-' 'a/b/c' \
	    "a.io/$(printf 'n%.0s' {1..64})" "$(printf 'a%.0s' {1..254})/name" ''; do
		custom ".annotations = {\"$key\": \"v\"}"
		assert_failure 1
		assert_response 422
		[[ $(jq -r .response.message <<<"$output") == "annotation key '$key' is invalid: "* ]] ||
			fail "key '$key': $(jq -r .response.message <<<"$output")"
	done
}

@test "valid keys as Kubernetes allows them" {
	local key
	for key in 'a' 'A_b.c-D' 'example.com/x' 'Example.COM/x' 'a-b.c/n.a_m-e' \
	    "a.io/$(printf 'n%.0s' {1..63})" "$(printf 'a%.0s' {1..63}).$(printf 'b%.0s' {1..63})/n"; do
		custom ".annotations = {\"$key\": \"v\"}"
		assert_success
		assert_no_response
		[ "$(jq -r --arg k "$key" '.annotations[$k]' <<<"$output")" = v ] || fail "key '$key' lost"
	done
}

@test "--set with a key that is valid only as a prefix fails at start-up" {
	annotate push "$GH/push-payload.json" --set 'a_b.io/x=1'
	assert_failure 100
	[[ $stderr == *"annotation key 'a_b.io/x' is invalid: the prefix"* ]]
}

@test "a value that is not a string: 422 naming the key" {
	custom '.annotations = {"a.io/n": 1}'
	assert_failure 1
	assert_response 422 "annotation 'a.io/n' is a number, not a string"
}

@test "annotations over 256 KiB together: 422 naming the key" {
	custom '.annotations = {"a.io/big": ("x" * 262000)}'
	assert_failure 1
	assert_response 422
	[[ $(jq -r .response.message <<<"$output") == *"larger than 262144 bytes"*"at key 'k8s-webhook-handler.io/"* ]]
	custom '.annotations = {"a.io/big": ("x" * 200000)}'
	assert_success
	assert_no_response
}

@test "a --set value that makes the total too large: 422" {
	annotate push "$GH/push-payload.json" --set 'a.io/big="x" * 300000'
	assert_failure 1
	assert_response 422
	[[ $(jq -r .response.message <<<"$output") == *"at key 'a.io/big'"* ]]
}
