#!/usr/bin/env bats
# kwh-respond --spool DIR: a verified delivery that failed with a 5xx is
# written whole to DIR/<delivery>-<digest>.json (DIR/<delivery>.json
# for an envelope without a digest) before the response, which says so;
# nothing else is spooled, and a failed spool write is never silent.

load test_helper

setup() {
	setup_tmp
	mkdir "$TMP/spool"
}

# respond_spool ENVELOPE-TEXT [SPOOL-DIR]: kwh-respond --spool into
# $TMP/resp and $TMP/log; sets RC, STATUS and BODY.
respond_spool() {
	printf '%s\n' "$1" >"$TMP/env"
	kwh-respond --spool "${2:-$TMP/spool}" <"$TMP/env" >"$TMP/resp" 2>"$TMP/log" && RC=0 || RC=$?
	STATUS=$(http_status "$TMP/resp")
	BODY=$(http_body "$TMP/resp")
}

# The envelope of a push that kwh-apply could not create: 503.
apply_503() {
	jq -c --arg d "${1:-d-503}" '{kwh: 1, delivery: $d, event: "push",
		headers: {"x-github-event": "push"}, verified: "sha256",
		deadline: 1795680000000, payload: .,
		annotations: {"k8s-webhook-handler.io/ref": .ref},
		manifests: [{apiVersion: "argoproj.io/v1alpha1", kind: "Workflow", metadata: {generateName: "ci-"}}],
		source: {url: "file:///repo", revision: .after, path: ".ci/workflow.yaml"},
		response: {status: 503, message: "cannot reach the API server at https://127.0.0.1:1 after 4 attempts"}}' \
		"$FIXTURES/github/push-payload.json"
}

@test "a verified 503 from kwh-apply is written whole, and the response says so" {
	env=$(apply_503 d-503)
	before=$(date +%s%3N)
	respond_spool "$env"
	after=$(date +%s%3N)
	assert_equal "$RC" 0
	assert_equal "$STATUS" 503
	echo "$BODY" | jq -e '.message == "cannot reach the API server at https://127.0.0.1:1 after 4 attempts; delivery spooled for replay"
		and .spooled == true and .delivery == "d-503"'
	# the file is the envelope without its response, plus the spool key
	[ -f "$TMP/spool/d-503.json" ]
	jq -e --argjson env "$env" 'del(.spool) == ($env | del(.response))' "$TMP/spool/d-503.json"
	jq -e --argjson b "$before" --argjson a "$after" '.spool | del(.time) == {stage: "kwh-apply", status: 503,
		message: "cannot reach the API server at https://127.0.0.1:1 after 4 attempts", attempts: 0}
		and .time >= $b and .time <= $a' "$TMP/spool/d-503.json"
	# one JSON text, one line, private, no temporary file left
	[ "$(wc -l <"$TMP/spool/d-503.json")" -eq 1 ]
	[ "$(stat -c %a "$TMP/spool/d-503.json")" = 600 ]
	[ "$(ls -A "$TMP/spool")" = d-503.json ]
	grep -q 'prog=kwh-respond level=info delivery=d-503 status=503 msg=".*spooled' "$TMP/log"
}

@test "the stage is response.stage when a stage recorded it, else inferred from the keys" {
	respond_spool '{"kwh":1,"delivery":"s1","verified":"sha256","payload":{},"response":{"status":503,"message":"m"}}'
	jq -e '.spool.stage == "kwh-annotate"' "$TMP/spool/s1.json"
	respond_spool '{"kwh":1,"delivery":"s2","verified":"sha256","annotations":{},"response":{"status":502,"message":"remote down"}}'
	jq -e '.spool.stage == "kwh-fetch" and .spool.status == 502 and .spool.message == "remote down"' "$TMP/spool/s2.json"
	respond_spool '{"kwh":1,"delivery":"s3","verified":"sha256","annotations":{},"manifests":[],"response":{"status":504,"message":"deadline"}}'
	jq -e '.spool.stage == "kwh-apply" and .spool.status == 504' "$TMP/spool/s3.json"
	respond_spool '{"kwh":1,"delivery":"s4","verified":"sha256","response":{"status":503,"message":"m","stage":"my-step"}}'
	jq -e '.spool.stage == "my-step" and (has("response") | not)' "$TMP/spool/s4.json"
}

@test "every 5xx is spooled, 500 included" {
	for st in 500 502 503 504 599; do
		respond_spool "{\"kwh\":1,\"delivery\":\"st-$st\",\"verified\":\"sha256\",\"response\":{\"status\":$st,\"message\":\"m\"}}"
		assert_equal "$STATUS" "$st"
		jq -e --argjson st "$st" '.spool.status == $st' "$TMP/spool/st-$st.json"
		echo "$BODY" | jq -e '.spooled == true and (.message | endswith("; delivery spooled for replay"))'
	done
}

@test "a 4xx is not spooled: it would not pass on a retry" {
	for st in 400 401 404 422 499; do
		respond_spool "{\"kwh\":1,\"delivery\":\"st-$st\",\"verified\":\"sha256\",\"response\":{\"status\":$st,\"message\":\"m\"}}"
		assert_equal "$STATUS" "$st"
		echo "$BODY" | jq -e '.message == "m" and (has("spooled") | not)'
	done
	[ -z "$(ls -A "$TMP/spool")" ]
}

@test "a 2xx, or no response at all, is not spooled" {
	respond_spool '{"kwh":1,"delivery":"ok1","verified":"sha256","response":{"status":202,"message":"ignored ref"}}'
	assert_equal "$STATUS" 202
	respond_spool '{"kwh":1,"delivery":"ok2","verified":"sha256","results":[{"action":"created"}]}'
	assert_equal "$STATUS" 201
	echo "$BODY" | jq -e 'has("spooled") | not'
	[ -z "$(ls -A "$TMP/spool")" ]
}

@test "an unverified envelope is not spooled, even with a 5xx" {
	respond_spool '{"kwh":1,"delivery":"u1","response":{"status":503,"message":"down"}}'
	assert_equal "$STATUS" 503
	echo "$BODY" | jq -e '.message == "down" and (has("spooled") | not)'
	respond_spool '{"kwh":1,"delivery":"u2","verified":"","response":{"status":503,"message":"down"}}'
	assert_equal "$STATUS" 503
	echo "$BODY" | jq -e 'has("spooled") | not'
	respond_spool '{"kwh":1,"delivery":"u3","verified":null,"response":{"status":503,"message":"down"}}'
	assert_equal "$STATUS" 503
	echo "$BODY" | jq -e 'has("spooled") | not'
	# nor kwh-respond's own 500s (empty input, not JSON): each answer checked
	kwh-respond --spool "$TMP/spool" </dev/null >"$TMP/resp" 2>"$TMP/log" && RC=0 || RC=$?
	STATUS=$(http_status "$TMP/resp") BODY=$(http_body "$TMP/resp")
	assert_equal "$STATUS" 500
	echo "$BODY" | jq -e '(.message | startswith("no envelope")) and (has("spooled") | not)'
	respond_spool 'not json'
	assert_equal "$STATUS" 500
	echo "$BODY" | jq -e '(.message | test("not JSON")) and (has("spooled") | not)'
	[ -z "$(ls -A "$TMP/spool")" ]
}

@test "a spool directory that does not exist: the response and the log say the delivery was not spooled" {
	respond_spool "$(apply_503 d-lost)" "$TMP/nowhere"
	assert_equal "$RC" 111
	assert_equal "$STATUS" 503
	echo "$BODY" | jq -e --arg dir "$TMP/nowhere" '.spooled == false and
		(.message | startswith("cannot reach the API server") and contains("; delivery NOT spooled: cannot create a file in '"'"'\($dir)'"'"': No such file or directory"))'
	grep -q "prog=kwh-respond level=error delivery=d-lost status=503 msg=\"delivery NOT spooled: cannot create a file in '$TMP/nowhere'" "$TMP/log"
}

@test "a spool path that is a file, or a directory we cannot write: not spooled, said so" {
	: >"$TMP/file"
	respond_spool "$(apply_503 d-file)" "$TMP/file"
	assert_equal "$RC" 111
	echo "$BODY" | jq -e '.spooled == false and (.message | contains("NOT spooled") and contains("Not a directory"))'
	grep -q 'level=error delivery=d-file .*NOT spooled' "$TMP/log"
	if [ "$(id -u)" -ne 0 ]; then
		mkdir "$TMP/ro" && chmod 555 "$TMP/ro"
		respond_spool "$(apply_503 d-ro)" "$TMP/ro"
		assert_equal "$RC" 111
		echo "$BODY" | jq -e '.spooled == false and (.message | contains("Permission denied"))'
		[ -z "$(ls -A "$TMP/ro")" ]
	fi
}

@test "a delivery id that is not a plain name is not spooled, and nothing is written outside the spool" {
	respond_spool '{"kwh":1,"delivery":"../escape","verified":"sha256","response":{"status":503,"message":"down"}}'
	assert_equal "$RC" 111
	echo "$BODY" | jq -e '.spooled == false and (.message | contains("NOT spooled: the delivery id is not usable as a file name"))'
	[ ! -e "$TMP/escape.json" ]
	respond_spool '{"kwh":1,"verified":"sha256","response":{"status":503,"message":"down"}}'
	assert_equal "$RC" 111
	[ -z "$(ls -A "$TMP/spool")" ]
}

@test "several envelopes in one stream: each answered, only the 5xx ones spooled" {
	{
		apply_503 m1
		echo '{"kwh":1,"delivery":"m2","verified":"sha256","response":{"status":422,"message":"bad"}}'
		apply_503 m3
	} >"$TMP/stream"
	kwh-respond --spool "$TMP/spool" <"$TMP/stream" >"$TMP/resp" 2>"$TMP/log"
	[ "$(grep -c '^HTTP/1.1 ' "$TMP/resp")" -eq 3 ]
	[ "$(grep -c 'delivery spooled for replay' "$TMP/resp")" -eq 2 ]
	[ "$(ls "$TMP/spool" | tr '\n' ' ')" = "m1.json m3.json " ]
}

@test "a redelivery of the same id replaces the file, whole" {
	respond_spool "$(apply_503 same)"
	respond_spool "$(apply_503 same | jq -c '.response.message = "second" | .extra = 1')"
	jq -e '.extra == 1 and .spool.message == "second"' "$TMP/spool/same.json"
	[ "$(ls -A "$TMP/spool")" = same.json ]
}

@test "without --spool nothing is written and the body has no spooled key" {
	cd "$TMP/spool"
	apply_503 | kwh-respond >"$TMP/resp" 2>/dev/null
	http_body "$TMP/resp" | jq -e '(has("spooled") | not) and (.message | contains("spooled") | not)'
	[ -z "$(ls -A "$TMP/spool")" ]
}

@test "real stages: a signed push whose git remote is down is spooled at kwh-fetch with 502" {
	secret_file secret spool-secret
	port=$(free_port)
	jq --arg url "http://127.0.0.1:$port/repo.git" \
		'.after = "0123456789abcdef0123456789abcdef01234567" | .ref = "refs/heads/main" |
		 .repository.clone_url = $url | .repository.git_url = $url' \
		"$FIXTURES/github/push-payload.json" >"$TMP/push.json"
	run --separate-stderr bash -c '
		kwh-sign --event push --delivery real-1 --secret-file "$TMP/secret" "$TMP/push.json" |
		kwh-verify --secret-file "$TMP/secret" --log none |
		kwh-annotate --log none |
		kwh-fetch --cache "$TMP/git-cache" --allow-remote-host http://127.0.0.1 --log none |
		kwh-respond --spool "$TMP/spool" --log none'
	assert_success
	assert_line --index 0 --regexp '^HTTP/1.1 502'
	assert_output --partial '; delivery spooled for replay'
	jq -e --slurpfile p "$TMP/push.json" '.delivery == "real-1" and .verified == "sha256" and
		.payload == $p[0] and (.annotations | type) == "object" and
		.spool.stage == "kwh-fetch" and .spool.status == 502' "$TMP/spool"/real-1-*.json
	# named by the delivery and the digest kwh-verify set, one file
	d=$({ printf 'push\n\n'; cat "$TMP/push.json"; } | sha256sum | cut -c1-16)
	[ "$(ls -A "$TMP/spool")" = "real-1-$d.json" ]
}
