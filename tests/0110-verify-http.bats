#!/usr/bin/env bats
# kwh-verify: the HTTP request — methods, bodies, limits, deadline.

load test_helper

setup() {
	setup_tmp
	secret_file secret s3cr3t-for-tests
}

PUSH=$BATS_TEST_DIRNAME/fixtures/github/push-payload.json

# req_with BODYFILE CONTENT-TYPE: a signed request for an arbitrary body.
req_with() {
	local sig
	sig=$(sig_of "$1" "$TMP/secret")
	printf 'POST /hook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: d1\r\nContent-Type: %s\r\nX-Hub-Signature-256: %s\r\nContent-Length: %d\r\n\r\n' \
		"$2" "$sig" "$(wc -c < "$1")"
	cat "$1"
}

@test "a chunked body passes and is decoded" {
	kwh-sign --secret-file "$TMP/secret" --chunked "$PUSH" > "$TMP/req"
	grep -q '^Transfer-Encoding: chunked' "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 200
	diff <(jq -S .payload "$TMP/env") <(jq -S . "$PUSH")
}

@test "a form body's payload field passes" {
	kwh-sign --secret-file "$TMP/secret" --form "$PUSH" > "$TMP/req"
	grep -q '^Content-Type: application/x-www-form-urlencoded' "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 200
	diff <(jq -S .payload "$TMP/env") <(jq -S . "$PUSH")
}

@test "a form body without payload= is 400" {
	printf 'foo=bar&x=%%7B%%7D' > "$TMP/body"
	req_with "$TMP/body" application/x-www-form-urlencoded > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 400
	assert_equal "$MESSAGE" "form body has no payload field"
}

@test "another content type is 415, a charset parameter is fine" {
	cp "$PUSH" "$TMP/body"
	req_with "$TMP/body" text/plain > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 415
	assert_equal "$MESSAGE" "content type text/plain is not supported: use application/json or application/x-www-form-urlencoded"
	req_with "$TMP/body" 'application/json; charset=utf-8' > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 200
}

@test "a body of 25 MiB passes, one byte more is 413" {
	# A JSON object of exactly 25 MiB.
	python3 -c 'import sys; n=25*1024*1024; sys.stdout.write("{\"a\":\"" + "x"*(n-8) + "\"}")' > "$TMP/big"
	[ "$(wc -c < "$TMP/big")" -eq $((25 * 1024 * 1024)) ]
	req_with "$TMP/big" application/json > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 200
	python3 -c 'import sys; n=25*1024*1024+1; sys.stdout.write("{\"a\":\"" + "x"*(n-8) + "\"}")' > "$TMP/big"
	req_with "$TMP/big" application/json > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 413
	assert_equal "$MESSAGE" "request body of 26214401 bytes is larger than the limit of 26214400 bytes"
}

@test "a chunked body over the limit is 413" {
	head -c 5000 /dev/zero | tr '\0' ' ' > "$TMP/body"
	printf '{}' >> "$TMP/body"
	kwh-sign --secret-file "$TMP/secret" --chunked "$TMP/body" > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret" --max-body 4k
	assert_equal "$STATUS" 413
	assert_equal "$MESSAGE" "request body is larger than the limit of 4096 bytes"
}

@test "a payload of 1,000,000 JSON values passes, one more is 413; --max-json-values changes it" {
	# {"a":[0,0,...]}: the object, the array and N-2 zeros are N values
	values() {
		python3 -c 'import sys; n=int(sys.argv[1]); sys.stdout.write("{\"a\":[" + ",".join(["0"]*(n-2)) + "]}")' "$1"
	}
	values 1000000 > "$TMP/body"
	req_with "$TMP/body" application/json > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 200
	assert_equal "$VERIFY_RC" 0
	values 1000001 > "$TMP/body"
	req_with "$TMP/body" application/json > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 413
	assert_equal "$VERIFY_RC" 1
	assert_equal "$MESSAGE" "payload has more than 1000000 JSON values at byte 2000002 (the limit is --max-json-values)"
	# the envelope does not carry the payload
	run -0 jq -e 'has("payload") | not' "$TMP/env"
	# lowered, raised, or 0 for no bound
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret" --max-json-values 2000000
	assert_equal "$STATUS" 200
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret" --max-json-values 0
	assert_equal "$STATUS" 200
	req_with "$PUSH" application/json > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret" --max-json-values 10
	assert_equal "$STATUS" 413
	[[ "$MESSAGE" == "payload has more than 10 JSON values at byte "* ]]
}

@test "too many headers, or too large ones, are 431" {
	args=()
	for i in $(seq 1 101); do args+=(--header "X-Extra-$i: v"); done
	kwh-sign --secret-file "$TMP/secret" "${args[@]}" "$PUSH" > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 431
	assert_equal "$MESSAGE" "request has more than 100 headers"
	kwh-sign --secret-file "$TMP/secret" --header "X-Big: $(head -c 40000 /dev/zero | tr '\0' a)" "$PUSH" > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 431
	assert_equal "$MESSAGE" "request headers are larger than 32768 bytes"
}

@test "a slow client is cut off at the deadline with 408" {
	kwh-sign --secret-file "$TMP/secret" "$PUSH" > "$TMP/req"
	head -c 300 "$TMP/req" > "$TMP/part"
	{ cat "$TMP/part"; sleep 3; } | kwh-verify --secret-file "$TMP/secret" --timeout 0.3 > "$TMP/env" 2> "$TMP/log" || true
	kwh-respond < "$TMP/env" > "$TMP/resp"
	assert_equal "$(http_status "$TMP/resp")" 408
	assert_equal "$(http_body "$TMP/resp" | jq -r .message)" "request not received within 300 ms (300 bytes read)"
	grep -q 'status=408' "$TMP/log"
}

@test "GET is 405; GET /-/alive is 200" {
	printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 405
	assert_equal "$MESSAGE" "method GET is not allowed: webhooks are delivered with POST"
	printf 'GET /-/alive HTTP/1.1\r\nHost: x\r\n\r\n' > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 200
	assert_equal "$MESSAGE" alive
	assert_equal "$VERIFY_RC" 0
}

@test "empty stdin is 400" {
	: > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 400
	assert_equal "$MESSAGE" "empty request: the connection closed before any byte arrived"
	assert_equal "$VERIFY_RC" 1
}

@test "a truncated body or head is 400" {
	kwh-sign --secret-file "$TMP/secret" "$PUSH" > "$TMP/full"
	head -c -100 "$TMP/full" > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 400
	n=$(wc -c < "$PUSH")
	assert_equal "$MESSAGE" "request body truncated: got $((n - 100)) of $n bytes"
	head -c 100 "$TMP/full" > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 400
	assert_equal "$MESSAGE" "request truncated: the connection closed inside the headers"
}

@test "garbage instead of HTTP is 400" {
	printf '\x00\x01\x02 hello\r\n\r\n' > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 400
	[[ "$MESSAGE" == "malformed HTTP request: "* ]]
}

@test "bodies that are not a JSON object are 400" {
	while IFS='|' read -r body want; do
		printf '%s' "$body" > "$TMP/body"
		req_with "$TMP/body" application/json > "$TMP/req"
		verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
		assert_equal "$STATUS" 400
		assert_equal "$MESSAGE" "$want"
	done <<-'EOT'
	{"a":1|body is not valid JSON: unexpected end of input at byte 6
	{"a":1}x|body is not valid JSON: trailing data after the JSON value at byte 7
	[1,2]|body is JSON but not an object
	{"a":01}|body is not valid JSON: expected ',' or '}' at byte 6
	{'a':1}|body is not valid JSON: expected a string key at byte 1
	|body is not valid JSON: no JSON value at byte 0
	EOT
}

@test "invalid UTF-8 and deep nesting are 400" {
	printf '{"a":"\xff"}' > "$TMP/body"
	req_with "$TMP/body" application/json > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 400
	assert_equal "$MESSAGE" "body is not valid JSON: invalid UTF-8 at byte 6"
	python3 -c 'print("{\"a\":" + "["*300 + "]"*300 + "}")' > "$TMP/body"
	req_with "$TMP/body" application/json > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 400
	assert_equal "$MESSAGE" "body is not valid JSON: nesting too deep at byte 204"
}

@test "missing or malformed GitHub headers are 400, after the signature" {
	kwh-sign --secret-file "$TMP/secret" "$PUSH" | grep -v '^X-GitHub-Event' > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 400
	assert_equal "$MESSAGE" "X-GitHub-Event header is missing"
	kwh-sign --secret-file "$TMP/secret" --delivery '../etc' "$PUSH" > "$TMP/req"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 400
	assert_equal "$MESSAGE" "X-GitHub-Delivery must be 1 to 128 letters, digits, '-' or '_'"
}

@test "early failures still carry kwh, delivery and event" {
	printf 'GET / HTTP/1.1\r\nX-GitHub-Delivery: abc\r\nX-GitHub-Event: push\r\n\r\n' > "$TMP/req"
	run --separate-stderr kwh-verify --secret-file "$TMP/secret" < "$TMP/req"
	assert_failure 1
	echo "$output" | jq -e '.kwh == 1 and .delivery == "abc" and .event == "push" and .response.status == 405'
	[[ "$stderr" == *"delivery=abc status=405"* ]]
}

@test "the request ends where its body ends: nothing more is read" {
	kwh-sign --secret-file "$TMP/secret" "$PUSH" > "$TMP/req"
	# A client that keeps the connection open waiting for the answer.
	{ cat "$TMP/req"; sleep 5; } | timeout 4 kwh-verify --secret-file "$TMP/secret" > "$TMP/env"
	jq -e '.verified == "sha256"' "$TMP/env"
}
