# Helpers for tests that talk to the test Kubernetes API server
# (tests/k8s-apiserver, documented in tests/k8s-apiserver.md).
# Sourced by tests/test_helper.bash.
#
# Contract (APISERVER_PYTHON: the interpreter, see below):
#   apiserver_start [SERVER ARGS...]
#       Makes a CA, server and client certificates (tests/lib/mkcerts.sh) in a
#       fresh per-test directory, starts the server on 127.0.0.1 (a free port)
#       in the background and returns once it accepts connections.  Exports
#         APISERVER_URL    https://127.0.0.1:PORT
#         APISERVER_PORT   PORT
#         APISERVER_DIR    the directory: ca.crt ca.key server.* client.crt
#                          client.key other-ca.crt, token, kubeconfig,
#                          kubeconfig-cert, server.log
#         APISERVER_TOKEN  a random bearer token (also in $APISERVER_DIR/token),
#                          authenticating as system:serviceaccount:ci:kwh
#         APISERVER_CA     $APISERVER_DIR/ca.crt
#         APISERVER_PID    the server's process id
#       $APISERVER_DIR/kubeconfig authenticates with the token,
#       $APISERVER_DIR/kubeconfig-cert with the client certificate
#       (user kwh-client); both have a context whose namespace is `ci`.
#       Extra arguments go to the server (e.g. --forbid USER:VERB:NS,
#       --crd G/V/Kind/plural/Namespaced, --plain-http).
#   apiserver_stop
#       Stops the server (SIGTERM, then waits).  Safe to call when none runs.
#       EVERY test file that calls apiserver_start must call it from teardown:
#           teardown() { apiserver_stop; }
#       bats runs teardown even when the test fails, so nothing is left behind.
#   apiserver_requests      prints the request log (a JSON array)
#   apiserver_clear_requests
#   apiserver_connections   prints how many connections carried logged requests
#   apiserver_objects       prints every stored object (a JSON array)
#   apiserver_fault JSON    injects a fault, e.g. '{"count":2,"status":503,"retry_after":1}'
#   apiserver_control METHOD PATH [JSON]   any /_test/ control call
#   apiserver_kubectl ARGS...  kubectl with $APISERVER_DIR/kubeconfig and a
#       per-server discovery cache ($KUBECONFIG_FILE overrides the kubeconfig).

# The interpreter: Debian's /usr/bin/python3 when there is one (a version
# manager's `python3` shim can take seconds to start on a loaded machine),
# else python3 from PATH; APISERVER_PYTHON overrides.
if [ -z "${APISERVER_PYTHON:-}" ]; then
	if [ -x /usr/bin/python3 ]; then APISERVER_PYTHON=/usr/bin/python3; else APISERVER_PYTHON=python3; fi
fi

apiserver_start() {
	APISERVER_DIR=$(mktemp -d "${BATS_TEST_TMPDIR:-/tmp}/apiserver.XXXXXX")
	_apiserver_pki || return 1
	cp "$_APISERVER_PKI"/*.crt "$_APISERVER_PKI"/*.key "$APISERVER_DIR/" || return 1
	APISERVER_CA=$APISERVER_DIR/ca.crt
	APISERVER_TOKEN=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
	printf '%s\n' "$APISERVER_TOKEN" >"$APISERVER_DIR/token"
	rm -f "$APISERVER_DIR/port"
	# -S: the server needs only the standard library; skipping site makes
	# start-up twice as fast on hosts with many .pth files
	"$APISERVER_PYTHON" -S "$TESTS_DIR/k8s-apiserver" --port 0 --port-file "$APISERVER_DIR/port" \
		--cert "$APISERVER_DIR/server.crt" --key "$APISERVER_DIR/server.key" \
		--client-ca "$APISERVER_CA" --token-file "$APISERVER_DIR/token" "$@" \
		>"$APISERVER_DIR/server.log" 2>&1 </dev/null 3>&- &
	APISERVER_PID=$!
	export APISERVER_DIR APISERVER_CA APISERVER_TOKEN APISERVER_PID
	local n=200
	while [ ! -s "$APISERVER_DIR/port" ]; do
		if ! kill -0 "$APISERVER_PID" 2>/dev/null; then
			echo "k8s-apiserver exited:" >&2
			cat "$APISERVER_DIR/server.log" >&2
			unset APISERVER_PID
			return 1
		fi
		n=$((n - 1))
		if [ "$n" -le 0 ]; then
			echo "k8s-apiserver did not start" >&2
			return 1
		fi
		sleep 0.05
	done
	APISERVER_PORT=$(cat "$APISERVER_DIR/port")
	local scheme=https
	case " $* " in *" --plain-http "*) scheme=http ;; esac
	APISERVER_URL=$scheme://127.0.0.1:$APISERVER_PORT
	export APISERVER_PORT APISERVER_URL
	wait_port "$APISERVER_PORT" || return 1
	write_kubeconfig "$APISERVER_DIR/kubeconfig" "    token: $APISERVER_TOKEN"
	write_kubeconfig "$APISERVER_DIR/kubeconfig-cert" "    client-certificate: $APISERVER_DIR/client.crt
    client-key: $APISERVER_DIR/client.key"
}

# The certificates are made once per bats run (mkcerts.sh is idempotent; the
# directory appears atomically, so parallel tests do not see half of it) and
# copied into each test's directory, which tests may then change freely.
_apiserver_pki() {
	_APISERVER_PKI=${BATS_RUN_TMPDIR:-${TMPDIR:-/tmp}}/apiserver-pki
	[ -s "$_APISERVER_PKI/other-client.crt" ] && return 0
	local tmp
	tmp=$(mktemp -d "$_APISERVER_PKI.XXXXXX") || return 1
	"$TESTS_DIR/lib/mkcerts.sh" "$tmp" || return 1
	mv -T "$tmp" "$_APISERVER_PKI" 2>/dev/null || rm -rf "$tmp"
	[ -s "$_APISERVER_PKI/other-client.crt" ]
}

# write_kubeconfig FILE USER-YAML [CLUSTER-EXTRA-YAML]: a kubeconfig for
# the test server with the given user section (indented 4 spaces) and,
# by default, the CA as a file.
write_kubeconfig() {
	local file=$1 user=$2 cluster=${3:-"    certificate-authority: $APISERVER_CA"}
	cat >"$file" <<-EOC
	apiVersion: v1
	kind: Config
	clusters:
	- name: test
	  cluster:
	    server: $APISERVER_URL
	$cluster
	users:
	- name: test
	  user:
	$user
	contexts:
	- name: test
	  context:
	    cluster: test
	    user: test
	    namespace: ci
	current-context: test
	EOC
}

apiserver_stop() {
	[ -n "${APISERVER_PID:-}" ] || return 0
	kill -TERM "$APISERVER_PID" 2>/dev/null || true
	local n=100
	while kill -0 "$APISERVER_PID" 2>/dev/null && [ "$n" -gt 0 ]; do
		sleep 0.05
		n=$((n - 1))
	done
	kill -KILL "$APISERVER_PID" 2>/dev/null || true
	wait "$APISERVER_PID" 2>/dev/null || true
	unset APISERVER_PID
}

# apiserver_control METHOD PATH [JSON]
apiserver_control() {
	local args=(-sS --fail-with-body --max-time 10 -X "$1")
	case "$APISERVER_URL" in https:*) args+=(--cacert "$APISERVER_CA") ;; esac
	[ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
	curl "${args[@]}" "$APISERVER_URL$2"
}

apiserver_requests() { apiserver_control GET /_test/requests; }
apiserver_clear_requests() { apiserver_control DELETE /_test/requests >/dev/null; }
apiserver_connections() { apiserver_control GET /_test/connections | jq .connections; }
apiserver_objects() { apiserver_control GET /_test/objects; }
apiserver_fault() { apiserver_control POST /_test/faults "$1" >/dev/null; }

apiserver_kubectl() {
	kubectl --kubeconfig "${KUBECONFIG_FILE:-$APISERVER_DIR/kubeconfig}" \
		--cache-dir "$APISERVER_DIR/kube-cache" "$@"
}

# uids: the uids of the stored objects, a JSON array.
uids() {
	apiserver_objects | jq -c '[.[].metadata.uid]'
}

# new_objects UIDS: the objects stored since uids printed UIDS, minus what
# the server makes up per object.
new_objects() {
	apiserver_objects | jq -S --argjson old "$1" '[.[] |
		select(.metadata.uid as $u | $old | index($u) | not) |
		del(.metadata.name, .metadata.uid, .metadata.creationTimestamp,
		    .metadata.resourceVersion, .metadata.generation, .metadata.managedFields)]'
}
