#!/usr/bin/env bats
# Issue 15, end to end: whoever holds the webhook secret (or can read a
# hook's "Recent deliveries") controls the payload, so with no option
# kwh-handle (one-shot and --listen), the chain and share/kwh/kwh-handler
# create only an argoproj.io/Workflow in the target namespace, and a
# captured request resent under new delivery ids creates nothing new.  The
# spool keeps one file per delivery and hook target.

load test_helper

HANDLER=$TOP_DIR/share/kwh/kwh-handler

setup() {
	setup_tmp
	export HOME=$TMP
	unset KUBECONFIG CREDENTIALS_DIRECTORY CACHE_DIRECTORY LISTEN_PID
	apiserver_start
	secret_file secret policy-secret
	# (the test repositories are local: file:// allowed, the policy untouched)
	OPTS=(--secret-file "$TMP/secret" --cache "$TMP/cache" --allow-remote-host file://
		--kubeconfig "$APISERVER_DIR/kubeconfig")
}

teardown() {
	[ -z "${LISTEN_PID:-}" ] || stop_pid "$LISTEN_PID"
	apiserver_stop
}

# repo NAME FILE...: a repository $TMP/r-NAME whose .ci/workflow.yaml holds
# the JSON manifests FILE... as YAML documents, and $TMP/NAME.json, a push
# of it.
repo() {
	local name=$1 f; shift
	git init -q -b main "$TMP/r-$name"
	mkdir -p "$TMP/r-$name/.ci"
	for f in "$@"; do printf -- '---\n'; cat "$f"; done >"$TMP/r-$name/.ci/workflow.yaml"
	git -C "$TMP/r-$name" add .ci
	git -C "$TMP/r-$name" -c user.name=t -c user.email=t@example.com commit -q -m ci
	REV=$(git -C "$TMP/r-$name" rev-parse HEAD)
	push_payload refs/heads/main "file://$TMP/r-$name" >"$TMP/$name.json"
}

# attacks: the repositories of the manifests the default policy refuses.
attacks() {
	local P=$FIXTURES/policy
	repo secret "$P/secret-kube-system.json"
	repo rolebinding "$P/rolebinding-cluster-admin.json"
	repo pod "$P/pod-privileged.json"
	repo crb "$P/clusterrolebinding-cluster-admin.json"
	repo wfns "$P/workflow-kube-system.json"
	repo mixed "$FIXTURES/apply/workflow.json" "$P/secret-kube-system.json"
	ATTACKS="secret rolebinding pod crb wfns mixed"
}

# sign NAME DELIVERY [HEADER...]: the signed request of $TMP/NAME.json to $TMP/req.
sign() {
	local name=$1 d=$2 h; shift 2
	set -- --event push --delivery "$d" --secret-file "$TMP/secret" "${@/#/--header=}"
	kwh-sign "$@" "$TMP/$name.json" >"$TMP/req"
}

# handle [OPTIONS]: kwh-handle on $TMP/req; response $TMP/resp, STATUS, RC.
handle() {
	kwh-handle "${OPTS[@]}" --log "$TMP/log" "$@" <"$TMP/req" >"$TMP/resp" && RC=0 || RC=$?
	STATUS=$(http_status "$TMP/resp")
}

# chain [RESPOND OPTIONS]: the five tools on $TMP/req, no option of policy.
chain() {
	kwh-verify --secret-file "$TMP/secret" --log "$TMP/log" <"$TMP/req" |
		kwh-annotate --log "$TMP/log" |
		kwh-fetch --cache "$TMP/cache" --allow-remote-host file:// --log "$TMP/log" |
		kwh-apply --kubeconfig "$APISERVER_DIR/kubeconfig" --cache "$TMP/cache" --log "$TMP/log" |
		kwh-respond --log "$TMP/log" "$@" >"$TMP/resp" || true
	STATUS=$(http_status "$TMP/resp")
}

# handler: share/kwh/kwh-handler on $TMP/req with an environment file that
# sets no policy; STATUS.
handler() {
	{
		echo "KWH_SECRET_FILE=$TMP/secret"
		echo "KWH_CACHE=$TMP/cache"
		echo "KWH_KUBECONFIG=$APISERVER_DIR/kubeconfig"
		echo "KWH_LOG=$TMP/log"
		echo "KWH_ALLOW_REMOTE_HOSTS=file://"
		printf '%s\n' "$@"
	} >"$TMP/kwh.env"
	KWH_ENV_FILE=$TMP/kwh.env "$HANDLER" <"$TMP/req" >"$TMP/resp"
	STATUS=$(http_status "$TMP/resp")
}

# nothing_written: the API server received no request but GETs.
nothing_written() {
	apiserver_requests | jq -e 'map(select(.method != "GET")) | length == 0'
	apiserver_objects | jq -e 'length == 0'
}

@test "kwh-handle, no options: Secret, RoleBinding, Pod, ClusterRoleBinding, Workflow in kube-system refused (422)" {
	attacks
	for a in $ATTACKS; do
		sign "$a" "d-$a"
		handle
		echo "$a: $STATUS"
		assert_equal "$STATUS" 422
		assert_equal "$RC" 1
		http_body "$TMP/resp" | jq -e '.message | test("^policy: ")'
	done
	nothing_written
}

@test "kwh-handle --listen, no options: the same refused with 422" {
	attacks
	PORT=$(free_port)
	kwh-handle --listen "127.0.0.1:$PORT" --workers 2 "${OPTS[@]}" --log "$TMP/listen.log" 2>"$TMP/listen.err" 3>&- &
	LISTEN_PID=$!
	wait_port "$PORT"
	for a in $ATTACKS; do
		sig=$(sig_of "$TMP/$a.json" "$TMP/secret")
		code=$(curl -sS --max-time 20 -o "$TMP/body" -w '%{http_code}' \
			-H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
			-H "X-GitHub-Delivery: d-$a" -H "X-Hub-Signature-256: $sig" \
			--data-binary @"$TMP/$a.json" "http://127.0.0.1:$PORT/")
		echo "$a: $code"
		assert_equal "$code" 422
		jq -e '.message | test("^policy: ")' "$TMP/body"
	done
	nothing_written
	# and a Workflow in the target namespace is created
	repo ok "$FIXTURES/apply/workflow.json"
	sig=$(sig_of "$TMP/ok.json" "$TMP/secret")
	code=$(curl -sS --max-time 20 -o "$TMP/body" -w '%{http_code}' \
		-H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
		-H "X-GitHub-Delivery: d-ok" -H "X-Hub-Signature-256: $sig" \
		--data-binary @"$TMP/ok.json" "http://127.0.0.1:$PORT/")
	assert_equal "$code" 201
	apiserver_objects | jq -e 'length == 1 and .[0].kind == "Workflow" and .[0].metadata.namespace == "ci"'
}

@test "the chain and share/kwh/kwh-handler, no policy setting: refused (422)" {
	attacks
	for a in $ATTACKS; do
		sign "$a" "d-$a"
		chain
		echo "chain $a: $STATUS"
		assert_equal "$STATUS" 422
		http_body "$TMP/resp" | jq -e '.message | test("^policy: ")'
		handler
		echo "handler $a: $STATUS"
		assert_equal "$STATUS" 422
		http_body "$TMP/resp" | jq -e '.message | test("^policy: ")'
		# KWH_ALLOW_KINDS set empty is the default too, not every kind
		handler KWH_ALLOW_KINDS=
		assert_equal "$STATUS" 422
		http_body "$TMP/resp" | jq -e '.message | test("^policy: ")'
	done
	nothing_written
}

@test "no options: a Workflow in the target namespace is created (201), by each of them" {
	repo ok "$FIXTURES/apply/workflow.json"
	sign ok d-1
	handle
	assert_equal "$STATUS" 201
	sign ok d-2 'X-GitHub-Hook-Installation-Target-Type: organization'
	chain
	assert_equal "$STATUS" 201
	sign ok d-3 'X-GitHub-Hook-Installation-Target-Type: integration'
	handler
	assert_equal "$STATUS" 201
	apiserver_objects | jq -e 'length == 3 and all(.[]; .kind == "Workflow" and .metadata.namespace == "ci")'
}

@test "the same signed request resent with 3 delivery ids creates one Workflow (2xx naming it)" {
	repo ok "$FIXTURES/apply/workflow.json"
	for d in d-first d-second d-third; do
		sign ok "$d"
		handle
		echo "$d: $STATUS"
		names+=("$(http_body "$TMP/resp" | jq -r '.results[0].name')")
		actions+=("$(http_body "$TMP/resp" | jq -r '.results[0].action')")
		[ "$STATUS" -ge 200 ] && [ "$STATUS" -lt 300 ]
	done
	assert_equal "${actions[*]}" "created exists exists"
	assert_equal "${names[1]}" "${names[0]}"
	assert_equal "${names[2]}" "${names[0]}"
	apiserver_objects | jq -e --arg n "${names[0]}" 'length == 1 and .[0].metadata.name == $n'
	# the chain and the handler find it too
	sign ok d-fourth
	chain
	assert_equal "$STATUS" 200
	http_body "$TMP/resp" | jq -e --arg n "${names[0]}" '.results[0] | .action == "exists" and .name == $n'
	sign ok d-fifth
	handler
	assert_equal "$STATUS" 200
	apiserver_objects | jq -e 'length == 1'
	# --no-dedupe (KWH_DEDUPE=no) is the way to a new object per delivery
	handle --no-dedupe
	assert_equal "$STATUS" 201
	apiserver_objects | jq -e 'length == 2'
}

@test "kwh-handle --listen: resent under new delivery ids, one Workflow" {
	repo ok "$FIXTURES/apply/workflow.json"
	PORT=$(free_port)
	kwh-handle --listen "127.0.0.1:$PORT" --workers 2 "${OPTS[@]}" --log "$TMP/listen.log" 2>"$TMP/listen.err" 3>&- &
	LISTEN_PID=$!
	wait_port "$PORT"
	sig=$(sig_of "$TMP/ok.json" "$TMP/secret")
	for d in l-1 l-2 l-3; do
		code=$(curl -sS --max-time 20 -o "$TMP/body" -w '%{http_code}' \
			-H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
			-H "X-GitHub-Delivery: $d" -H "X-Hub-Signature-256: $sig" \
			--data-binary @"$TMP/ok.json" "http://127.0.0.1:$PORT/")
		codes+=("$code")
		jq -r '.results[0].action' "$TMP/body"
	done
	assert_equal "${codes[*]}" "201 200 200"
	apiserver_objects | jq -e 'length == 1'
}

@test "the hook target type counts: a repository hook and an organisation hook, one delivery id" {
	repo ok "$FIXTURES/apply/workflow.json"
	sign ok d-same 'X-GitHub-Hook-Installation-Target-Type: repository' 'X-GitHub-Hook-Installation-Target-ID: 1'
	handle
	assert_equal "$STATUS" 201
	sign ok d-same 'X-GitHub-Hook-Installation-Target-Type: organization' 'X-GitHub-Hook-Installation-Target-ID: 2'
	handle
	assert_equal "$STATUS" 201
	# a type GitHub does not send counts as none: no new object from it
	sign ok d-same 'X-GitHub-Hook-Installation-Target-Type: made-up-1'
	handle
	assert_equal "$STATUS" 201
	sign ok d-same 'X-GitHub-Hook-Installation-Target-Type: made-up-2'
	handle
	assert_equal "$STATUS" 200
	apiserver_objects | jq -e 'length == 3'
}

@test "two hook targets with the same delivery id: both spooled, by kwh-respond and kwh-handle" {
	repo ok "$FIXTURES/apply/workflow.json"
	mkdir -m 700 "$TMP/spool" "$TMP/spool2"
	apiserver_fault '{"count":1000,"status":503,"method":"POST"}'
	sign ok d-same 'X-GitHub-Hook-Installation-Target-Type: repository' 'X-GitHub-Hook-Installation-Target-ID: 1'
	chain --spool "$TMP/spool"
	assert_equal "$STATUS" 503
	sign ok d-same 'X-GitHub-Hook-Installation-Target-Type: organization' 'X-GitHub-Hook-Installation-Target-ID: 2'
	chain --spool "$TMP/spool"
	assert_equal "$STATUS" 503
	run ls "$TMP/spool"
	assert_equal "${#lines[@]}" 2
	assert_line --regexp '^d-same-[0-9a-f]{16}\.json$'
	# each file is its own delivery: the digests differ, the delivery id is one
	jq -s -e 'length == 2 and (map(.digest) | unique | length == 2) and
		(map(.delivery) | unique == ["d-same"]) and
		(map(.headers["x-github-hook-installation-target-type"] // .headers["X-GitHub-Hook-Installation-Target-Type"]) | sort == ["organization", "repository"])' \
		"$TMP"/spool/*.json
	# the file name carries the digest's first 16 digits
	for f in "$TMP"/spool/*.json; do
		d=$(jq -r .digest "$f")
		assert_equal "$(basename "$f")" "d-same-${d:0:16}.json"
	done
	# kwh-handle --spool alike
	sign ok d-same 'X-GitHub-Hook-Installation-Target-Type: repository'
	handle --spool "$TMP/spool2"
	sign ok d-same 'X-GitHub-Hook-Installation-Target-Type: organization'
	handle --spool "$TMP/spool2"
	assert_equal "$(ls "$TMP/spool2" | wc -l)" 2
	# replayed once the API server is back: two Workflows, the spool empty
	apiserver_control DELETE /_test/faults >/dev/null
	run kwh-replay --spool "$TMP/spool" --log "$TMP/replay.log" -- \
		"kwh-apply --kubeconfig $APISERVER_DIR/kubeconfig --cache $TMP/cache --log none"
	cat "$TMP/replay.log"
	assert_success
	assert_equal "$(ls "$TMP/spool" | wc -l)" 0
	apiserver_objects | jq -e 'length == 2'
}
