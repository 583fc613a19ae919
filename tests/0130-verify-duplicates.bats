#!/usr/bin/env bats
# A header that says what the request is may be given once (issue 15,
# point 8): two X-Hub-Signature-256, X-GitHub-Delivery, X-GitHub-Event or
# Content-Type headers are 400, whichever of them is right, in kwh-verify
# and kwh-handle alike.

load test_helper

setup() {
	setup_tmp
	secret_file secret s3cr3t-for-tests
	PUSH=$FIXTURES/github/push-payload.json
	kwh-sign --secret-file "$TMP/secret" --event push --delivery d-dup "$PUSH" >"$TMP/good"
	SIG=$(sig_of "$PUSH" "$TMP/secret")
}

# with_extra LINE: the good request with one more header line after the first.
with_extra() {
	awk -v extra="$1" 'NR == 2 { printf "%s\r\n", extra } { print }' "$TMP/good" >"$TMP/req"
}

@test "the request itself passes (control)" {
	verify_and_respond "$TMP/good" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 200
}

@test "two X-Hub-Signature-256 headers are 400, the right one first or second" {
	for extra in "X-Hub-Signature-256: sha256=$(printf '0%.0s' $(seq 64))" "X-Hub-Signature-256: $SIG"; do
		with_extra "$extra"
		verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
		assert_equal "$STATUS" 400
		assert_equal "$VERIFY_RC" 1
		[[ $MESSAGE == *x-hub-signature-256*"more than once"* ]] || fail "message: $MESSAGE"
	done
}

@test "two X-GitHub-Delivery, X-GitHub-Event or Content-Type headers are 400" {
	for extra in "X-GitHub-Delivery: d-other" "X-GitHub-Event: ping" "Content-Type: application/json"; do
		with_extra "$extra"
		verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
		assert_equal "$STATUS" 400
		[[ $MESSAGE == *"more than once"* ]] || fail "message: $MESSAGE"
	done
}

@test "kwh-handle: a duplicated X-GitHub-Delivery is 400 and nothing runs" {
	with_extra "X-GitHub-Delivery: d-other"
	run --separate-stderr kwh-handle --secret-file "$TMP/secret" --dry-run=client --log none <"$TMP/req"
	[[ ${lines[0]} == "HTTP/1.1 400 "* ]] || fail "answer: ${lines[0]}"
	assert_output --partial "more than once"
}
