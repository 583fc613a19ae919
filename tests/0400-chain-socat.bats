#!/usr/bin/env bats
# A real round trip: socat on 127.0.0.1 runs kwh-verify | kwh-respond per
# connection; curl posts signed deliveries.

load test_helper

setup() {
	setup_tmp
	secret_file secret s3cr3t-for-tests
	PORT=$(free_port)
	# -t 10: once the client half-closes, give the chain its whole budget.
	socat -t 10 TCP-LISTEN:"$PORT",bind=127.0.0.1,reuseaddr,fork \
		SYSTEM:"kwh-verify --secret-file '$TMP/secret' --log '$TMP/log' | kwh-respond --log '$TMP/log'" \
		2> "$TMP/socat.err" &
	SOCAT_PID=$!
	wait_port "$PORT"
}

teardown() {
	kill "$SOCAT_PID" 2>/dev/null || true
	wait "$SOCAT_PID" 2>/dev/null || true
}

# post FILE [curl args...]: a signed POST of FILE; sets CODE and BODY.
post() {
	local f=$1; shift
	local sig
	sig=$(sig_of "$f" "$TMP/secret")
	CODE=$(curl -sS --max-time 10 -o "$TMP/body" -w '%{http_code}' \
		-H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
		-H "X-GitHub-Delivery: rt-$RANDOM" -H "X-Hub-Signature-256: $sig" \
		--data-binary @"$f" "$@" "http://127.0.0.1:$PORT/")
	BODY=$(cat "$TMP/body")
}

@test "curl posts a signed fixture and gets 200" {
	post "$FIXTURES/github/push-payload.json"
	assert_equal "$CODE" 200
	echo "$BODY" | jq -e '.status == 200 and (.delivery | startswith("rt-"))'
	grep -q 'prog=kwh-verify level=info delivery=rt-' "$TMP/log"
}

@test "a wrong signature over the socket gets 401" {
	printf '{"zen":"x"}' > "$TMP/p"
	secret_file secret2 nope
	sig=$(sig_of "$TMP/p" "$TMP/secret2")
	CODE=$(curl -sS -o "$TMP/body" -w '%{http_code}' -H 'Content-Type: application/json' \
		-H 'X-GitHub-Event: ping' -H 'X-GitHub-Delivery: x1' -H "X-Hub-Signature-256: $sig" \
		--data-binary @"$TMP/p" "http://127.0.0.1:$PORT/")
	assert_equal "$CODE" 401
	jq -e '.message == "X-Hub-Signature-256 does not match the body under any configured secret"' "$TMP/body"
}

@test "GET /-/alive answers 200 over the socket" {
	CODE=$(curl -sS -o "$TMP/body" -w '%{http_code}' "http://127.0.0.1:$PORT/-/alive")
	assert_equal "$CODE" 200
	jq -e '.message == "alive"' "$TMP/body"
}

@test "Expect: 100-continue is answered on the socket" {
	python3 -c 'import json; print(json.dumps({"ref":"refs/heads/main","blob":"x"*2000000}))' > "$TMP/big"
	post "$TMP/big" -D "$TMP/heads" -H 'Expect: 100-continue' --expect100-timeout 30
	assert_equal "$CODE" 200
	# the headers as received: the interim 100, then the final answer
	run -0 grep -c '^HTTP/' "$TMP/heads"
	assert_output 2
	assert_equal "$(head -n 1 "$TMP/heads")" $'HTTP/1.1 100 Continue\r'
}

@test "kwh-sign's bytes sent with socat get the same answer" {
	kwh-sign --secret-file "$TMP/secret" "$FIXTURES/github/ping-payload.json" > "$TMP/req"
	socat -t 10 - TCP:127.0.0.1:"$PORT" < "$TMP/req" > "$TMP/resp"
	head -n 1 "$TMP/resp" | grep -q '^HTTP/1.1 200 OK'
}
