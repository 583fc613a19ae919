#!/usr/bin/env bats
# kwh-handle --config FILE (the Deployment's ConfigMap), GET /-/ready apart
# from GET /-/alive, and --listen picking up a changed configuration without
# a restart (issue 16, point 7): the parent re-executes itself, same
# process, keeping its listening socket, once the requests it holds are
# answered; a configuration that does not load is logged and not taken.

load test_helper

setup() {
	setup_tmp
	export HOME=$TMP
	unset KUBECONFIG
	secret_file secret reload-secret
	LISTENER=
}

teardown() {
	if [ -n "$LISTENER" ]; then
		kill "$LISTENER" 2>/dev/null || true
		wait "$LISTENER" 2>/dev/null || true
	fi
	apiserver_stop
}

# listen ARGS...: kwh-handle --listen on a free port ($PORT), pid $LISTENER
listen() {
	PORT=$(free_port)
	kwh-handle --listen "127.0.0.1:$PORT" --workers 2 "$@" 2>"$TMP/stderr" 3>&- &
	LISTENER=$!
	wait_port "$PORT"
}

# get PATH: the status of GET PATH, the body in $TMP/body
get() {
	curl -sS --max-time 10 -o "$TMP/body" -w '%{http_code}\n' "http://127.0.0.1:$PORT$1"
}

# push DELIVERY: the status of a signed push of $TMP/push.json
push() {
	curl -sS --max-time 30 -o "$TMP/resp.$1" -w '%{http_code}\n' \
		-H 'Content-Type: application/json' -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: $1" \
		-H "X-Hub-Signature-256: $(sig_of "$TMP/push.json" "$TMP/secret")" \
		--data-binary @"$TMP/push.json" "http://127.0.0.1:$PORT/"
}

# swap FILE TEXT: FILE replaced as a ConfigMap volume does, by renaming a
# symlink over the old one (FILE -> ..data/FILE, ..data -> a new directory)
swap() {
	local d=$TMP/cm dir
	mkdir -p "$d"
	dir=$(mktemp -d "$d/..gen.XXXXXX")
	printf '%s\n' "$2" >"$dir/$(basename "$1")"
	ln -sfn "$(basename "$dir")" "$d/..data.new"
	mv -T "$d/..data.new" "$d/..data"
	[ -L "$1" ] || ln -s "..data/$(basename "$1")" "$1"
}

@test "--config: one option a line ('name value', 'name=value', '--name'), comments; the command line wins" {
	cat >"$TMP/conf" <<-EOF
	# settings
	secret-file $TMP/secret

	--events=delete
	log $TMP/log
	EOF
	ci_repo "$TMP/repo"
	ci_push "file://$TMP/repo" >"$TMP/push.json"
	kwh-sign --secret-file "$TMP/secret" --event push --delivery d-c "$TMP/push.json" >"$TMP/req"
	run -0 kwh-handle --config "$TMP/conf" --dry-run=client <"$TMP/req"
	assert_line --partial 'event push is not handled'
	grep -q 'delivery=d-c' "$TMP/log"
	# later options win: the command line's --events
	run -0 kwh-handle --config "$TMP/conf" --events push --dry-run=client --cache "$TMP/c" \
		--allow-remote-host file:// <"$TMP/req"
	refute_output --partial 'event push is not handled'
	assert_line --regexp '^HTTP/1.1 20[01] '
	# errors name the file
	run -100 kwh-handle --config "$TMP/none"
	assert_output --partial "--config $TMP/none: cannot read it"
	printf 'config %s\n' "$TMP/conf" >"$TMP/loop"
	run -100 kwh-handle --config "$TMP/loop"
	assert_output --partial "no --config inside it"
	printf 'no-such-option\n' >"$TMP/bad"
	run -100 kwh-handle --config "$TMP/bad" --secret-file "$TMP/secret"
	assert_output --partial "no-such-option"
}

@test "/-/ready: 503 naming what is missing (Kubernetes configuration, a writable cache) while /-/alive is 200" {
	listen --secret-file "$TMP/secret" --cache "$TMP/cache" --log "$TMP/log"
	run -0 get /-/alive
	assert_output 200
	run -0 get /-/ready
	assert_output 503
	jq -e '.message | test("^no Kubernetes configuration")' "$TMP/body"
	kill "$LISTENER"; wait "$LISTENER" || true
	apiserver_start
	touch "$TMP/file"
	listen --secret-file "$TMP/secret" --cache "$TMP/file/cache" --kubeconfig "$APISERVER_DIR/kubeconfig" \
		--log "$TMP/log"
	run -0 get /-/ready
	assert_output 503
	jq -e --arg d "$TMP/file/cache" '.message | startswith("cache directory '\''\($d)'\'' is not writable")' "$TMP/body"
	run -0 get /-/alive
	assert_output 200
	kill "$LISTENER"; wait "$LISTENER" || true
	listen --secret-file "$TMP/secret" --cache "$TMP/cache" --spool "$TMP/spool" \
		--kubeconfig "$APISERVER_DIR/kubeconfig" --log "$TMP/log"
	run -0 get /-/ready
	assert_output 200
	jq -e '.message == "ready"' "$TMP/body"
}

@test "a ConfigMap-style change of --config is taken without a restart: same process, same socket, no request lost" {
	apiserver_start
	ci_repo "$TMP/repo"
	ci_push "file://$TMP/repo" >"$TMP/push.json"
	conf="secret-file $TMP/secret
kubeconfig $APISERVER_DIR/kubeconfig
allow-remote-host file://
cache $TMP/cache
log $TMP/log"
	swap "$TMP/cm/kwh-handle.conf" "$conf
events delete"
	listen --config "$TMP/cm/kwh-handle.conf"
	run -0 push d-1
	assert_output 202
	# requests all along while the file changes and the server re-executes
	(for i in $(seq 1 60); do get /-/alive; sleep 0.05; done) >"$TMP/codes" &
	loop=$!
	swap "$TMP/cm/kwh-handle.conf" "$conf
events push"
	n=100
	until grep -q 'executing .* again with the new configuration' "$TMP/log"; do
		n=$((n - 1)); [ "$n" -gt 0 ] || fail "no reload: $(cat "$TMP/log")"; sleep 0.1
	done
	wait "$loop"
	assert_equal "$(sort -u "$TMP/codes")" 200
	[ "$(wc -l <"$TMP/codes")" -eq 60 ]
	# the same process listens, and works with the new configuration
	kill -0 "$LISTENER"
	ss -Hltnp "( sport = :$PORT )" | grep -q "pid=$LISTENER,"
	run -0 push d-2
	assert_output 201
	run -0 apiserver_objects
	jq -e 'map(select(.kind == "Workflow")) | length == 1' <<<"$output"
}

@test "SIGHUP reloads too; a configuration that does not load is logged and the one in use kept" {
	printf 'secret-file %s\nevents delete\nlog %s\n' "$TMP/secret" "$TMP/log" >"$TMP/conf"
	listen --config "$TMP/conf" --dry-run=client --cache "$TMP/cache"
	kwh-sign --secret-file "$TMP/secret" "$FIXTURES/github/push-payload.json" >/dev/null
	cp "$FIXTURES/github/push-payload.json" "$TMP/push.json"
	# a bad line: not taken, logged, the server still answers as before
	printf 'no-such-option\n' >>"$TMP/conf"
	n=100
	until grep -q 'the new configuration does not load' "$TMP/log"; do
		n=$((n - 1)); [ "$n" -gt 0 ] || fail "not noticed: $(cat "$TMP/log")"; sleep 0.1
	done
	grep -q 'no-such-option' "$TMP/stderr"
	run -0 push d-3
	assert_output 202
	run grep -c 'executing .* again' "$TMP/log"
	assert_output 0
	# fixed, and SIGHUP: re-executed
	printf 'secret-file %s\nevents push,delete\nlog %s\n' "$TMP/secret" "$TMP/log" >"$TMP/conf"
	kill -HUP "$LISTENER"
	n=100
	until grep -q 'executing .* again with the new configuration' "$TMP/log"; do
		n=$((n - 1)); [ "$n" -gt 0 ] || fail "no reload: $(cat "$TMP/log")"; sleep 0.1
	done
	wait_port "$PORT"
	kill -0 "$LISTENER"
	run -0 push d-4
	refute_output 202
}

@test "/-/ready: kwh-verify alone answers it 200 (nothing more to check), one-shot kwh-handle 503 without a cluster" {
	printf 'GET /-/ready HTTP/1.1\r\nHost: x\r\n\r\n' >"$TMP/req"
	run -0 kwh-verify --secret-file "$TMP/secret" --log none <"$TMP/req"
	jq -e '.response == {"status": 200, "message": "ready", "stage": "kwh-verify"}' <<<"$output"
	run --separate-stderr kwh-handle --secret-file "$TMP/secret" --cache "$TMP/cache" --log none <"$TMP/req"
	[[ ${lines[0]} == "HTTP/1.1 503 "* ]] || fail "answer: ${lines[0]:-nothing}"
	assert_output --partial '"message":"no Kubernetes configuration: '
}
