#!/usr/bin/env bats
# examples/: the namespace-per-branch step, replaying saved payloads, and
# two organisations with their own secrets.

load test_helper
load 4000-deploy-lib

setup() {
	setup_tmp
	PIDS=()
}

teardown() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}

@test "namespace-per-branch.jq: a namespace from the ref, responses passed through" {
	f=$TOP_DIR/examples/namespace-per-branch.jq
	run jq -r -f "$f" <<< '{"kwh":1,"annotations":{"k8s-webhook-handler.io/ref":"refs/heads/feature/Login_Page"}}'
	assert_success
	assert_equal "$(jq -r '.annotations["example.com/namespace"]' <<< "$output")" ci-feature-login-page
	long=$(printf 'refs/heads/%s' "$(head -c 80 /dev/zero | tr '\0' a)")
	ns=$(jq -r --arg r "$long" '.annotations["k8s-webhook-handler.io/ref"] = $r' <<< '{"kwh":1,"annotations":{}}' | jq -r -f "$f" | jq -r '.annotations["example.com/namespace"]')
	[ "${#ns}" -le 63 ] && [[ $ns == ci-aaa* ]]
	ns=$(jq -c -f "$f" <<< '{"kwh":1,"annotations":{"k8s-webhook-handler.io/ref":"refs/heads/a--"}}' | jq -r '.annotations["example.com/namespace"]')
	assert_equal "$ns" ci-a
	in='{"kwh":1,"annotations":{"k8s-webhook-handler.io/ref":"refs/heads/x"},"response":{"status":202,"message":"skipped"}}'
	diff <(jq -S . <<< "$in") <(jq -S -f "$f" <<< "$in")
}

@test "namespace-per-branch.jq sits in the chain and the annotation reaches the Workflow" {
	secret_file secret s
	deploy_repo
	deploy_payload
	kwh-sign --secret-file "$TMP/secret" "$TMP/push.json" |
		kwh-verify --secret-file "$TMP/secret" --log none | kwh-annotate --log none |
		jq -c -f "$TOP_DIR/examples/namespace-per-branch.jq" |
		kwh-fetch --cache "$TMP/c" --remote "file://$TMP/srv/{full_name}.git" --log none |
		kwh-apply --dry-run=client --namespace ci --log none > "$TMP/out"
	jq -e '.manifests[0].metadata.annotations["example.com/namespace"] == "ci-main"' "$TMP/out"
}

@test "replay-saved.sh signs each saved payload afresh and sends it to a listening chain" {
	secret_file secret s3cret
	port=$(free_port)
	socat -t 10 TCP-LISTEN:"$port",bind=127.0.0.1,reuseaddr,fork \
		SYSTEM:"kwh-verify --secret-file '$TMP/secret' --log none | kwh-annotate --log none | kwh-respond --log none" &
	PIDS+=($!)
	wait_port "$port"
	cp "$FIXTURES/github/ping-payload.json" "$TMP/ping-1.json"
	cp "$FIXTURES/github/push-payload.json" "$TMP/push-1.json"
	cp "$FIXTURES/github/check_run-created.json" "$TMP/issues-1.json"
	run "$TOP_DIR/examples/replay-saved.sh" "$port" "$TMP/secret" "$TMP/ping-1.json" "$TMP/push-1.json" "$TMP/issues-1.json"
	assert_success
	assert_output "$(printf '%s: HTTP/1.1 200 OK\n%s: HTTP/1.1 200 OK\n%s: HTTP/1.1 202 Accepted' "$TMP/ping-1.json" "$TMP/push-1.json" "$TMP/issues-1.json")"
}

@test "two organisations: each listener takes only its own organisation's secret" {
	deploy_repo
	deploy_payload
	for org in a b; do
		printf 'secret-of-%s\n' "$org" > "$TMP/org-$org.secret"
		chmod 600 "$TMP/org-$org.secret"
		sed -e "s|/etc/kwh/org-$org.secret|$TMP/org-$org.secret|" \
			-e "s|/var/cache/kwh/org-$org|$TMP/cache-$org|" \
			-e "s|^KWH_REMOTE=.*|KWH_REMOTE=file://$TMP/srv/{full_name}.git|" \
			"$TOP_DIR/examples/two-orgs/org-$org.env" > "$TMP/org-$org.env"
		printf 'KWH_DRY_RUN=client\nKWH_LOG=%s\n' "$TMP/log-$org" >> "$TMP/org-$org.env"
		port=$(free_port)
		eval "PORT_$org=$port"
		KWH_ENV_FILE=$TMP/org-$org.env "$TOP_DIR/share/socat/kwh-socat" "$port" 2> "$TMP/socat-$org.err" &
		PIDS+=($!)
		wait_port "$port"
	done
	for org in a b; do
		kwh-sign --secret-file "$TMP/org-$org.secret" --delivery "d-$org" "$TMP/push.json" > "$TMP/req-$org"
	done
	# Each organisation's delivery on its own port: handled (a dry run).
	socat -t 10 - TCP:127.0.0.1:"$PORT_a" < "$TMP/req-a" > "$TMP/resp"
	head -n 1 "$TMP/resp" | grep -q '^HTTP/1.1 200 '
	http_body "$TMP/resp" | jq -e '.results[0].namespace == "ci-org-a"'
	socat -t 10 - TCP:127.0.0.1:"$PORT_b" < "$TMP/req-b" > "$TMP/resp"
	http_body "$TMP/resp" | jq -e '.results[0].namespace == "ci-org-b"'
	# And on the other's: 401.
	socat -t 10 - TCP:127.0.0.1:"$PORT_b" < "$TMP/req-a" > "$TMP/resp"
	head -n 1 "$TMP/resp" | grep -q '^HTTP/1.1 401 '
	socat -t 10 - TCP:127.0.0.1:"$PORT_a" < "$TMP/req-b" > "$TMP/resp"
	head -n 1 "$TMP/resp" | grep -q '^HTTP/1.1 401 '
}
