# Helpers for the kwh tools' tests (sourced by test_helper.bash).

# secret_file NAME VALUE: writes VALUE (and a newline) to $TMP/NAME.
secret_file() {
	printf '%s\n' "$2" > "$TMP/$1"
	chmod 600 "$TMP/$1"
}

# http_status FILE: the status code of the HTTP response in FILE.
http_status() {
	head -n 1 "$1" | awk '{ print $2 }'
}

# http_body FILE: the body of the HTTP response in FILE.
http_body() {
	sed '1,/^\r$/d' "$1"
}

# respond_to ENVELOPE_FILE OUT: runs kwh-respond, response to OUT.
respond_to() {
	kwh-respond < "$1" > "$2" 2>/dev/null || true
}

# verify_and_respond REQUEST_FILE [verify options...]: runs
# kwh-verify < REQUEST | kwh-respond into $TMP/env, $TMP/resp, $TMP/log
# and sets STATUS (HTTP status) and MESSAGE (the body's message).
verify_and_respond() {
	local req=$1; shift
	kwh-verify "$@" < "$req" > "$TMP/env" 2> "$TMP/log" && VERIFY_RC=0 || VERIFY_RC=$?
	kwh-respond < "$TMP/env" > "$TMP/resp" 2>> "$TMP/log" || true
	STATUS=$(http_status "$TMP/resp")
	MESSAGE=$(http_body "$TMP/resp" | jq -r .message)
}

# sig_of FILE SECRETFILE: the sha256=… signature kwh-sign computes.
sig_of() {
	kwh-sign --secret-file "$2" "$1" | tr -d '\r' | sed -n 's/^X-Hub-Signature-256: //p'
}

# ci_repo DIR: a git repository (branch main) whose .ci/workflow.yaml is an
# Argo Workflow with generateName "ci-" and its own annotation
# owner: platform; sets REV to its commit.
ci_repo() {
	git init -q -b main "$1"
	mkdir -p "$1/.ci"
	cat > "$1/.ci/workflow.yaml" <<-'EOY'
	apiVersion: argoproj.io/v1alpha1
	kind: Workflow
	metadata:
	  generateName: ci-
	  annotations:
	    owner: platform
	spec:
	  entrypoint: main
	  templates:
	  - name: main
	    container: {image: "alpine:3.20", command: [echo, hello]}
	EOY
	git -C "$1" add .ci
	git -C "$1" -c user.name=t -c user.email=t@example.com commit -q -m ci
	REV=$(git -C "$1" rev-parse HEAD)
}

# ci_push URL: the push fixture made to push REV to main of URL (stdout).
ci_push() {
	jq --arg rev "$REV" --arg url "$1" \
		'.after = $rev | .ref = "refs/heads/main" | .repository.clone_url = $url' \
		"$FIXTURES/github/push-payload.json"
}

# push_payload REF URL: the push fixture at $REV on REF from URL, as octo/repo
# (the handler tests).
push_payload() {
	jq --arg rev "$REV" --arg ref "$1" --arg url "$2" \
		'.after = $rev | .ref = $ref | .repository.clone_url = $url |
		 .repository.full_name = "octo/repo" | .repository.name = "repo" |
		 .repository.owner.login = "octo"' "$FIXTURES/github/push-payload.json"
}

# handler_setup SECRET: what the handler tests (tests/6000, 6001) start
# from: the test API server, a repository with a Workflow, the secrets
# "secret" (SECRET) and "other", a push of it in $TMP/push.json, and each
# stage's options (kwh-handle takes them all) in VOPTS, AOPTS, FOPTS, POPTS
# (POPTS with --no-dedupe).
handler_setup() {
	export HOME=$TMP
	apiserver_start
	ci_repo "$TMP/repo"
	secret_file secret "$1"
	secret_file other not-the-secret
	push_payload refs/heads/main "file://$TMP/repo" >"$TMP/push.json"
	VOPTS=(--secret-file "$TMP/secret")
	AOPTS=()
	FOPTS=(--cache "$TMP/cache" --allow-remote-host file://)
	# --no-dedupe: these tests send one push many times (and to the chain and
	# kwh-handle in turn) and count a creation for each; the default,
	# deduplication, is tested in tests/3007 and tests/6003
	POPTS=(--kubeconfig "$APISERVER_DIR/kubeconfig" --cache "$TMP/cache" --no-dedupe)
}

# spool_file DIR DELIVERY: the path of the one file DIR holds for DELIVERY:
# DELIVERY-<16 hex digits of the digest>.json, or DELIVERY.json for an
# envelope without a digest.  Fails when there is none, or more than one.
spool_file() {
	local x out=()
	for x in "$1/$2"-????????????????.json "$1/$2".json; do
		[ ! -f "$x" ] || out+=("$x")
	done
	[ "${#out[@]}" -eq 1 ] || { echo "$2: ${#out[@]} spool files in $1: $(ls -A "$1")" >&2; return 1; }
	printf '%s\n' "${out[0]}"
}

# not_spooled DIR DELIVERY: DIR holds no file for DELIVERY.
not_spooled() {
	local x
	for x in "$1/$2"-????????????????.json "$1/$2".json; do
		[ ! -e "$x" ] || { echo "$x is spooled" >&2; return 1; }
	done
}

# assert_log_has TEXT: the last `run --separate-stderr` logged TEXT on stderr
# (a stage's details that the sender is not told).
assert_log_has() {
	[[ "$stderr" == *"$1"* ]] && return 0
	printf 'the log does not hold: %s\nstderr: %s\n' "$1" "$stderr" >&2
	return 1
}

# post FILE EVENT DELIVERY [SECRET]: curl POSTs FILE, signed with
# $TMP/SECRET (default "secret"), to kwh-handle --listen on $PORT; prints
# the HTTP status, the body goes to $TMP/listen.body (tests/6001, 6010, 7003).
post() {
	local sig
	sig=$(sig_of "$1" "$TMP/${4:-secret}")
	curl -sS --max-time 30 -o "$TMP/listen.body" -w '%{http_code}' \
		-H 'Content-Type: application/json' -H "X-GitHub-Event: $2" \
		-H "X-GitHub-Delivery: $3" -H "X-Hub-Signature-256: $sig" \
		--data-binary @"$1" "http://127.0.0.1:$PORT/"
}

# wait_for CMD...: runs CMD every 0.1 s until it succeeds (20 s at most),
# for what a process does after its answer (tests/6006, 7003).
wait_for() {
	local n=200
	until "$@" 2>/dev/null; do
		[ $n -gt 0 ] || { echo "never true: $*" >&2; return 1; }
		sleep 0.1
		n=$((n - 1))
	done
}

# GENERIC_FETCH_FAILURE: what the sender is told when fetching failed.
GENERIC_FETCH_FAILURE="fetching the repository failed; see the log for delivery"
