#!/usr/bin/env bats
# kwh-apply against the test API server: what kwh-apply(1) promises about
# TLS names and --dedupe that no other test pinned (issue 14, point 7).
# Each test here was seen to fail on a build broken on purpose; the commit
# that added it names the breakage.

load test_helper
load "$FIXTURES/apply/apply"

setup() {
	setup_tmp
	export HOME=$TMP KUBECONFIG= KUBERNETES_SERVICE_HOST= KUBERNETES_SERVICE_PORT=
	apply_envelope "$FIXTURES/apply/workflow.json" >"$TMP/in"
}

teardown() {
	apiserver_stop
}

# server_cert NAME SAN: a server certificate and key $TMP/NAME.{crt,key}
# for SAN, signed by the test CA (the one the kubeconfigs trust).
server_cert() {
	_apiserver_pki || return 1	# the run's CA, which apiserver_start copies
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/$1.key" 2>/dev/null
	openssl req -new -key "$TMP/$1.key" -subj "/CN=${2#*:}" -out "$TMP/$1.csr" 2>/dev/null
	printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$2" >"$TMP/$1.ext"
	openssl x509 -req -in "$TMP/$1.csr" -CA "$_APISERVER_PKI/ca.crt" -CAkey "$_APISERVER_PKI/ca.key" -CAcreateserial \
		-CAserial "$TMP/$1.srl" -days 2 -extfile "$TMP/$1.ext" -out "$TMP/$1.crt" 2>/dev/null
}

# kubeconfig_for HOST FILE: the token kubeconfig, its server named HOST.
kubeconfig_for() {
	sed "s|server: https://127.0.0.1:|server: https://$1:|" "$APISERVER_DIR/kubeconfig" >"$2"
}

# control_as NAME PATH: a control endpoint of the test server, reached under
# NAME (which its certificate must name).  jq 1.6's -e passes on empty
# input, so the callers check curl's status, not only jq's.
control_as() {
	curl -sS --fail-with-body --max-time 10 --cacert "$APISERVER_CA" \
		--resolve "$1:$APISERVER_PORT:127.0.0.1" "https://$1:$APISERVER_PORT$2"
}

# apply_with KUBECONFIG: kwh-apply of $TMP/in; output in $output.
apply_with() {
	run --separate-stderr kwh-apply --kubeconfig "$1" --cache "$TMP/cache" --deadline 5 --log none <"$TMP/in"
}

@test "the API server's certificate must name the host: same CA, another name is refused (502, nothing sent)" {
	server_cert other DNS:apiserver.invalid,IP:127.0.0.2
	apiserver_start --cert "$TMP/other.crt" --key "$TMP/other.key"
	# The certificate is good, and from the CA the kubeconfig trusts: under
	# its own name it is accepted.
	curl -sS --fail --max-time 10 --cacert "$APISERVER_CA" \
		--resolve "apiserver.invalid:$APISERVER_PORT:127.0.0.1" \
		"https://apiserver.invalid:$APISERVER_PORT/version" | jq -e .gitVersion
	for host in 127.0.0.1 localhost; do
		kubeconfig_for $host "$TMP/kc-$host"
		apply_with "$TMP/kc-$host"
		assert_failure 1
		echo "$output" | jq -e '.response.status == 502 and .response.stage == "kwh-apply" and
			((.results // []) | length == 0)' || { echo "$output"; return 1; }
	done
	# nothing but the check above reached the server
	run -0 control_as apiserver.invalid /_test/requests
	jq -e 'map(select(.path != "/version")) | length == 0' <<<"$output"
	run -0 control_as apiserver.invalid /_test/objects
	jq -e 'length == 0' <<<"$output"
}

@test "a certificate for localhost only: refused at 127.0.0.1, accepted at localhost" {
	server_cert lh DNS:localhost
	apiserver_start --cert "$TMP/lh.crt" --key "$TMP/lh.key"
	kubeconfig_for 127.0.0.1 "$TMP/kc-ip"
	apply_with "$TMP/kc-ip"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 502' || { echo "$output"; return 1; }
	run -0 control_as localhost /_test/objects
	jq -e 'length == 0' <<<"$output"
	kubeconfig_for localhost "$TMP/kc-name"
	apply_with "$TMP/kc-name"
	assert_success
	echo "$output" | jq -e '(.response | not) and .results[0].action == "created"' || { echo "$output"; return 1; }
	run -0 control_as localhost /_test/objects
	jq -e 'length == 1 and .[0].kind == "Workflow"' <<<"$output"
}

# dedupe_apply: kwh-apply --dedupe of $TMP/in against the test server.
dedupe_apply() {
	run --separate-stderr kwh_apply --dedupe --deadline 5 --log none <"$TMP/in"
}

@test "--dedupe: a 409 whose reason is not AlreadyExists is an error, not an existing object" {
	apiserver_start
	conflict='{"status":409,"method":"POST","path":"/apis/argoproj.io/"}'
	# Nothing there yet: the Conflict is refused, nothing created.
	apiserver_fault "$conflict"
	dedupe_apply
	assert_failure 1
	echo "$output" | jq -e '.response.status == 422 and .response.stage == "kwh-apply" and
		([.results[]? | select(.action == "exists" or .action == "created")] | length == 0)' ||
		{ echo "$output"; return 1; }
	apiserver_requests | jq -e '[.[] | select(.method == "POST")] | length == 1 and
		.[0].status == 409 and .[0].fault != null'
	apiserver_objects | jq -e 'length == 0'
	# The delivery's object created, then the same delivery again
	# answered 409 Conflict: still an error, although the object exists.
	dedupe_apply
	assert_success
	name=$(echo "$output" | jq -r '.results[0] | select(.action == "created") | .name')
	[ -n "$name" ]
	apiserver_fault "$conflict"
	dedupe_apply
	assert_failure 1
	echo "$output" | jq -e '.response.status == 422 and
		([.results[]? | select(.action == "exists")] | length == 0)' || { echo "$output"; return 1; }
	# Control: without the fault the redelivery finds its object (exists).
	dedupe_apply
	assert_success
	echo "$output" | jq -e --arg n "$name" '(.response | not) and .results[0].action == "exists" and
		.results[0].name == $n' || { echo "$output"; return 1; }
	apiserver_objects | jq -e 'length == 1'
}
