#!/usr/bin/env bats
# SECURITY.md's promise, checked: the webhook secret, the API server token
# and a git token appear in no argv (/proc/*/cmdline of every process
# while the whole chain runs), no environment of the chain, no log, no
# response and no spooled delivery — on success and on the failures that
# involve them.

load test_helper
load 4000-deploy-lib

GIT_TOKEN=git-token-Hq7WpZ3vXk

setup() {
	deploy_setup
}

teardown() {
	deploy_teardown
}

# handler_with_spool: sets H, the shipped handler when it knows KWH_SPOOL,
# else a copy that passes it to kwh-respond --spool (see 5200-faults-handler).
handler_with_spool() {
	if grep -q KWH_SPOOL "$HANDLER"; then H=$HANDLER; return 0; fi
	sed -e 's/KWH_SSH_KEY | KWH_TOKEN_FILE | KWH_USE_GIT_URL)/KWH_SPOOL | &/' \
		-e 's/^\(	exec kwh-respond --log "\$log_dest"\)$/\1 ${KWH_SPOOL:+--spool "$KWH_SPOOL"}/' \
		"$HANDLER" >"$TMP/kwh-handler"
	chmod 755 "$TMP/kwh-handler"
	H=$TMP/kwh-handler
}

# scene GIT-SERVER-TOKEN: the repository served over HTTP by a server that
# wants GIT-SERVER-TOKEN, the handler's environment with $TMP/git-token
# (holding $GIT_TOKEN), a spool; socat on PORT.
scene() {
	SRV=$TMP/srv
	deploy_repo
	deploy_payload
	start_http_git "$1"
	mkdir -p "$TMP/spool"
	printf '%s\n' "$GIT_TOKEN" >"$TMP/git-token"
	chmod 600 "$TMP/git-token"
	deploy_env "KWH_SPOOL=$TMP/spool" "KWH_TOKEN_FILE=$TMP/git-token" KWH_BUDGET=20
	sed -i "s|^KWH_REMOTE=.*|KWH_REMOTE=http://127.0.0.1:$HTTP_GIT_PORT/{full_name}.git|" "$TMP/kwh.env"
	handler_with_spool
	PORT=$(free_port)
	env -u APISERVER_TOKEN socat -t 15 TCP-LISTEN:"$PORT",bind=127.0.0.1,reuseaddr,fork \
		EXEC:"$H" 2>"$TMP/socat.err" &
	SOCAT_PID=$!
	wait_port "$PORT"
}

# no_secret FILE...: none of the three secrets is in any FILE.
no_secret() {
	local f s
	for f in "$@"; do
		[ -e "$f" ] || continue
		for s in "$SECRET_VALUE" "$APISERVER_TOKEN" "$GIT_TOKEN"; do
			if grep -q -F -- "$s" "$f"; then
				echo "a secret is in $f:" >&2
				grep -n -F -- "$s" "$f" | sed "s/$s/<SECRET>/g" >&2
				return 1
			fi
		done
	done
}

@test "no secret in any process's argv, the chain's environments, logs, responses or spool" {
	need_chain
	apiserver_start
	scene "$GIT_TOKEN"
	signed_request d-secrets
	# the body comes 2 s after the headers, then the git server holds the
	# fetch for 1.5 s: every stage and the fetch are caught running
	: >"$TMP/stall"
	{ sed -n '1,/^\r$/p' "$TMP/req"; sleep 2; sed '1,/^\r$/d' "$TMP/req"; } |
		socat -t 60 - TCP:127.0.0.1:"$PORT" >"$TMP/resp" &
	local client=$! p args argv
	# 3.5 s in, the fetch has waited long enough
	{ sleep 3.5; rm -f "$TMP/stall"; } &
	while kill -0 "$client" 2>/dev/null; do
		for p in /proc/[0-9]*; do
			# (the test's git server has its token on its command line)
			[ "${p#/proc/}" != "$HTTP_GIT_PID" ] || continue
			# (builtins only: a scan must be quicker than the chain)
			mapfile -d '' argv 2>/dev/null <"$p/cmdline" || continue
			args="${argv[*]}"
			# (nor do other suites' test git servers, on a shared machine)
			case $args in *python3*/githttp.py\ *) continue ;; esac
			printf '%s\n' "$args" >>"$TMP/cmdlines"
			case $args in
			*kwh-*"$TMP/"* | *git*127.0.0.1:"$HTTP_GIT_PORT"*)
				tr '\0' '\n' 2>/dev/null <"$p/environ" >>"$TMP/environs" || true ;;
			esac
		done
		sleep 0.05
	done
	wait "$client"
	# the premises: the delivery went through with all three secrets in use,
	# and every stage was seen
	assert_equal "$(http_status "$TMP/resp")" 201 || { cat "$TMP/log"; false; }
	apiserver_objects | jq -e 'map(select(.kind == "Workflow")) | length == 1'
	grep -q ' 200$' "$TMP/http.log" # the git server let the token in
	for p in kwh-verify kwh-annotate kwh-fetch kwh-apply kwh-respond; do
		grep -q "$p .*--log $TMP/log" "$TMP/cmdlines" || { echo "$p not seen" >&2; false; }
	done
	grep -q -- "--secret-file $TMP/secret" "$TMP/cmdlines"
	grep -q -- "--token-file $TMP/git-token" "$TMP/cmdlines"
	[ -s "$TMP/environs" ]
	# and not one secret anywhere
	no_secret "$TMP/cmdlines" "$TMP/environs" "$TMP/log" "$TMP/socat.err" "$TMP/resp" \
		"$APISERVER_DIR/server.log" "$TMP/http.err"
	apiserver_requests >"$TMP/requests"
	no_secret "$TMP/requests"
}

@test "a refused git token or API token: the message, log and spooled delivery do not hold it" {
	need_chain
	apiserver_start
	scene not-the-git-token
	post_push "$PORT" d-gitauth
	assert_equal "$CODE" 502
	grep -q 'prog=kwh-fetch level=error delivery=d-gitauth status=502' "$TMP/log"
	f=$(spool_file "$TMP/spool" d-gitauth)
	printf '%s\n' "$BODY" >"$TMP/body1"
	no_secret "$TMP/body1" "$TMP/log" "$f" "$TMP/socat.err"
	# the git server takes the token now; the API server refuses ours
	stop_pid "$HTTP_GIT_PID"
	python3 "$TMP/githttp.py" "$HTTP_GIT_PORT" "$SRV" "$GIT_TOKEN" "$TMP/http.log" "$TMP/stall" \
		2>"$TMP/http.err" 3>&- &
	_remember_pid $!
	wait_port "$HTTP_GIT_PORT"
	local wrong=wrong-api-token-9Fq2
	sed -i "s|token: .*|token: $wrong|" "$APISERVER_DIR/kubeconfig"
	post_push "$PORT" d-apiauth
	assert_equal "$CODE" 502
	echo "$BODY" | jq -e '.message | test("credentials")'
	grep -q 'prog=kwh-apply level=error delivery=d-apiauth status=502' "$TMP/log"
	printf '%s\n' "$BODY" >"$TMP/body2"
	no_secret "$TMP/body2" "$TMP/log" "$TMP/socat.err" "$TMP"/spool/*.json
	run grep -c -F -- "$wrong" "$TMP/body2" "$TMP/log" "$TMP"/spool/*.json
	refute_output --regexp ':[1-9]'
}

@test "a wrong signature: 401 that echoes neither the secret nor the signature, nothing spooled" {
	need_chain
	apiserver_start
	scene "$GIT_TOKEN"
	printf 'an-attacker-guess\n' >"$TMP/guess"
	post_push "$PORT" d-forged "$TMP/guess"
	assert_equal "$CODE" 401
	printf '%s\n' "$BODY" >"$TMP/body"
	no_secret "$TMP/body" "$TMP/log"
	run grep -c -F "$(sig_of "$TMP/push.json" "$TMP/guess" | cut -c8-)" "$TMP/body"
	assert_output 0
	[ -z "$(ls -A "$TMP/spool")" ]
	apiserver_requests | jq -e 'length == 0'
}
