#!/usr/bin/env bats
# kwh-sign: a complete signed request, as GitHub sends one.

load test_helper

setup() {
	setup_tmp
	secret_file secret s3cr3t-for-tests
}

PING=$BATS_TEST_DIRNAME/fixtures/github/ping-payload.json

@test "the request carries every header GitHub sends" {
	kwh-sign --secret-file "$TMP/secret" --event ping --delivery 1234-abcd --host hooks.example "$PING" | tr -d '\r' > "$TMP/req"
	head -n 1 "$TMP/req" | grep -qx 'POST / HTTP/1.1'
	grep -qx 'X-GitHub-Event: ping' "$TMP/req"
	grep -qx 'X-GitHub-Delivery: 1234-abcd' "$TMP/req"
	grep -qx 'Host: hooks.example' "$TMP/req"
	grep -qx 'Content-Type: application/json' "$TMP/req"
	grep -qx "Content-Length: $(wc -c < "$PING")" "$TMP/req"
	# Both signatures, each checked here with openssl.
	want256=$(openssl dgst -sha256 -hmac s3cr3t-for-tests -r < "$PING" | cut -d' ' -f1)
	want1=$(openssl dgst -sha1 -hmac s3cr3t-for-tests -r < "$PING" | cut -d' ' -f1)
	grep -qx "X-Hub-Signature-256: sha256=$want256" "$TMP/req"
	grep -qx "X-Hub-Signature: sha1=$want1" "$TMP/req"
}

@test "a fresh UUID per request unless --delivery is given" {
	a=$(kwh-sign --secret-file "$TMP/secret" "$PING" | tr -d '\r' | sed -n 's/^X-GitHub-Delivery: //p')
	b=$(kwh-sign --secret-file "$TMP/secret" "$PING" | tr -d '\r' | sed -n 's/^X-GitHub-Delivery: //p')
	[[ "$a" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]]
	[ "$a" != "$b" ]
}

@test "the payload comes from stdin when no file is named" {
	kwh-sign --secret-file "$TMP/secret" --delivery x < "$PING" > "$TMP/a"
	kwh-sign --secret-file "$TMP/secret" --delivery x "$PING" > "$TMP/b"
	cmp "$TMP/a" "$TMP/b"
}

@test "--no-sha1 leaves the legacy header out; WEBHOOK_SECRET works" {
	WEBHOOK_SECRET=s3cr3t-for-tests kwh-sign --no-sha1 --delivery x "$PING" > "$TMP/a"
	run -1 grep '^X-Hub-Signature:' "$TMP/a"
	grep -q '^X-Hub-Signature-256: sha256=' "$TMP/a"
	verify_and_respond "$TMP/a" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 200
}

@test "--form signs the form body, which kwh-verify reads back" {
	kwh-sign --secret-file "$TMP/secret" --form "$PING" > "$TMP/req"
	sed '1,/^\r$/d' "$TMP/req" > "$TMP/body"
	grep -q '^payload=%7B' "$TMP/body"
	want=$(openssl dgst -sha256 -hmac s3cr3t-for-tests -r < "$TMP/body" | cut -d' ' -f1)
	grep -q "^X-Hub-Signature-256: sha256=$want" "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 200
}

@test "no secret is a usage error; bad options are usage errors" {
	run -100 --separate-stderr kwh-sign "$PING"
	assert_equal "$stderr" "kwh-sign: fatal: no secret: give --secret-file FILE or WEBHOOK_SECRET"
	run -100 --separate-stderr kwh-sign --secret-file "$TMP/secret" --header 'no colon' "$PING"
	run -100 --separate-stderr kwh-sign --secret-file "$TMP/secret" --event 'a b' "$PING"
	run -111 --separate-stderr kwh-sign --secret-file "$TMP/secret" "$TMP/missing"
	assert_equal "$stderr" "kwh-sign: fatal: cannot read '$TMP/missing': No such file or directory"
}
