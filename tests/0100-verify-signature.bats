#!/usr/bin/env bats
# kwh-verify: signatures, secrets, and the envelope it writes.

load test_helper

setup() {
	setup_tmp
	secret_file secret s3cr3t-for-tests
	secret_file other another-secret
}

# GitHub's documented test vector (docs: "Validating webhook deliveries").
GH_SECRET="It's a Secret to Everybody"
GH_SIG=sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17

raw_request() { # BODY SIG256
	printf 'POST / HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: d1\r\nContent-Type: application/json\r\nX-Hub-Signature-256: %s\r\nContent-Length: %d\r\n\r\n%s' \
		"$2" "${#1}" "$1"
}

@test "kwh-sign computes GitHub's documented test vector" {
	secret_file gh "$GH_SECRET"
	printf 'Hello, World!' > "$TMP/body"
	run sig_of "$TMP/body" "$TMP/gh"
	assert_success
	assert_output "$GH_SIG"
}

@test "the documented signature passes the MAC check; one digit changed gives 401" {
	secret_file gh "$GH_SECRET"
	raw_request 'Hello, World!' "$GH_SIG" > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/gh"
	# The MAC is checked before the body: a 400 about JSON means it passed.
	assert_equal "$STATUS" 400
	assert_equal "$MESSAGE" "body is not valid JSON: unexpected character at byte 0"
	raw_request 'Hello, World!' "${GH_SIG%7}8" > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/gh"
	assert_equal "$STATUS" 401
	assert_equal "$MESSAGE" "X-Hub-Signature-256 does not match the body under any configured secret"
	assert_equal "$VERIFY_RC" 1
}

@test "every fixture signed by kwh-sign passes, payload and headers intact" {
	for f in "$FIXTURES"/github/*.json; do
		kwh-sign --secret-file "$TMP/secret" --event push --delivery "d-$(basename "$f" .json)" "$f" > "$TMP/req"
		run --separate-stderr kwh-verify --secret-file "$TMP/secret" < "$TMP/req"
		assert_success
		echo "$output" > "$TMP/env"
		run jq -r '[.kwh, .delivery, .event, .verified, (.deadline|type)] | @tsv' "$TMP/env"
		assert_output "$(printf '1\td-%s\tpush\tsha256\tnumber' "$(basename "$f" .json)")"
		# The payload is the body, unchanged.
		diff <(jq -S .payload "$TMP/env") <(jq -S . "$f")
		verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
		assert_equal "$STATUS" 200
	done
}

@test "the payload bytes are copied as received" {
	f=$FIXTURES/github/push-payload.json
	kwh-sign --secret-file "$TMP/secret" "$f" > "$TMP/req"
	kwh-verify --secret-file "$TMP/secret" < "$TMP/req" > "$TMP/env"
	# Envelope text = prefix + the file's bytes + "}" + newline.
	head -c -2 "$TMP/env" | tail -c "$(wc -c < "$f")" | cmp - "$f"
}

@test "headers are lower-cased, signature headers kept" {
	kwh-sign --secret-file "$TMP/secret" --header 'X-Custom-Thing: Yes' "$FIXTURES/github/ping-payload.json" > "$TMP/req"
	kwh-verify --secret-file "$TMP/secret" < "$TMP/req" > "$TMP/env"
	run jq -r '.headers["x-custom-thing"], (.headers["x-hub-signature-256"]|startswith("sha256=")), (.headers["x-hub-signature"]|startswith("sha1=")), ([.headers|keys[]|select(test("[A-Z]"))]|length)' "$TMP/env"
	assert_output "$(printf 'Yes\ntrue\ntrue\n0')"
}

@test "deadline is receipt plus the budget" {
	kwh-sign --secret-file "$TMP/secret" "$FIXTURES/github/ping-payload.json" > "$TMP/req"
	before=$(date +%s%3N)
	kwh-verify --secret-file "$TMP/secret" < "$TMP/req" > "$TMP/env"
	kwh-verify --budget 2.5 --secret-file "$TMP/secret" < "$TMP/req" > "$TMP/env2"
	after=$(date +%s%3N)
	d=$(jq .deadline "$TMP/env")
	[ "$d" -ge $((before + 9000)) ] && [ "$d" -le $((after + 9000)) ]
	d=$(jq .deadline "$TMP/env2")
	[ "$d" -ge $((before + 2500)) ] && [ "$d" -le $((after + 2500)) ]
}

@test "a tampered body is refused with 401" {
	kwh-sign --secret-file "$TMP/secret" "$FIXTURES/github/push-payload.json" | sed 's/"ref": "refs\/tags\/simple-tag"/"ref": "refs\/tags\/simple-taG"/' > "$TMP/req"
	grep -q 'refs/tags/simple-taG' "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 401
	assert_equal "$MESSAGE" "X-Hub-Signature-256 does not match the body under any configured secret"
}

@test "a wrong secret is refused with 401 and the expected value is never shown" {
	kwh-sign --secret-file "$TMP/other" "$FIXTURES/github/push-payload.json" > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 401
	want=$(sig_of "$FIXTURES/github/push-payload.json" "$TMP/secret")
	# grep's 1: all three files read, and neither string in any of them
	run -1 grep -F "${want#sha256=}" "$TMP/resp" "$TMP/env" "$TMP/log"
	run -1 grep -F s3cr3t-for-tests "$TMP/resp" "$TMP/env" "$TMP/log"
}

@test "a missing signature header is named" {
	kwh-sign --secret-file "$TMP/secret" --no-sha1 "$FIXTURES/github/push-payload.json" | grep -v '^X-Hub-Signature-256' > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 401
	assert_equal "$MESSAGE" "X-Hub-Signature-256 header is missing"
}

@test "sha1 alone is refused unless --allow-sha1" {
	kwh-sign --secret-file "$TMP/secret" "$FIXTURES/github/push-payload.json" | grep -v '^X-Hub-Signature-256' > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 401
	assert_equal "$MESSAGE" "X-Hub-Signature-256 header is missing (the legacy sha1 X-Hub-Signature is accepted only with --allow-sha1)"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret" --allow-sha1
	assert_equal "$STATUS" 200
	assert_equal "$(jq -r .verified "$TMP/env")" sha1
	# A wrong sha1 is still refused, a malformed one too.
	kwh-sign --secret-file "$TMP/other" "$FIXTURES/github/push-payload.json" | grep -v '^X-Hub-Signature-256' > "$TMP/req2"
	verify_and_respond "$TMP/req2" --secret-file "$TMP/secret" --allow-sha1
	assert_equal "$STATUS" 401
	assert_equal "$MESSAGE" "X-Hub-Signature does not match the body under any configured secret"
	sed 's/^\(X-Hub-Signature: sha1=\)./\1z/' "$TMP/req" > "$TMP/req3"
	verify_and_respond "$TMP/req3" --secret-file "$TMP/secret" --allow-sha1
	assert_equal "$STATUS" 401
	assert_equal "$MESSAGE" "X-Hub-Signature is not of the form sha1=<40 hex digits>"
}

@test "with two secrets either one passes (rotation), and WEBHOOK_SECRET counts" {
	for s in secret other; do
		kwh-sign --secret-file "$TMP/$s" "$FIXTURES/github/push-payload.json" > "$TMP/req"
		verify_and_respond "$TMP/req" --secret-file "$TMP/secret" --secret-file "$TMP/other"
		assert_equal "$STATUS" 200
	done
	WEBHOOK_SECRET=another-secret verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 200
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 401
}

@test "the secret file's one trailing newline (LF or CRLF) is not part of the secret" {
	printf 's3cr3t-for-tests\r\n' > "$TMP/crlf"
	printf 's3cr3t-for-tests' > "$TMP/bare"
	printf 's3cr3t-for-tests\n\n' > "$TMP/two"
	kwh-sign --secret-file "$TMP/bare" "$FIXTURES/github/push-payload.json" > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/crlf"
	assert_equal "$STATUS" 200
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 200
	verify_and_respond "$TMP/req" --secret-file "$TMP/two"
	assert_equal "$STATUS" 401
}

@test "no secret at all refuses to start unless --insecure" {
	kwh-sign --secret-file "$TMP/secret" "$FIXTURES/github/push-payload.json" > "$TMP/req"
	run -100 --separate-stderr kwh-verify < "$TMP/req"
	assert_output ""
	[[ "$stderr" == *"no secret"* ]]
	verify_and_respond "$TMP/req" --insecure
	assert_equal "$STATUS" 200
	assert_equal "$(jq -r .verified "$TMP/env")" none
}

@test "an empty or unreadable secret file stops start-up naming the file" {
	: > "$TMP/empty"
	run -111 --separate-stderr kwh-verify --secret-file "$TMP/empty" < /dev/null
	assert_equal "$stderr" "kwh-verify: fatal: secret file '$TMP/empty' is empty"
	run -111 --separate-stderr kwh-verify --secret-file "$TMP/nope" < /dev/null
	assert_equal "$stderr" "kwh-verify: fatal: cannot read secret file '$TMP/nope': No such file or directory"
}

@test "secrets never appear in argv, stdout or logs" {
	kwh-sign --secret-file "$TMP/secret" "$FIXTURES/github/push-payload.json" > "$TMP/req"
	WEBHOOK_SECRET=env-secret-value kwh-verify --secret-file "$TMP/secret" --log "$TMP/logfile" < "$TMP/req" > "$TMP/env"
	run -1 grep -F -e s3cr3t-for-tests -e env-secret-value "$TMP/env" "$TMP/logfile"
	grep -q 'msg="verified sha256' "$TMP/logfile"
}
