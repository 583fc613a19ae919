#!/usr/bin/env bats
# Two resident servers (two replicas of the Deployment) share nothing but
# the API server: the deterministic names of deduplication make it the
# dedupe store, so the same delivery sent to both creates one object
# (issue 16, point 7, in part).

load test_helper

setup() {
	setup_tmp
	export HOME=$TMP
	apiserver_start
	ci_repo "$TMP/repo"
	ci_push "file://$TMP/repo" >"$TMP/push.json"
	secret_file secret replica-secret
	PIDS=()
}

teardown() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	apiserver_stop
}

# replica N: a kwh-handle --listen with a cache of its own; sets PORT_N.
replica() {
	local port
	port=$(free_port)
	kwh-handle --listen "127.0.0.1:$port" --workers 2 --secret-file "$TMP/secret" \
		--allow-remote-host file:// --cache "$TMP/cache-$1" \
		--kubeconfig "$APISERVER_DIR/kubeconfig" --log "$TMP/listen-$1.log" 3>&- &
	PIDS+=($!)
	wait_port "$port"
	printf -v "PORT_$1" '%s' "$port"
}

# post PORT DELIVERY: the signed push, its status on stdout.
post() {
	curl -sS --max-time 30 -o "$TMP/resp.$1.$2" -w '%{http_code}\n' \
		-H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
		-H "X-GitHub-Delivery: $2" -H "X-Hub-Signature-256: $(sig_of "$TMP/push.json" "$TMP/secret")" \
		--data-binary @"$TMP/push.json" "http://127.0.0.1:$1/"
}

@test "the same delivery to two replicas at once: one Workflow, both answers 2xx naming it" {
	replica 1
	replica 2
	post "$PORT_1" d-rep >"$TMP/code1" &
	a=$!
	post "$PORT_2" d-rep >"$TMP/code2" &
	b=$!
	wait "$a"
	wait "$b"
	codes=$(cat "$TMP/code1" "$TMP/code2" | sort | tr '\n' ' ')
	assert_equal "$codes" "200 201 "
	run -0 apiserver_objects
	jq -e 'map(select(.kind == "Workflow")) | length == 1' <<<"$output"
	name=$(jq -r 'map(select(.kind == "Workflow"))[0].metadata.name' <<<"$output")
	for f in "$TMP"/resp.*.d-rep; do
		jq -e --arg n "$name" '.results[0].name == $n' "$f" || fail "$f does not name $name: $(cat "$f")"
	done
	# and a redelivery to either, later, creates nothing either
	run -0 post "$PORT_2" d-rep-again
	assert_output 200
	run -0 apiserver_objects
	jq -e 'map(select(.kind == "Workflow")) | length == 1' <<<"$output"
}
