# Helpers of the tests/4000-deploy-*.bats files (load 4000-deploy-lib):
# a git repository holding an Argo Workflow, a push for it, an environment
# file for share/kwh/kwh-handler, signed requests.

HANDLER=$TOP_DIR/share/kwh/kwh-handler
SECRET_VALUE=deploy-test-secret-Zq81x

# deploy_setup: the test's directory as HOME, and no cluster or systemd
# setting inherited from whoever runs the suite.  The listener a test
# starts goes in SOCAT_PID, for deploy_teardown.
deploy_setup() {
	setup_tmp
	export HOME=$TMP
	unset KUBECONFIG CREDENTIALS_DIRECTORY CACHE_DIRECTORY
	SOCAT_PID=
}

# deploy_teardown: stops the listener, the test API server, git servers.
deploy_teardown() {
	if [ -n "${SOCAT_PID:-}" ]; then
		kill "$SOCAT_PID" 2>/dev/null || true
		wait "$SOCAT_PID" 2>/dev/null || true
	fi
	apiserver_stop
	stop_git_servers
}

# deploy_repo: $TMP/srv/octo/repo.git (bare, branch main) whose
# .ci/workflow.yaml is an Argo Workflow with generateName; sets REV.
deploy_repo() {
	local w=$TMP/work
	mkdir -p "$w/.ci" "$TMP/srv/octo"
	cat >"$w/.ci/workflow.yaml" <<-'EOF'
	apiVersion: argoproj.io/v1alpha1
	kind: Workflow
	metadata:
	  generateName: ci-hello-
	spec:
	  entrypoint: build
	  templates:
	  - name: build
	    container:
	      image: golang:1.22
	      command: ["go", "version"]
	EOF
	git_quiet init -q -b main "$w"
	git_quiet -C "$w" add -A
	git_quiet -C "$w" commit -q -m workflow
	git_quiet clone -q --bare "$w" "$TMP/srv/octo/repo.git"
	REV=$(git_quiet -C "$w" rev-parse HEAD)
	export REV
}

# deploy_payload: $TMP/push.json, the fixture push made to point at REV of
# octo/repo on main.
deploy_payload() {
	jq --arg r "$REV" '.after = $r | .ref = "refs/heads/main" |
		.repository.full_name = "octo/repo" | .repository.name = "repo"' \
		"$FIXTURES/github/push-payload.json" >"$TMP/push.json"
}

# deploy_env [LINE...]: $TMP/kwh.env for the handler: the secret, the cache,
# the local remote, the test API server's kubeconfig (when one runs), the
# log in $TMP/log; extra lines appended.  Exports KWH_ENV_FILE.
deploy_env() {
	printf '%s\n' "$SECRET_VALUE" >"$TMP/secret"
	chmod 600 "$TMP/secret"
	{
		echo "# written by deploy_env"
		echo "KWH_SECRET_FILE=$TMP/secret"
		echo "KWH_CACHE=$TMP/cache"
		echo "KWH_REMOTE=file://$TMP/srv/{full_name}.git"
		[ -z "${APISERVER_DIR:-}" ] || echo "KWH_KUBECONFIG=$APISERVER_DIR/kubeconfig"
		echo "KWH_NAMESPACE=ci"
		echo "KWH_LOG=$TMP/log"
		printf '%s\n' "$@"
	} >"$TMP/kwh.env"
	KWH_ENV_FILE=$TMP/kwh.env
	export KWH_ENV_FILE
}

# signed_request [DELIVERY [SECRETFILE]]: $TMP/req, the raw signed HTTP
# request of $TMP/push.json.
signed_request() {
	kwh-sign --secret-file "${2:-$TMP/secret}" --event push --delivery "${1:-d-1}" \
		"$TMP/push.json" >"$TMP/req"
}

# post_push PORT [DELIVERY [SECRETFILE]]: POSTs $TMP/push.json, signed, with
# curl; sets CODE and BODY.
post_push() {
	local sig
	sig=$(sig_of "$TMP/push.json" "${3:-$TMP/secret}")
	CODE=$(curl -sS --max-time 15 -o "$TMP/body" -w '%{http_code}' \
		-H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
		-H "X-GitHub-Delivery: ${2:-d-1}" -H "X-Hub-Signature-256: $sig" \
		--data-binary @"$TMP/push.json" "http://127.0.0.1:$1/")
	BODY=$(cat "$TMP/body")
}

# need_chain: skips the test when a stage of the chain is not built.
need_chain() {
	local t
	for t in kwh-verify kwh-annotate kwh-fetch kwh-apply kwh-respond kwh-sign; do
		[ -x "$KWH_BIN/$t" ] || skip "$t is not built in $KWH_BIN"
	done
}

# one_http_response FILE: FILE holds exactly one well-formed HTTP/1.1
# response: a status line, headers, a blank line and exactly Content-Length
# bytes of body, nothing before or after.
one_http_response() {
	local f=$1 head len total hlen
	head -n 1 "$f" | grep -Eq '^HTTP/1\.1 [1-5][0-9][0-9] .*'$'\r''$' ||
		{ echo "not a status line: $(head -n 1 "$f" | od -c | head -3)" >&2; return 1; }
	head=$(sed -n '1,/^\r$/p' "$f")
	len=$(printf '%s\n' "$head" | tr -d '\r' | sed -n 's/^Content-Length: //Ip')
	[ -n "$len" ] || { echo "no Content-Length" >&2; return 1; }
	hlen=$(sed -n '1,/^\r$/p' "$f" | wc -c)
	total=$(wc -c <"$f")
	[ "$total" -eq $((hlen + len)) ] ||
		{ echo "size $total is not header $hlen + body $len" >&2; cat -A "$f" >&2; return 1; }
}
