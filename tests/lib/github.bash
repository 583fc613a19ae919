# Helpers for tests that talk to the test GitHub API server
# (tests/github-apiserver, documented in tests/github-apiserver.md).
# Sourced by tests/test_helper.bash.
#
# Contract (the interpreter is APISERVER_PYTHON, see tests/lib/apiserver.bash):
#   github_start [SERVER ARGS...]
#       Starts the server on 127.0.0.1 (a free port, HTTPS with the test CA
#       of tests/lib/mkcerts.sh) with a personal token and a GitHub App
#       (id 4242, a fresh RSA key) and returns once it accepts connections.
#       Exports
#         GITHUB_URL     https://127.0.0.1:PORT
#         GITHUB_DIR     the directory: ca.crt server.*, token, app.pem
#                        (the App's private key, mode 0600), app.pub, server.log
#         GITHUB_CA      $GITHUB_DIR/ca.crt
#         GITHUB_TEST_TOKEN  the personal token (also in $GITHUB_DIR/token)
#         GITHUB_APP_ID  4242
#         GITHUB_PID     the server's process id
#       Extra arguments go to the server (e.g. --installation 77, --token-ttl 120).
#   github_stop     stops it; EVERY file that calls github_start calls it from teardown.
#   github_control METHOD PATH [JSON]   any /_test/ control call
#   github_requests     the request log (a JSON array; credentials redacted)
#   github_state        statuses, check runs, installation tokens issued, redeliveries
#   github_fault JSON   e.g. '{"count":1,"status":429,"retry_after":1}'
#   github_check        checks every logged request and answer against the
#                       OpenAPI operations in tests/fixtures/github-openapi

github_start() {
	GITHUB_DIR=$(mktemp -d "${BATS_TEST_TMPDIR:-/tmp}/github.XXXXXX")
	_apiserver_pki || return 1
	cp "$_APISERVER_PKI"/ca.crt "$_APISERVER_PKI"/server.* "$GITHUB_DIR/" || return 1
	GITHUB_CA=$GITHUB_DIR/ca.crt
	GITHUB_TEST_TOKEN=ghp_$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
	printf '%s\n' "$GITHUB_TEST_TOKEN" >"$GITHUB_DIR/token"
	chmod 600 "$GITHUB_DIR/token"
	GITHUB_APP_ID=4242
	(umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
		-out "$GITHUB_DIR/app.pem" 2>/dev/null) || return 1
	openssl pkey -in "$GITHUB_DIR/app.pem" -pubout -out "$GITHUB_DIR/app.pub" 2>/dev/null || return 1
	"$APISERVER_PYTHON" -S "$TESTS_DIR/github-apiserver" --port 0 --port-file "$GITHUB_DIR/port" \
		--cert "$GITHUB_DIR/server.crt" --key "$GITHUB_DIR/server.key" \
		--token-file "$GITHUB_DIR/token" --app-id "$GITHUB_APP_ID" \
		--app-public-key "$GITHUB_DIR/app.pub" "$@" \
		>"$GITHUB_DIR/server.log" 2>&1 </dev/null 3>&- &
	GITHUB_PID=$!
	export GITHUB_DIR GITHUB_CA GITHUB_TEST_TOKEN GITHUB_APP_ID GITHUB_PID
	local n=200
	while [ ! -s "$GITHUB_DIR/port" ]; do
		if ! kill -0 "$GITHUB_PID" 2>/dev/null; then
			echo "github-apiserver exited:" >&2
			cat "$GITHUB_DIR/server.log" >&2
			unset GITHUB_PID
			return 1
		fi
		n=$((n - 1))
		[ "$n" -gt 0 ] || { echo "github-apiserver did not start" >&2; return 1; }
		sleep 0.05
	done
	GITHUB_PORT=$(cat "$GITHUB_DIR/port")
	GITHUB_URL=https://127.0.0.1:$GITHUB_PORT
	case " $* " in *" --plain-http "*) GITHUB_URL=http://127.0.0.1:$GITHUB_PORT ;; esac
	export GITHUB_PORT GITHUB_URL
	wait_port "$GITHUB_PORT"
}

github_stop() {
	[ -n "${GITHUB_PID:-}" ] || return 0
	kill -TERM "$GITHUB_PID" 2>/dev/null || true
	local n=100
	while kill -0 "$GITHUB_PID" 2>/dev/null && [ "$n" -gt 0 ]; do
		sleep 0.05
		n=$((n - 1))
	done
	kill -KILL "$GITHUB_PID" 2>/dev/null || true
	wait "$GITHUB_PID" 2>/dev/null || true
	unset GITHUB_PID
}

github_control() {
	local args=(-sS --fail-with-body --max-time 10 -X "$1")
	case "$GITHUB_URL" in https:*) args+=(--cacert "$GITHUB_CA") ;; esac
	[ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
	curl "${args[@]}" "$GITHUB_URL$2"
}

github_requests() { github_control GET /_test/requests; }
github_state() { github_control GET /_test/state; }
github_fault() { github_control POST /_test/faults "$1" >/dev/null; }
github_check() {
	github_requests >"$GITHUB_DIR/requests.json" &&
	"$APISERVER_PYTHON" -S "$TESTS_DIR/github-openapi-check" \
		"$TESTS_DIR/fixtures/github-openapi/operations.json" "$GITHUB_DIR/requests.json"
}
