#!/usr/bin/env bats
# kwh-annotate: streams of envelopes, pass-through, the chain, and the
# promise that the default path compiles no jq program.
load test_helper
load fixtures/annotate/helper

GH=$FIXTURES/github

@test "a stream of several envelopes, each handled in order" {
	{
		envelope push "$GH/push-with-new-branch.json"
		envelope ping "$GH/ping-payload.json"
		envelope issues "$GH/pull_request-opened.json"
		envelope check_suite "$GH/check_suite-requested.json"
		envelope push "$GH/push-payload.json"
	} >"$BATS_TEST_TMPDIR/in.json"
	run --separate-stderr kwh-annotate --log none --ignore-ref '^refs/tags/' --set 'x.io/e=.event' <"$BATS_TEST_TMPDIR/in.json"
	assert_success
	[ "${#lines[@]}" -eq 5 ]
	[ "$(jq -r '[.event, (.response.status // "-"), (.annotations["k8s-webhook-handler.io/ref"] // "-"), (.annotations["x.io/e"] // "-")] | join(" ")' <<<"$output")" = "$(printf '%s\n' \
	    "push - refs/heads/master push" "ping 200 - -" "issues 202 - -" \
	    "check_suite - refs/heads/master check_suite" "push 202 - -")" ]
}

@test "a stream where one envelope fails: the others still pass, exit 1" {
	{
		envelope push "$GH/push-with-new-branch.json"
		envelope push "$(payload_with "$GH/push-payload.json" '.ref = 1')"
		envelope delete "$GH/delete-payload.json"
	} >"$BATS_TEST_TMPDIR/in.json"
	run --separate-stderr kwh-annotate --log none <"$BATS_TEST_TMPDIR/in.json"
	assert_failure 1
	[ "$(jq -r '(.response.status // "-") | tostring' <<<"$output" | tr '\n' ' ')" = "- 400 - " ]
}

@test "an envelope that already carries a response passes through untouched" {
	envelope push "$GH/push-with-new-branch.json" |
		jq -c '.response = {status: 401, message: "bad signature"} | .extra = [1, {"b": 2.50}]' >"$BATS_TEST_TMPDIR/in.json"
	run --separate-stderr kwh-annotate --log none --set 'a.io/x=error("not run")' <"$BATS_TEST_TMPDIR/in.json"
	assert_success
	[ "$(jq -S . <<<"$output")" = "$(jq -S . "$BATS_TEST_TMPDIR/in.json")" ]
}

@test "keys it does not know pass through" {
	envelope push "$GH/push-with-new-branch.json" | jq -c '.custom = {"k": [1, 2]}' >"$BATS_TEST_TMPDIR/in.json"
	run --separate-stderr kwh-annotate --log none <"$BATS_TEST_TMPDIR/in.json"
	assert_success
	[ "$(jq -S 'del(.annotations)' <<<"$output")" = "$(jq -S . "$BATS_TEST_TMPDIR/in.json")" ]
}

# chain EVENT FILE [kwh-annotate OPTION...]: signed request through the chain.
chain() {
	local ev=$1 file=$2
	shift 2
	WEBHOOK_SECRET=s kwh-sign --event "$ev" "$file" >"$BATS_TEST_TMPDIR/req"
	run bash -c 'WEBHOOK_SECRET=s kwh-verify --log none <"$1" | kwh-annotate --log none "${@:2}" | kwh-respond --log none' _ "$BATS_TEST_TMPDIR/req" "$@"
}

@test "chain: push gives 200" {
	chain push "$GH/push-with-new-branch.json"
	assert_success
	assert_line --index 0 --regexp '^HTTP/1.1 200 '
}

@test "chain: ping gives 200 pong" {
	chain ping "$GH/ping-payload.json"
	assert_success
	assert_line --index 0 --regexp '^HTTP/1.1 200 '
	assert_output --partial 'pong (hook 109948940)'
}

@test "chain: an ignored ref gives 202" {
	chain push "$GH/push-payload.json" --ignore-ref '^refs/tags/'
	assert_success
	assert_line --index 0 --regexp '^HTTP/1.1 202 '
	assert_output --partial 'ref refs/tags/simple-tag is ignored'
}

@test "chain: a bad signature stays 401 through kwh-annotate" {
	WEBHOOK_SECRET=other kwh-sign --event push "$GH/push-payload.json" >"$BATS_TEST_TMPDIR/req"
	run bash -c 'WEBHOOK_SECRET=s kwh-verify --log none <"$1" | kwh-annotate --log none | kwh-respond --log none' _ "$BATS_TEST_TMPDIR/req"
	assert_line --index 0 --regexp '^HTTP/1.1 401 '
}

@test "the library compiles no jq program without --filter or --set, one per expression otherwise" {
	envelope push "$GH/push-with-new-branch.json" >"$BATS_TEST_TMPDIR/in.json"
	envelope push "$GH/push-payload.json" >>"$BATS_TEST_TMPDIR/in.json"
	run --separate-stderr kwh-annotate-programs --events push --ignore-ref '^x' <"$BATS_TEST_TMPDIR/in.json"
	assert_success
	[ "$stderr" = "programs=0" ]
	[ "${#lines[@]}" -eq 2 ]
	run --separate-stderr kwh-annotate-programs --filter '.event == "push"' --set 'a.io/x=1' --set 'a.io/y=2' <"$BATS_TEST_TMPDIR/in.json"
	assert_success
	[ "$stderr" = "programs=3" ]
	[ "$(jq -r '.annotations["a.io/y"]' <<<"$output" | tr '\n' ' ')" = "2 2 " ]
}

@test "kwh-annotate itself never calls jq_init or jq_compile on the default path" {
	command -v readelf >/dev/null || skip "readelf is not installed"
	# Lazy binding shows each library function at its first call.
	readelf -d "$(command -v kwh-annotate)" | grep -Eq 'BIND_NOW|FLAGS.*NOW' && skip "built with -z now"
	envelope push "$GH/push-with-new-branch.json" >"$BATS_TEST_TMPDIR/in.json"
	LD_DEBUG=bindings LD_DEBUG_OUTPUT="$BATS_TEST_TMPDIR/ld" kwh-annotate --log none --filter 'true' <"$BATS_TEST_TMPDIR/in.json" >/dev/null
	grep -h "binding file [^ ]*kwh-annotate .*symbol \`jq_compile'" "$BATS_TEST_TMPDIR"/ld.* ||
		fail "the control run shows no jq_compile binding: this check cannot work here"
	rm -f "$BATS_TEST_TMPDIR"/ld.*
	LD_DEBUG=bindings LD_DEBUG_OUTPUT="$BATS_TEST_TMPDIR/ld" kwh-annotate --log none --ignore-ref '^refs/tags/' <"$BATS_TEST_TMPDIR/in.json" >"$BATS_TEST_TMPDIR/out.json"
	[ "$(jq -r '.annotations["k8s-webhook-handler.io/ref"]' "$BATS_TEST_TMPDIR/out.json")" = refs/heads/master ]
	run grep -h "binding file [^ ]*kwh-annotate .*symbol \`jq_\(init\|compile\)'" "$BATS_TEST_TMPDIR"/ld.*
	assert_failure
}
