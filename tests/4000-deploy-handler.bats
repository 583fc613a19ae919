#!/usr/bin/env bats
# share/kwh/kwh-handler: the whole chain under socat on 127.0.0.1 against
# the test API server with a local git repository; its environment file;
# where its logs go; what its processes show in argv.

load test_helper
load 4000-deploy-lib

setup() {
	deploy_setup
}

teardown() {
	deploy_teardown
}

# serve [ADDRESS-OPTIONS]: socat on a free port runs the handler per
# connection, as share/socat/kwh-socat does; sets PORT.
serve() {
	PORT=$(free_port)
	# (without the test API server's token in the environment: the chain
	# must not get it from anywhere but the kubeconfig file)
	env -u APISERVER_TOKEN socat -t 10 TCP-LISTEN:"$PORT",bind=127.0.0.1,reuseaddr,fork,max-children=8 \
		EXEC:"$HANDLER${1:-}" 2>"$TMP/socat.err" &
	SOCAT_PID=$!
	wait_port "$PORT"
}

# handler: runs the handler on $TMP/req; stdout in $TMP/out.
handler() {
	"$HANDLER" <"$TMP/req" >"$TMP/out"
}

@test "socat: a signed push is answered 201 and the Workflow is in the API server" {
	need_chain
	apiserver_start
	deploy_repo; deploy_payload; deploy_env
	serve
	post_push "$PORT" d-socat-1
	assert_equal "$CODE" 201
	echo "$BODY" | jq -e '.status == 201 and .delivery == "d-socat-1" and
		(.results | length == 1) and .results[0].action == "created" and
		.results[0].namespace == "ci" and (.results[0].name | startswith("ci-hello-"))'
	apiserver_objects | jq -e --arg rev "$REV" 'map(select(.kind == "Workflow")) | length == 1 and
		.[0].metadata.namespace == "ci" and
		.[0].metadata.annotations["k8s-webhook-handler.io/revision"] == $rev and
		.[0].metadata.annotations["k8s-webhook-handler.io/repo_name"] == "octo/repo"'
	# every stage logged to KWH_LOG with the delivery id; nothing on socat's stderr
	grep -q 'prog=kwh-verify .*delivery=d-socat-1' "$TMP/log"
	grep -q 'prog=kwh-fetch .*delivery=d-socat-1' "$TMP/log"
	grep -q 'prog=kwh-apply .*delivery=d-socat-1' "$TMP/log"
	[ ! -s "$TMP/socat.err" ]
	# the git cache is under KWH_CACHE/git
	ls -d "$TMP"/cache/git/*-octo-repo.git
}

@test "socat: a redelivery creates nothing twice (KWH_DEDUPE defaults to yes)" {
	need_chain
	apiserver_start
	deploy_repo; deploy_payload; deploy_env
	serve
	post_push "$PORT" d-again
	assert_equal "$CODE" 201
	post_push "$PORT" d-again
	assert_equal "$CODE" 200
	echo "$BODY" | jq -e '.results[0].action == "exists"'
	apiserver_objects | jq -e 'map(select(.kind == "Workflow")) | length == 1'
	# KWH_DEDUPE=no: every delivery creates
	echo KWH_DEDUPE=no >>"$TMP/kwh.env"
	post_push "$PORT" d-again
	assert_equal "$CODE" 201
	apiserver_objects | jq -e 'map(select(.kind == "Workflow")) | length == 2'
}

@test "socat: a wrong signature is 401 and nothing reaches the API server" {
	need_chain
	apiserver_start
	deploy_repo; deploy_payload; deploy_env
	printf 'not-the-secret\n' >"$TMP/other"
	serve
	post_push "$PORT" d-bad "$TMP/other"
	assert_equal "$CODE" 401
	apiserver_requests | jq -e 'length == 0'
}

@test "socat: GET /-/alive (the Deployment's probes) is 200 through the whole chain" {
	need_chain
	apiserver_start
	deploy_env
	serve
	CODE=$(curl -sS --max-time 10 -o "$TMP/body" -w '%{http_code}' "http://127.0.0.1:$PORT/-/alive")
	assert_equal "$CODE" 200
	jq -e '.message == "alive"' "$TMP/body"
	# a stage that cannot run (here kwh-apply: no kubeconfig) still passes
	# the answer through, as every stage passes an envelope that has a
	# response (kwh(7)), and says what is wrong in the log
	sed -i "s|^KWH_KUBECONFIG=.*|KWH_KUBECONFIG=$TMP/missing|" "$TMP/kwh.env"
	CODE=$(curl -sS --max-time 10 -o "$TMP/body" -w '%{http_code}' "http://127.0.0.1:$PORT/-/alive") || true
	assert_equal "$CODE" 200
	# kwh-apply logs its fatal error as it exits, after the answer went out
	for _ in $(seq 1 100); do grep -q 'prog=kwh-apply level=error' "$TMP/log" && break; sleep 0.1; done
	grep -q 'prog=kwh-apply level=error' "$TMP/log"
}

@test "socat: KWH_ALLOW_KINDS refuses what the Role would not allow, with 422" {
	need_chain
	apiserver_start
	deploy_repo; deploy_payload; deploy_env KWH_ALLOW_KINDS=/ConfigMap
	serve
	post_push "$PORT" d-kind
	assert_equal "$CODE" 422
	apiserver_requests | jq -e 'map(select(.method != "GET")) | length == 0'
}

@test "KWH_ALLOW_REMOTE_HOSTS: without KWH_REMOTE, the payload's file:// URL is 422 unless allowed" {
	need_chain
	deploy_repo; deploy_payload
	jq --arg u "file://$TMP/srv/octo/repo.git" '.repository.clone_url = $u' "$TMP/push.json" >"$TMP/p2"
	mv "$TMP/p2" "$TMP/push.json"
	deploy_env KWH_DRY_RUN=client
	# (the environment wins over deploy_env's KWH_REMOTE: none)
	export KWH_REMOTE=
	signed_request d-allow
	handler
	assert_equal "$(http_status "$TMP/out")" 422
	http_body "$TMP/out" | jq -e '.message == "fetching the repository failed; see the log for delivery d-allow"'
	grep -qF "prog=kwh-fetch level=warn delivery=d-allow status=422 msg=\"file://$TMP/srv/octo/repo.git: local repositories are not allowed" "$TMP/log"
	echo "KWH_ALLOW_REMOTE_HOSTS=github.com file://" >>"$TMP/kwh.env"
	handler
	assert_equal "$(http_status "$TMP/out")" 200
	http_body "$TMP/out" | jq -e '.results[0].action == "dry-run"'
}

@test "KWH_CACHE_MAX_BYTES reaches kwh-fetch: after the fetch, an unused entry past the bound is evicted" {
	need_chain
	deploy_repo; deploy_payload
	deploy_env KWH_DRY_RUN=client
	echo "KWH_CACHE_MAX_BYTES=1k" >>"$TMP/kwh.env"
	# an old entry of another remote, unused for an hour
	mkdir -p "$TMP/cache/git/0123456789abcdef-octo-old.git"
	head -c 65536 /dev/zero >"$TMP/cache/git/0123456789abcdef-octo-old.git/data"
	touch -d '-1 hour' "$TMP/cache/git/0123456789abcdef-octo-old.lock"
	signed_request d-bound
	handler
	assert_equal "$(http_status "$TMP/out")" 200
	[ ! -e "$TMP/cache/git/0123456789abcdef-octo-old.git" ] || fail "the old entry stayed"
	[ ! -e "$TMP/cache/git/0123456789abcdef-octo-old.lock" ] || fail "the old lock file stayed"
	ls -d "$TMP"/cache/git/*-octo-repo.git
	grep -qF "prog=kwh-fetch level=info delivery=- msg=\"cache entry '$TMP/cache/git/0123456789abcdef-octo-old.git' evicted" "$TMP/log"
}

@test "the response is the only thing on stdout; the log goes to KWH_LOG" {
	need_chain
	deploy_repo; deploy_payload; deploy_env KWH_DRY_RUN=client
	signed_request d-out
	handler 2>"$TMP/err"
	one_http_response "$TMP/out"
	assert_equal "$(http_status "$TMP/out")" 200
	http_body "$TMP/out" | jq -e '.results[0].action == "dry-run"'
	grep -q 'prog=kwh-verify .*delivery=d-out' "$TMP/log"
	[ ! -s "$TMP/err" ]
}

@test "KWH_CA_FILE and KWH_TOKEN_FILE reach kwh-fetch: an HTTPS remote behind a private CA" {
	need_chain
	deploy_repo; deploy_payload
	"$TESTS_DIR/lib/mkcerts.sh" "$TMP/pki" >/dev/null
	SRV=$TMP/srv
	start_http_git git-token-Zq8 "$TMP/pki/server.crt" "$TMP/pki/server.key"
	printf 'git-token-Zq8\n' >"$TMP/git-token"
	deploy_env KWH_DRY_RUN=client "KWH_TOKEN_FILE=$TMP/git-token"
	# (the environment wins over deploy_env's file:// remote)
	export KWH_REMOTE="https://localhost:$HTTP_GIT_PORT/{full_name}.git"
	signed_request d-ca
	KWH_CA_FILE=$TMP/pki/other-ca.crt handler
	assert_equal "$(http_status "$TMP/out")" 502
	[ ! -s "$TMP/http.log" ]
	echo "KWH_CA_FILE=$TMP/pki/ca.crt" >>"$TMP/kwh.env"
	handler
	assert_equal "$(http_status "$TMP/out")" 200
	grep -q '^POST /octo/repo.git/git-upload-pack 200$' "$TMP/http.log"
}

@test "stderr the same as stdout (inetd): a stage's fatal message never reaches the client" {
	need_chain
	REV=0; deploy_payload
	deploy_env
	signed_request d-fatal
	# a kubeconfig that does not exist: kwh-apply cannot start ...
	sed -i "/^KWH_LOG=/d" "$TMP/kwh.env"
	echo "KWH_KUBECONFIG=$TMP/missing" >>"$TMP/kwh.env"
	# ... and says so on its standard error (the premise of this test)
	run --separate-stderr kwh-apply --kubeconfig "$TMP/missing" </dev/null
	[[ $stderr == *fatal* ]]
	# KWH_LOG=auto, 2>&1 as inetd does it
	"$HANDLER" <"$TMP/req" >"$TMP/out" 2>&1 || true
	one_http_response "$TMP/out"
	# a 5xx (which one depends on the stage that stops first), never the text
	[[ $(http_status "$TMP/out") == 5?? ]]
	run grep -c -e "fatal:" -e "warning:" "$TMP/out"
	assert_output 0
	# KWH_LOG=stderr is not obeyed when stderr is the connection
	KWH_LOG=stderr "$HANDLER" <"$TMP/req" >"$TMP/out" 2>&1 || true
	one_http_response "$TMP/out"
	run grep -c -e "fatal:" -e "warning:" "$TMP/out"
	assert_output 0
	# and the same over a real socket (socat's stderr option: the handler's
	# standard error is the connection, as under inetd)
	serve ,stderr
	socat -t 10 - TCP:127.0.0.1:"$PORT" <"$TMP/req" >"$TMP/resp"
	one_http_response "$TMP/resp"
	[[ $(http_status "$TMP/resp") == 5?? ]]
	run grep -c -e "fatal:" -e "warning:" "$TMP/resp"
	assert_output 0
}

@test "KWH_LOG=auto with a separate stderr logs there" {
	need_chain
	deploy_repo; deploy_payload; deploy_env KWH_DRY_RUN=client
	sed -i '/^KWH_LOG=/d' "$TMP/kwh.env"
	signed_request d-auto
	handler 2>"$TMP/err"
	one_http_response "$TMP/out"
	grep -q 'prog=kwh-verify .*delivery=d-auto' "$TMP/err"
	grep -q 'prog=kwh-fetch .*delivery=d-auto' "$TMP/err"
}

@test "no secret or token in any argv or environment of the chain's processes" {
	need_chain
	apiserver_start
	deploy_repo; deploy_payload; deploy_env
	serve
	# the body comes 4 s after the headers: all five stages are caught
	# running, kwh-verify waiting for the body
	signed_request d-argv
	{ sed -n '1,/^\r$/p' "$TMP/req"; sleep 4; sed '1,/^\r$/d' "$TMP/req"; } |
		socat -t 10 - TCP:127.0.0.1:"$PORT" >"$TMP/resp" &
	local curl_pid=$! seen= pid args
	for _ in $(seq 1 200); do
		# one ps per round: the chain is caught while the create waits
		while read -r pid args; do
			case $args in
			kwh-*"$TMP/"* | */kwh-*"$TMP/"*) # this test's chain only
				printf '%s\n' "$args" >>"$TMP/cmdlines"
				tr '\0' '\n' <"/proc/$pid/environ" >>"$TMP/environs" 2>/dev/null || true
				;;
			esac
		done < <(ps -e -ww -o pid=,args=)
		grep -q '^kwh-verify ' "$TMP/cmdlines" 2>/dev/null &&
			grep -q '^kwh-apply ' "$TMP/cmdlines" && seen=yes && break
		sleep 0.02
	done
	wait "$curl_pid"
	[ "$seen" = yes ] || { echo "seen:"; sort -u "$TMP/cmdlines"; cat "$TMP/resp"; }
	assert_equal "$seen" yes
	sort -u "$TMP/cmdlines"
	# the secret is passed as a path
	grep -q "^kwh-verify .*--secret-file $TMP/secret" "$TMP/cmdlines"
	grep -q "^kwh-apply .*--kubeconfig $APISERVER_DIR/kubeconfig" "$TMP/cmdlines"
	run grep -c -e "$SECRET_VALUE" -e "$APISERVER_TOKEN" "$TMP/cmdlines" "$TMP/environs"
	assert_output "$TMP/cmdlines:0
$TMP/environs:0"
	# the request did get through
	assert_equal "$(http_status "$TMP/resp")" 201
	apiserver_objects | jq -e 'map(select(.kind == "Workflow")) | length == 1'
}

@test "the environment file: quotes, export, comments; the environment wins" {
	need_chain
	deploy_repo; deploy_payload; deploy_env KWH_DRY_RUN=client
	sed -i '/^KWH_NAMESPACE=/d' "$TMP/kwh.env"
	printf '%s\n' '' '   # an indented comment' 'export KWH_NAMESPACE="from-file"' \
		"KWH_IGNORE_REF='^refs/heads/(gh-pages|x\$)'" 'KWH_PATH=.ci/workflow.yaml' >>"$TMP/kwh.env"
	signed_request d-env
	handler
	http_body "$TMP/out" | jq -e '.results[0].namespace == "from-file"'
	KWH_NAMESPACE=from-env handler
	http_body "$TMP/out" | jq -e '.results[0].namespace == "from-env"'
	# the ignore regex was taken literally: refs/heads/main goes through,
	# refs/heads/gh-pages does not
	jq '.ref = "refs/heads/gh-pages"' "$TMP/push.json" >"$TMP/p2" && mv "$TMP/p2" "$TMP/push.json"
	signed_request d-env2
	handler
	assert_equal "$(http_status "$TMP/out")" 202
	http_body "$TMP/out" | jq -e '.message | test("gh-pages")'
}

@test "the environment file: an unknown KWH_ variable or a bad value is 503, said in the log" {
	need_chain
	REV=0; deploy_payload
	deploy_env KWH_NAMESAPCE=typo
	signed_request d-typo
	run handler
	assert_equal "$status" 111
	one_http_response "$TMP/out"
	assert_equal "$(http_status "$TMP/out")" 503
	http_body "$TMP/out" | jq -e '.message | test("KWH_NAMESAPCE")'
	grep -q 'prog=kwh-handler level=error.*KWH_NAMESAPCE' "$TMP/log"
	deploy_env KWH_DEDUPE=maybe
	run handler
	assert_equal "$status" 111
	one_http_response "$TMP/out"
	assert_equal "$(http_status "$TMP/out")" 503
	http_body "$TMP/out" | jq -e '.message | test("KWH_DEDUPE must be yes or no")'
	KWH_ENV_FILE=$TMP/nonexistent run handler
	assert_equal "$status" 111
	one_http_response "$TMP/out"
	assert_equal "$(http_status "$TMP/out")" 503
	http_body "$TMP/out" | jq -e '.message | test("cannot read the environment file")'
}

@test "secret rotation: KWH_SECRET_FILE lists several files, either signs" {
	need_chain
	deploy_repo; deploy_payload; deploy_env KWH_DRY_RUN=client
	printf 'the-next-secret\n' >"$TMP/next"
	sed -i "s|^KWH_SECRET_FILE=.*|KWH_SECRET_FILE=$TMP/secret $TMP/next|" "$TMP/kwh.env"
	signed_request d-old "$TMP/secret"
	handler
	assert_equal "$(http_status "$TMP/out")" 200
	signed_request d-next "$TMP/next"
	handler
	assert_equal "$(http_status "$TMP/out")" 200
	printf 'neither\n' >"$TMP/neither"
	signed_request d-neither "$TMP/neither"
	handler || true
	assert_equal "$(http_status "$TMP/out")" 401
}

@test "systemd credentials: webhook-secret* in CREDENTIALS_DIRECTORY, relative paths from it" {
	need_chain
	deploy_repo; deploy_payload; deploy_env KWH_DRY_RUN=client
	sed -i '/^KWH_SECRET_FILE=/d' "$TMP/kwh.env"
	mkdir "$TMP/creds"
	printf 'cred-one\n' >"$TMP/creds/webhook-secret"
	printf 'cred-two\n' >"$TMP/creds/webhook-secret-next"
	export CREDENTIALS_DIRECTORY=$TMP/creds
	signed_request d-c1 "$TMP/creds/webhook-secret"
	handler
	assert_equal "$(http_status "$TMP/out")" 200
	signed_request d-c2 "$TMP/creds/webhook-secret-next"
	handler
	assert_equal "$(http_status "$TMP/out")" 200
	# a relative KWH_SECRET_FILE names a credential
	echo KWH_SECRET_FILE=webhook-secret-next >>"$TMP/kwh.env"
	signed_request d-c3 "$TMP/creds/webhook-secret"
	handler || true
	assert_equal "$(http_status "$TMP/out")" 401
	# and CACHE_DIRECTORY is the default cache
	sed -i '/^KWH_CACHE=/d' "$TMP/kwh.env"
	export CACHE_DIRECTORY=$TMP/sdcache
	signed_request d-c4 "$TMP/creds/webhook-secret-next"
	handler
	assert_equal "$(http_status "$TMP/out")" 200
	ls -d "$TMP"/sdcache/git/*-octo-repo.git
}

@test "installed layout: the handler finds the tools in ../../bin without KWH_BIN" {
	need_chain
	mkdir -p "$TMP/usr/bin" "$TMP/usr/share/kwh"
	cp "$KWH_BIN"/kwh-verify "$KWH_BIN"/kwh-annotate "$KWH_BIN"/kwh-fetch \
		"$KWH_BIN"/kwh-apply "$KWH_BIN"/kwh-respond "$TMP/usr/bin/"
	cp "$HANDLER" "$TMP/usr/share/kwh/"
	deploy_env KWH_DRY_RUN=client
	printf 'GET /-/alive HTTP/1.1\r\nHost: x\r\n\r\n' >"$TMP/req"
	env -u KWH_BIN PATH=/usr/bin:/bin "$TMP/usr/share/kwh/kwh-handler" <"$TMP/req" >"$TMP/out"
	assert_equal "$(http_status "$TMP/out")" 200
	# it used those copies: without them, no answer at all
	rm "$TMP/usr/bin/kwh-respond"
	run env -u KWH_BIN PATH=/usr/bin:/bin "$TMP/usr/share/kwh/kwh-handler" <"$TMP/req"
	assert_equal "$status" 111
}

@test "WEBHOOK_SECRET alone (the original's Deployment): verified, and no other stage sees it" {
	need_chain
	[ ! -e /etc/kwh/webhook-secret ] || skip "/etc/kwh/webhook-secret exists on this machine"
	deploy_repo; deploy_payload; deploy_env KWH_DRY_RUN=client
	sed -i '/^KWH_SECRET_FILE=/d' "$TMP/kwh.env"
	# the tools, kwh-annotate behind a script that keeps its environment
	mkdir "$TMP/bin"
	for t in kwh-verify kwh-fetch kwh-apply kwh-respond; do ln -s "$KWH_BIN/$t" "$TMP/bin/$t"; done
	printf '#!/bin/sh\nenv >"%s/annotate.env"\nexec "%s/kwh-annotate" "$@"\n' "$TMP" "$KWH_BIN" >"$TMP/bin/kwh-annotate"
	chmod +x "$TMP/bin/kwh-annotate"
	export KWH_BIN=$TMP/bin
	signed_request d-env
	WEBHOOK_SECRET=$SECRET_VALUE GITHUB_TOKEN=gh-token-Xq7 handler
	assert_equal "$(http_status "$TMP/out")" 200
	grep -q "^KWH_BIN=$TMP/bin" "$TMP/annotate.env"
	# (as variables: newer bats exports this test's description, which names them)
	run ! grep -e '^WEBHOOK_SECRET=' -e "$SECRET_VALUE" -e '^GITHUB_TOKEN=' -e gh-token-Xq7 "$TMP/annotate.env"
	# set in the environment file, as any other variable
	echo "WEBHOOK_SECRET=$SECRET_VALUE" >>"$TMP/kwh.env"
	signed_request d-file
	handler
	assert_equal "$(http_status "$TMP/out")" 200
	# a wrong one is 401, not 500
	signed_request d-wrong "$TMP/secret"
	WEBHOOK_SECRET=another-secret handler || true
	assert_equal "$(http_status "$TMP/out")" 401
	# with neither, the error names the file it looked for
	sed -i '/^WEBHOOK_SECRET=/d' "$TMP/kwh.env"
	handler || true
	assert_equal "$(http_status "$TMP/out")" 500
	grep -q "/etc/kwh/webhook-secret" "$TMP/log"
}

@test "KWH_LOG_LEVEL reaches every stage; KWH_PULL_REQUEST_ACTIONS and KWH_LIVENESS_PATH are known" {
	need_chain
	deploy_repo; deploy_payload; deploy_env KWH_DRY_RUN=client KWH_LOG_LEVEL=warn \
		KWH_PULL_REQUEST_ACTIONS=opened KWH_LIVENESS_PATH=/healthz
	signed_request d-level
	handler
	assert_equal "$(http_status "$TMP/out")" 200
	run ! grep 'level=info' "$TMP/log"
	sed -i 's/^KWH_LOG_LEVEL=.*/KWH_LOG_LEVEL=info/' "$TMP/kwh.env"
	signed_request d-level2
	handler
	grep -q 'prog=kwh-fetch level=info .*delivery=d-level2' "$TMP/log"
	printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' >"$TMP/req"
	handler
	assert_equal "$(http_status "$TMP/out")" 200
}
