#!/usr/bin/env bats
# kwh-handle against the chain: the same end-to-end cases through
# kwh-verify | kwh-annotate | kwh-fetch | kwh-apply | kwh-respond and through
# kwh-handle, comparing the responses and the objects created in the test
# API server.

load test_helper

setup() {
	setup_tmp
	handler_setup handle-secret
}

teardown() {
	[ -z "${SOCAT_PID:-}" ] || stop_pid "$SOCAT_PID"
	stop_git_servers
	apiserver_stop
}

# request FILE EVENT DELIVERY [SECRET]: a signed request to $TMP/req.
request() {
	kwh-sign --event "$2" --delivery "$3" --secret-file "$TMP/${4:-secret}" "$1" >"$TMP/req"
}

# body FILE: the response's JSON body minus the generated object names.
body() {
	http_body "$1" | jq -S 'del(.results[]?.name, .results[]?.uid)'
}

# run_chain: the request in $TMP/req through the five tools; the response
# to $TMP/chain.resp, the objects it created to $TMP/chain.objects.
run_chain() {
	local before
	before=$(uids)
	kwh-verify "${VOPTS[@]}" --log "$TMP/chain.log" <"$TMP/req" |
		kwh-annotate "${AOPTS[@]}" --log "$TMP/chain.log" |
		kwh-fetch "${FOPTS[@]}" --log "$TMP/chain.log" |
		kwh-apply "${POPTS[@]}" --log "$TMP/chain.log" |
		kwh-respond --log "$TMP/chain.log" "$@" >"$TMP/chain.resp" || true
	new_objects "$before" >"$TMP/chain.objects"
}

# run_handle [OPTIONS]: the same through kwh-handle; sets HANDLE_RC.
run_handle() {
	local before
	before=$(uids)
	kwh-handle "${VOPTS[@]}" "${AOPTS[@]}" "${FOPTS[@]}" "${POPTS[@]}" \
		--log "$TMP/handle.log" "$@" <"$TMP/req" >"$TMP/handle.resp" && HANDLE_RC=0 || HANDLE_RC=$?
	new_objects "$before" >"$TMP/handle.objects"
}

# logged FILE: the log lines without their time stamps, sorted.
logged() {
	sed 's/^ts=[^ ]* //; s/ci-[a-z0-9]\{5\} uid=[0-9a-f-]*/ci-NAME uid=UID/' "$1" | sort
}

# same STATUS: both gave STATUS, the same status line and body, and created
# the same objects.
same() {
	run_chain
	run_handle
	assert_equal "$(http_status "$TMP/chain.resp")" "$1"
	assert_equal "$(head -n 1 "$TMP/handle.resp")" "$(head -n 1 "$TMP/chain.resp")"
	diff <(body "$TMP/chain.resp") <(body "$TMP/handle.resp")
	diff "$TMP/chain.objects" "$TMP/handle.objects"
	# each stage logs under its own name, the same lines
	diff <(logged "$TMP/chain.log") <(logged "$TMP/handle.log")
	if [ "$1" -ge 400 ]; then assert_equal "$HANDLE_RC" 1; else assert_equal "$HANDLE_RC" 0; fi
}

@test "push from a file:// repository: 201, the same Workflow created by both" {
	request "$TMP/push.json" push d-push
	same 201
	jq -e --arg rev "$REV" 'length == 1 and .[0].kind == "Workflow" and
		.[0].metadata.namespace == "ci" and .[0].metadata.generateName == "ci-" and
		.[0].metadata.annotations."k8s-webhook-handler.io/revision" == $rev and
		.[0].metadata.annotations.owner == "platform"' "$TMP/handle.objects"
	http_body "$TMP/handle.resp" | jq -e '.status == 201 and .delivery == "d-push" and
		(.results | length == 1)'
	[ "$(apiserver_objects | jq length)" = 2 ]
}

@test "push through git daemon with --remote: 201 from both" {
	mkdir -p "$TMP/srv/octo"
	git_quiet clone -q --bare "$TMP/repo" "$TMP/srv/octo/repo.git"
	SRV=$TMP/srv start_git_daemon
	push_payload refs/heads/main "https://github.invalid/octo/repo.git" >"$TMP/p.json"
	request "$TMP/p.json" push d-daemon
	FOPTS+=(--remote "git://127.0.0.1:$GIT_DAEMON_PORT/{full_name}.git")
	same 201
	jq -e 'length == 1 and .[0].kind == "Workflow"' "$TMP/handle.objects"
	[ "$(upload_packs)" -ge 1 ]
}

@test "ping: 200, nothing created" {
	request "$FIXTURES/github/ping-payload.json" ping d-ping
	same 200
	jq -e 'length == 0' "$TMP/handle.objects"
}

@test "an ignored ref: 202" {
	request "$TMP/push.json" push d-ignored
	AOPTS=(--ignore-ref '^refs/heads/main$')
	same 202
	jq -e 'length == 0' "$TMP/handle.objects"
}

@test "a bad signature: 401, nothing created" {
	request "$TMP/push.json" push d-badsig other
	same 401
	jq -e 'length == 0' "$TMP/handle.objects"
	http_body "$TMP/handle.resp" | jq -e '.message | test("does not match")'
}

@test "a missing manifest: 404" {
	request "$TMP/push.json" push d-nomanifest
	FOPTS+=(--path .ci/nope.yaml)
	same 404
}

@test "a kind the policy refuses: 422, nothing created" {
	request "$TMP/push.json" push d-policy
	POPTS+=(--allow-kind /ConfigMap)
	same 422
	jq -e 'length == 0' "$TMP/handle.objects"
}

@test "the API server down (503): 503 from both, spooled alike" {
	request "$TMP/push.json" push d-down
	POPTS+=(--deadline 1.5)
	apiserver_fault '{"count":100000,"status":503}'
	mkdir "$TMP/spool-chain" "$TMP/spool-handle"
	run_chain --spool "$TMP/spool-chain"
	run_handle --spool "$TMP/spool-handle"
	assert_equal "$(http_status "$TMP/chain.resp")" 503
	assert_equal "$(head -n 1 "$TMP/handle.resp")" "$(head -n 1 "$TMP/chain.resp")"
	# the retry count in the message may differ: compare the rest
	diff <(body "$TMP/chain.resp" | jq 'del(.message)') <(body "$TMP/handle.resp" | jq 'del(.message)')
	http_body "$TMP/handle.resp" | jq -e '.message | endswith("; delivery spooled for replay")' ||
		{ cat "$TMP/handle.resp" "$TMP/chain.resp"; return 1; }
	assert_equal "$HANDLE_RC" 1
	# one file each, of one name (delivery and digest); the same content
	c=$(spool_file "$TMP/spool-chain" d-down)
	h=$(spool_file "$TMP/spool-handle" d-down)
	assert_equal "$(basename "$h")" "$(basename "$c")"
	jq -S 'del(.spool.time, .deadline, .received, .response, .spool.message)' "$c" >"$TMP/c.json"
	jq -S 'del(.spool.time, .deadline, .received, .response, .spool.message)' "$h" >"$TMP/h.json"
	diff "$TMP/c.json" "$TMP/h.json"
}

@test "--dry-run=client: 200, nothing created" {
	request "$TMP/push.json" push d-dry
	POPTS=(--dry-run=client)
	same 200
	jq -e 'length == 0' "$TMP/handle.objects"
	[ "$(apiserver_objects | jq length)" = 0 ]
}

@test "GET /-/alive: 200" {
	printf 'GET /-/alive HTTP/1.1\r\nHost: x\r\n\r\n' >"$TMP/req"
	same 200
	http_body "$TMP/handle.resp" | jq -e '.message == "alive"'
}

@test "an unloadable kubeconfig: 500 from both, kwh-handle exits 111" {
	request "$TMP/push.json" push d-nocfg
	POPTS=(--kubeconfig "$TMP/nope" --cache "$TMP/cache")
	run_chain
	run_handle
	assert_equal "$(http_status "$TMP/chain.resp")" 500
	diff <(body "$TMP/chain.resp") <(body "$TMP/handle.resp")
	assert_equal "$HANDLE_RC" 111
}

@test "behind socat, curl gets the same answers as from the chain behind socat" {
	PORT=$(free_port)
	# (the file:// of --allow-remote-host through the environment: socat
	# would take its colon for an address separator)
	ALLOW_REMOTE=file:// socat -t 10 TCP-LISTEN:"$PORT",bind=127.0.0.1,reuseaddr,fork \
		SYSTEM:"kwh-handle --secret-file '$TMP/secret' --cache '$TMP/cache' --allow-remote-host \"\$ALLOW_REMOTE\" --kubeconfig '$APISERVER_DIR/kubeconfig' --log '$TMP/socat.log'" \
		2>"$TMP/socat.err" 3>&- &
	SOCAT_PID=$!
	wait_port "$PORT"
	sig=$(sig_of "$TMP/push.json" "$TMP/secret")
	code=$(curl -sS --max-time 10 -o "$TMP/body" -w '%{http_code}' \
		-H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
		-H 'X-GitHub-Delivery: d-socat' -H "X-Hub-Signature-256: $sig" \
		--data-binary @"$TMP/push.json" "http://127.0.0.1:$PORT/")
	assert_equal "$code" 201
	jq -e '.status == 201 and .delivery == "d-socat"' "$TMP/body"
	apiserver_objects | jq -e 'length == 1 and .[0].kind == "Workflow"'
	# the same request through the chain, from a file
	request "$TMP/push.json" push d-socat
	run_chain
	diff <(jq -S 'del(.results[]?.name, .results[]?.uid)' "$TMP/body") <(body "$TMP/chain.resp")
	code=$(curl -sS --max-time 10 -o "$TMP/body" -w '%{http_code}' "http://127.0.0.1:$PORT/-/alive")
	assert_equal "$code" 200
}

@test "usage errors as in the separate tools: no secret, a bad expression, a bad --remote" {
	run -100 --separate-stderr kwh-handle --log none </dev/null
	[[ "$stderr" == *"no secret"* ]]
	run -100 --separate-stderr kwh-handle --insecure --filter '.[' </dev/null
	[[ "$stderr" == *"--filter"* ]]
	run -100 --separate-stderr kwh-handle --insecure --remote 'git://x/repo.git' </dev/null
	[[ "$stderr" == *"--remote"* ]]
	assert_output ""
}
