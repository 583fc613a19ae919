#!/usr/bin/env bats
# kwh-apply configuration: kubeconfig variants, KUBECONFIG merge,
# --context, exec credential plugins, in-cluster service accounts.

load test_helper
load "$FIXTURES/apply/apply"

setup() {
	setup_tmp
	export HOME=$TMP KUBECONFIG= KUBERNETES_SERVICE_HOST= KUBERNETES_SERVICE_PORT=
	A=$FIXTURES/apply
	apiserver_start
	apply_envelope "$A/workflow.json" >"$TMP/in"
	CA64=$(base64 -w0 "$APISERVER_CA")
}

teardown() {
	apiserver_stop
}

# created_with ARGS...: kwh-apply ARGS succeeds and creates the Workflow
# (--no-dedupe: each call creates one, with the same envelope)
created_with() {
	run --separate-stderr kwh-apply --cache "$TMP/cache" --no-dedupe --log none "$@" <"$TMP/in"
	assert_success
	echo "$output" | jq -e '.results[0].action == "created"'
}

@test "certificate-authority-data and token" {
	write_kubeconfig "$TMP/kc" "    token: $APISERVER_TOKEN" "    certificate-authority-data: $CA64"
	created_with --kubeconfig "$TMP/kc"
	apiserver_requests | jq -e 'map(select(.method == "POST"))[0] | .auth == "Bearer" and .user == "system:serviceaccount:ci:kwh"'
}

@test "client certificate and key, as files and as data" {
	created_with --kubeconfig "$APISERVER_DIR/kubeconfig-cert"
	write_kubeconfig "$TMP/kc" "    client-certificate-data: $(base64 -w0 "$APISERVER_DIR/client.crt")
    client-key-data: $(base64 -w0 "$APISERVER_DIR/client.key")"
	created_with --kubeconfig "$TMP/kc"
	apiserver_requests | jq -e 'map(select(.method == "POST")) | length == 2 and all(.user == "kwh-client" and .auth == null)'
}

@test "a client certificate from another CA is not accepted: 502 (or 503/504), nothing created" {
	write_kubeconfig "$TMP/kc" "    client-certificate: $APISERVER_DIR/other-client.crt
    client-key: $APISERVER_DIR/other-client.key"
	run --separate-stderr kwh-apply --kubeconfig "$TMP/kc" --cache "$TMP/cache" --log none <"$TMP/in"
	assert_failure 1
	# Usually the server's TLS alert reaches curl and it is named: 502.  With
	# TLS 1.3 the refusal comes after the handshake, and on a slow machine
	# curl sometimes sees only a broken connection (SSL_write "bad write
	# retry", getpeername ENOTCONN), which it cannot tell from a network
	# failure: retried, then 503, or 504 when the deadline passes during an
	# attempt (seen under ASan).  Either way nothing is created.
	echo "$output" | jq -e '.response.status | . == 502 or . == 503 or . == 504' || { echo "$output"; return 1; }
	echo "$output" | jq -e '.response.message | test("certificate|SSL|TLS|connection")' || { echo "$output"; return 1; }
	apiserver_objects | jq -e 'length == 0'
}

@test "tokenFile and certificate-authority relative to the kubeconfig's directory" {
	mkdir "$TMP/conf"
	cp "$APISERVER_DIR/token" "$TMP/conf/tok"
	cp "$APISERVER_CA" "$TMP/conf/ca.pem"
	write_kubeconfig "$TMP/conf/kc" "    tokenFile: tok" "    certificate-authority: ca.pem"
	cd "$TMP"
	created_with --kubeconfig conf/kc
}

@test "exec plugin (v1) giving a token: args, env and KUBERNETES_EXEC_INFO passed" {
	write_kubeconfig "$TMP/kc" "    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: $A/exec-plugin.sh
      args: [token, $APISERVER_DIR/token]
      env:
      - name: PLUGIN_SEEN
        value: $TMP/seen
      interactiveMode: Never"
	created_with --kubeconfig "$TMP/kc"
	sed -n 1p "$TMP/seen" | jq -e '.apiVersion == "client.authentication.k8s.io/v1" and .kind == "ExecCredential" and .spec.interactive == false'
	[ "$(sed -n 2p "$TMP/seen")" = "token $APISERVER_DIR/token" ]
	[[ $stderr != *"$APISERVER_TOKEN"* && $output != *"$APISERVER_TOKEN"* ]]
}

@test "exec plugin (v1beta1) giving a client certificate, found on PATH" {
	mkdir "$TMP/bin"
	cp "$A/exec-plugin.sh" "$TMP/bin/kwh-test-cred"
	write_kubeconfig "$TMP/kc" "    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: kwh-test-cred
      args: [cert, $APISERVER_DIR/client.crt, $APISERVER_DIR/client.key]
      env: [{name: PLUGIN_API, value: client.authentication.k8s.io/v1beta1}]"
	PATH=$TMP/bin:$PATH created_with --kubeconfig "$TMP/kc"
	apiserver_requests | jq -e 'map(select(.method == "POST"))[0].user == "kwh-client"'
}

@test "exec plugin whose token gets 401: run again once, then 502" {
	printf 'not-a-known-token\n' >"$TMP/tok"
	write_kubeconfig "$TMP/kc" "    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: $A/exec-plugin.sh
      args: [token, $TMP/tok]
      env: [{name: PLUGIN_RUNS, value: $TMP/runs}]"
	run --separate-stderr kwh-apply --kubeconfig "$TMP/kc" --cache "$TMP/cache" --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 502' || { echo "$output"; return 1; }
	echo "$output" | jq -r .response.message | grep -F 'refused our credentials'
	[ "$(wc -l <"$TMP/runs")" = 2 ]
	apiserver_requests | jq -e '[.[] | .status] | length >= 2 and all(. == 401)'
}

@test "exec plugin failing: 502 with its message" {
	write_kubeconfig "$TMP/kc" "    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: $A/exec-plugin.sh
      args: [fail]"
	run --separate-stderr kwh-apply --kubeconfig "$TMP/kc" --cache "$TMP/cache" --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 502' || { echo "$output"; return 1; }
	echo "$output" | jq -r .response.message | grep -F 'no credentials for you'
}

@test "KUBECONFIG lists merge as kubectl merges them: first definition wins, missing files skipped" {
	cat >"$TMP/a" <<-EOC
	apiVersion: v1
	kind: Config
	clusters:
	- name: test
	  cluster: {server: "$APISERVER_URL", certificate-authority-data: "$CA64"}
	current-context: test
	EOC
	port=$(free_port)
	cat >"$TMP/b" <<-EOC
	{"apiVersion": "v1", "kind": "Config", "current-context": "elsewhere",
	 "clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:$port"}}],
	 "users": [{"name": "test", "user": {"token": "$APISERVER_TOKEN"}}],
	 "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": "merged"}}]}
	EOC
	KUBECONFIG=$TMP/missing:$TMP/a:$TMP/b created_with
	echo "$output" | jq -e '.results[0].namespace == "merged"'
}

@test "--context chooses another context than current-context" {
	cat >"$TMP/kc" <<-EOC
	apiVersion: v1
	kind: Config
	clusters: [{name: test, cluster: {server: "$APISERVER_URL", certificate-authority: "$APISERVER_CA"}}]
	users:
	- {name: good, user: {token: "$APISERVER_TOKEN"}}
	- {name: bad, user: {token: wrong}}
	contexts:
	- {name: broken, context: {cluster: test, user: bad}}
	- {name: working, context: {cluster: test, user: good, namespace: chosen}}
	current-context: broken
	EOC
	run --separate-stderr kwh-apply --kubeconfig "$TMP/kc" --cache "$TMP/cache" --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 502' || { echo "$output"; return 1; }
	created_with --kubeconfig "$TMP/kc" --context working
	echo "$output" | jq -e '.results[0].namespace == "chosen"'
	run --separate-stderr kwh-apply --kubeconfig "$TMP/kc" --context nope <"$TMP/in"
	assert_failure 111
	[[ $stderr == *"nope"* ]]
}

@test "~/.kube/config is read when nothing else is given" {
	mkdir "$HOME/.kube"
	cp "$APISERVER_DIR/kubeconfig" "$HOME/.kube/config"
	created_with
}

@test "in-cluster: service account token, CA and namespace files" {
	mkdir "$TMP/sa"
	cp "$APISERVER_DIR/token" "$TMP/sa/token"
	cp "$APISERVER_CA" "$TMP/sa/ca.crt"
	echo in-cluster-ns >"$TMP/sa/namespace"
	KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=$APISERVER_PORT \
		created_with --service-account-dir "$TMP/sa"
	echo "$output" | jq -e '.results[0].namespace == "in-cluster-ns"'
	apiserver_requests | jq -e 'map(select(.method == "POST"))[0].path == "/apis/argoproj.io/v1alpha1/namespaces/in-cluster-ns/workflows"'
}

@test "in-cluster: the token is read on every run (it rotates)" {
	mkdir "$TMP/sa"
	cp "$APISERVER_CA" "$TMP/sa/ca.crt"
	echo wrong >"$TMP/sa/token"
	export KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=$APISERVER_PORT
	run --separate-stderr kwh-apply --service-account-dir "$TMP/sa" --cache "$TMP/cache" --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 502' || { echo "$output"; return 1; }
	cp "$APISERVER_DIR/token" "$TMP/sa/token"
	created_with --service-account-dir "$TMP/sa"
	echo "$output" | jq -e '.results[0].namespace == "default"'
}

@test "insecure-skip-tls-verify only when the kubeconfig says so" {
	write_kubeconfig "$TMP/kc" "    token: $APISERVER_TOKEN" "    insecure-skip-tls-verify: true"
	created_with --kubeconfig "$TMP/kc"
	write_kubeconfig "$TMP/kc2" "    token: $APISERVER_TOKEN" "    insecure-skip-tls-verify: false"
	run --separate-stderr kwh-apply --kubeconfig "$TMP/kc2" --cache "$TMP/cache2" --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 502' || { echo "$output"; return 1; }
}

@test "unreadable or broken kubeconfig: exit 111 naming the file, envelopes answered 500" {
	run --separate-stderr kwh-apply --kubeconfig "$TMP/none" <"$TMP/in"
	assert_failure 111
	[[ $stderr == *"$TMP/none"* ]]
	echo "$output" | jq -e '.response.status == 500 and .delivery == "d-1"'
	echo "$output" | jq -r .response.message | grep -F "$TMP/none"
	printf 'clusters: [\n' >"$TMP/broken"
	run --separate-stderr kwh-apply --kubeconfig "$TMP/broken" <"$TMP/in"
	assert_failure 111
	[[ $stderr == *"$TMP/broken"* ]]
}
