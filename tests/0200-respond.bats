#!/usr/bin/env bats
# kwh-respond: one well-formed HTTP/1.1 response per envelope, whatever comes.

load test_helper

setup() { setup_tmp; }

respond() { # ENVELOPE-TEXT
	printf '%s' "$1" > "$TMP/env"
	kwh-respond < "$TMP/env" > "$TMP/resp" 2> "$TMP/log" && RC=0 || RC=$?
	STATUS=$(http_status "$TMP/resp")
	BODY=$(http_body "$TMP/resp")
}

# check_framing FILE: status line, headers and Content-Length agree.
check_framing() {
	head -n 1 "$1" | grep -Eq $'^HTTP/1\\.1 [0-9]{3} [A-Za-z -]+\r$'
	grep -q $'^Content-Type: application/json\r$' "$1"
	grep -q $'^Connection: close\r$' "$1"
	len=$(sed -n 's/^Content-Length: \([0-9]*\)\r$/\1/p' "$1")
	[ "$len" -eq "$(http_body "$1" | wc -c)" ]
}

@test "status and message come from response" {
	respond '{"kwh":1,"delivery":"d1","response":{"status":404,"message":"no .ci/workflow.yaml at abc"}}'
	assert_equal "$STATUS" 404
	check_framing "$TMP/resp"
	head -n 1 "$TMP/resp" | grep -q $'^HTTP/1.1 404 Not Found\r$'
	echo "$BODY" | jq -e '. == {"status":404,"message":"no .ci/workflow.yaml at abc","delivery":"d1","results":[]}'
	assert_equal "$RC" 0
}

@test "results with a created object give 201, otherwise 200" {
	respond '{"kwh":1,"delivery":"d2","results":[{"kind":"Workflow","name":"ci-x","action":"created"},{"kind":"ConfigMap","name":"c","action":"unchanged"}]}'
	assert_equal "$STATUS" 201
	check_framing "$TMP/resp"
	echo "$BODY" | jq -e '.message == "2 objects: created 1, unchanged 1" and (.results|length) == 2 and .delivery == "d2"'
	for a in configured unchanged exists dry-run; do
		respond "{\"kwh\":1,\"results\":[{\"action\":\"$a\"}]}"
		assert_equal "$STATUS" 200
		echo "$BODY" | jq -e --arg a "$a" '.message == "1 object: \($a) 1"'
	done
}

@test "no results and no response is 200 ok" {
	respond '{"kwh":1,"delivery":"d3"}'
	assert_equal "$STATUS" 200
	echo "$BODY" | jq -e '.message == "ok"'
}

@test "empty input is 500 saying an earlier stage produced nothing" {
	respond ''
	assert_equal "$STATUS" 500
	check_framing "$TMP/resp"
	echo "$BODY" | jq -e '.message == "no envelope: an earlier stage produced nothing"'
	assert_equal "$RC" 1
	grep -q 'status=500' "$TMP/log"
}

@test "input that is not JSON, or not an object, is 500" {
	respond 'HTTP/1.1 200 OK'
	assert_equal "$STATUS" 500
	check_framing "$TMP/resp"
	echo "$BODY" | jq -e '.message | startswith("an earlier stage produced output that is not JSON: ")'
	respond '[1,2]'
	assert_equal "$STATUS" 500
	echo "$BODY" | jq -e '.message == "an earlier stage produced a JSON array, not an envelope object"'
}

@test "a response with a bad status is 500" {
	for r in '{"status":"404"}' '{"status":99}' '{"status":1000}' '"oops"' '{"message":"x"}'; do
		respond "{\"kwh\":1,\"response\":$r}"
		assert_equal "$STATUS" 500
		check_framing "$TMP/resp"
	done
}

@test "one response per envelope, nothing else on stdout" {
	respond '{"kwh":1,"delivery":"a","response":{"status":202,"message":"skipped"}} {"kwh":1,"delivery":"b"}'
	assert_equal "$(grep -c '^HTTP/1.1 ' "$TMP/resp")" 2
	assert_equal "$(grep -c '^HTTP/1.1 202 Accepted' "$TMP/resp")" 1
	assert_equal "$(grep -c '^HTTP/1.1 200 OK' "$TMP/resp")" 1
}

@test "truncated JSON after a good envelope still gives a response for each" {
	respond '{"kwh":1,"delivery":"a"} {"kwh":1,"deliv'
	assert_equal "$(grep -c '^HTTP/1.1 200 OK' "$TMP/resp")" 1
	assert_equal "$(grep -c '^HTTP/1.1 500 ' "$TMP/resp")" 1
	assert_equal "$RC" 1
}
