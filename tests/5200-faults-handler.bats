#!/usr/bin/env bats
# Faults through the whole handler (share/kwh/kwh-handler) behind socat on
# 127.0.0.1, with the test API server and local git servers: the API
# server failing, refusing, resetting, slow; the git remote down, silent,
# killed mid-fetch; the cache unwritable or on a full disk.  Each: the
# right status, a log line saying why, nothing half-created, and the spool
# holding what must be replayed (and the replay creating it exactly once).

load test_helper
load 4000-deploy-lib

setup() {
	deploy_setup
	MOUNTS=()
}

teardown() {
	deploy_teardown
	local m
	for m in "${MOUNTS[@]}"; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
}

# spool_handler: sets H, a handler that passes $KWH_SPOOL to kwh-respond
# --spool.  The shipped handler when it knows KWH_SPOOL; else a copy of it
# in $TMP with exactly that change (the change the shipped one needs).
spool_handler() {
	if grep -q KWH_SPOOL "$HANDLER"; then
		H=$HANDLER
		return 0
	fi
	sed -e 's/KWH_SSH_KEY | KWH_TOKEN_FILE | KWH_USE_GIT_URL)/KWH_SPOOL | &/' \
		-e 's/^\(	exec kwh-respond --log "\$log_dest"\)$/\1 ${KWH_SPOOL:+--spool "$KWH_SPOOL"}/' \
		"$HANDLER" >"$TMP/kwh-handler"
	chmod 755 "$TMP/kwh-handler"
	grep -q 'KWH_SPOOL | KWH_SSH_KEY' "$TMP/kwh-handler"
	grep -q -- '--spool "$KWH_SPOOL"' "$TMP/kwh-handler"
	H=$TMP/kwh-handler
}

# scene [LINE...]: the repository, the push, the environment file (a 3 s
# budget, a spool in $TMP/spool, extra lines) and the handler H.
scene() {
	deploy_repo
	deploy_payload
	mkdir -p "$TMP/spool"
	deploy_env KWH_BUDGET=3 "KWH_SPOOL=$TMP/spool" "$@"
	# (the file's first setting of a name wins: keep the last one)
	tac "$TMP/kwh.env" | awk -F= '/^#/ || !seen[$1]++' | tac >"$TMP/kwh.env.new"
	mv "$TMP/kwh.env.new" "$TMP/kwh.env"
	spool_handler
}

# serve: socat on a free port runs $H per connection; sets PORT.
serve() {
	PORT=$(free_port)
	env -u APISERVER_TOKEN socat -t 15 TCP-LISTEN:"$PORT",bind=127.0.0.1,reuseaddr,fork,max-children=40 \
		EXEC:"$H" 2>"$TMP/socat.err" &
	SOCAT_PID=$!
	wait_port "$PORT"
}

# workflows: how many Workflows the API server holds.
workflows() {
	apiserver_objects | jq 'map(select(.kind == "Workflow")) | length'
}

# spooled DELIVERY: the spool holds DELIVERY, mode 0600, whole and verified.
spooled() {
	local f
	f=$(spool_file "$TMP/spool" "$1") || { echo "$1 is not spooled: $(ls -A "$TMP/spool")" >&2; return 1; }
	assert_equal "$(stat -c %a "$f")" 600
	jq -e --arg d "$1" '.delivery == $d and .verified == "sha256" and
		(.spool.stage | type == "string") and (.spool.status >= 500)' "$f" >/dev/null
}

# replay_chain: the middle of the handler's chain for
# kwh-replay, as the handler would run it with this environment file.
replay_chain() {
	printf 'kwh-annotate --log %s | kwh-fetch --log %s --cache %s --remote %s | kwh-apply --log %s --cache %s --kubeconfig %s --namespace ci --allow-kind argoproj.io/Workflow --dedupe' \
		"$TMP/log" "$TMP/log" "$TMP/cache/git" "${REMOTE:-file://$TMP/srv/\{full_name\}.git}" \
		"$TMP/log" "$TMP/cache" "$APISERVER_DIR/kubeconfig"
}

@test "API 503 and 429 with Retry-After, then success within the deadline: 201, nothing spooled" {
	need_chain
	apiserver_start
	scene KWH_BUDGET=9 # (room for two 1 s waits on a loaded machine)
	serve
	apiserver_fault '{"count":1,"status":503,"retry_after":1,"method":"POST"}'
	apiserver_fault '{"count":1,"status":429,"retry_after":1,"method":"POST"}'
	post_push "$PORT" d-retry
	assert_equal "$CODE" 201
	echo "$BODY" | jq -e '.results[0].action == "created"'
	grep -q 'prog=kwh-apply level=warn delivery=d-retry .*503 Service Unavailable.*retrying in 1000 ms' "$TMP/log"
	grep -q 'prog=kwh-apply level=warn delivery=d-retry .*429 Too Many Requests.*retrying in 1000 ms' "$TMP/log"
	assert_equal "$(workflows)" 1
	# the server saw three creates: two refused, one created
	apiserver_requests | jq -e '[.[] | select(.method == "POST") | .status] == [503, 429, 201]'
	[ -z "$(ls -A "$TMP/spool")" ]
}

@test "API 429 past the deadline: 503, logged, nothing created, spooled; the replay creates it once" {
	need_chain
	apiserver_start
	scene
	serve
	apiserver_fault '{"count":100,"status":429,"retry_after":1,"method":"POST"}'
	post_push "$PORT" d-429
	assert_equal "$CODE" 503
	echo "$BODY" | jq -e '.spooled == true and (.message | test("429 Too Many Requests")) and
		(.message | test("spooled for replay"))'
	grep -q 'prog=kwh-apply level=error delivery=d-429 status=503 .*kept failing' "$TMP/log"
	assert_equal "$(workflows)" 0
	spooled d-429
	jq -e '.spool.stage == "kwh-apply" and .spool.status == 503' "$(spool_file "$TMP/spool" d-429)"
	# the API server recovers: the replay creates the Workflow, once
	apiserver_control DELETE /_test/faults >/dev/null
	run --separate-stderr kwh-replay --spool "$TMP/spool" "$(replay_chain)"
	assert_success
	assert_equal "$(workflows)" 1
	not_spooled "$TMP/spool" d-429
	# a second replay has nothing left to do
	run --separate-stderr kwh-replay --spool "$TMP/spool" "$(replay_chain)"
	assert_success
	assert_equal "$(workflows)" 1
}

@test "API resets the connection: retried under dedupe (201, one object); without, 503 and spooled" {
	need_chain
	apiserver_start
	scene
	serve
	apiserver_fault '{"count":1,"reset":true,"method":"POST"}'
	post_push "$PORT" d-reset
	assert_equal "$CODE" 201
	assert_equal "$(workflows)" 1
	# the create was reset once, then repeated
	apiserver_requests | jq -e '[.[] | select(.method == "POST") | [.status, .fault.reset]] == [[null, true], [201, null]]'
	[ -z "$(ls -A "$TMP/spool")" ]
	# without dedupe a create whose connection failed is not repeated
	echo KWH_DEDUPE=no >>"$TMP/kwh.env"
	apiserver_fault '{"count":1,"reset":true,"method":"POST"}'
	post_push "$PORT" d-reset-nodedupe
	echo "$CODE $BODY"
	[[ $CODE == 50[234] ]]
	grep -q "prog=kwh-apply level=error delivery=d-reset-nodedupe status=$CODE" "$TMP/log"
	assert_equal "$(workflows)" 1
	spooled d-reset-nodedupe
}

@test "API slower than the deadline: 504, spooled; the late create is found, never made twice, by the replay" {
	need_chain
	apiserver_start
	scene
	serve
	apiserver_fault '{"count":1,"delay":5,"method":"POST"}'
	post_push "$PORT" d-slow
	assert_equal "$CODE" 504
	echo "$BODY" | jq -e '.spooled == true and (.message | test("deadline"))'
	grep -q 'prog=kwh-apply level=error delivery=d-slow status=504 .*deadline passed' "$TMP/log"
	spooled d-slow
	# the server finishes the create after the client gave up: the object
	# then exists under the delivery's deduplicated name ...
	local _
	for _ in $(seq 1 100); do
		[ "$(workflows)" = 1 ] && break
		sleep 0.1
	done
	assert_equal "$(workflows)" 1
	# ... and the replay finds it instead of creating a second one
	run --separate-stderr kwh-replay --spool "$TMP/spool" "$(replay_chain)"
	assert_success
	echo "$output" | jq -e '.results[0].action == "exists" or .results[0].action == "unchanged"'
	assert_equal "$(workflows)" 1
	not_spooled "$TMP/spool" d-slow
}

@test "git remote down: 502, the log naming the remote, nothing sent to the API, spooled; replayed once it is up" {
	need_chain
	apiserver_start
	SRV=$TMP/srv
	local dead
	dead=$(free_port)
	scene "KWH_REMOTE=git://127.0.0.1:$dead/{full_name}.git"
	serve
	post_push "$PORT" d-gitdown
	assert_equal "$CODE" 502
	echo "$BODY" | jq -e --arg p "$dead" '.spooled == true and
	    (.message | startswith("fetching the repository failed; see the log for delivery d-gitdown")) and
	    (.message | contains("127.0.0.1") | not)'
	grep -q "prog=kwh-fetch level=error delivery=d-gitdown status=502 msg=\"git://127.0.0.1:$dead/" "$TMP/log"
	apiserver_requests | jq -e 'map(select(.method != "GET")) | length == 0'
	spooled d-gitdown
	jq -e '.spool.stage == "kwh-fetch"' "$(spool_file "$TMP/spool" d-gitdown)"
	# the remote comes up (elsewhere: the replay names it)
	start_git_daemon
	REMOTE="git://127.0.0.1:$GIT_DAEMON_PORT/{full_name}.git"
	run --separate-stderr kwh-replay --spool "$TMP/spool" "$(replay_chain)"
	assert_success
	assert_equal "$(workflows)" 1
	not_spooled "$TMP/spool" d-gitdown
}

@test "git remote that accepts and never answers: answered 503 before the deadline, spooled; the fetch goes on in the background" {
	need_chain
	apiserver_start
	start_silent_server
	local silent=$!
	scene "KWH_REMOTE=git://127.0.0.1:$SILENT_PORT/{full_name}.git"
	serve
	post_push "$PORT" d-gitslow
	# (an answer at all: the chain ended at its budget, before curl's 15 s)
	assert_equal "$CODE" 503
	grep -q "prog=kwh-fetch level=warn delivery=d-gitslow status=503 .*retry after 30 s" "$TMP/log"
	grep -q "prog=kwh-fetch level=info delivery=d-gitslow .*goes on in the background" "$TMP/log"
	apiserver_requests | jq -e 'map(select(.method != "GET")) | length == 0'
	spooled d-gitslow
	# the background fetch ends when the remote goes away (else at
	# --fetch-budget): no fetch process is left behind
	stop_pid "$silent"
	local n=100
	while pgrep -f "127.0.0.1:$SILENT_PORT" >/dev/null && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
	run -1 pgrep -f "127.0.0.1:$SILENT_PORT"
}

@test "git server killed mid-fetch: 502, spooled, no half repository; the next delivery fetches afresh" {
	need_chain
	apiserver_start
	SRV=$TMP/srv
	scene "KWH_REMOTE=http://127.0.0.1:{port}/{full_name}.git" "KWH_TOKEN_FILE=$TMP/git-token"
	printf 'git-token-value\n' >"$TMP/git-token"
	: >"$TMP/stall"
	start_http_git git-token-value
	sed -i "s/{port}/$HTTP_GIT_PORT/" "$TMP/kwh.env"
	serve
	post_push "$PORT" d-killed &
	local post=$!
	# the fetch is under way: the cache entry exists and the server holds
	# the request
	local _
	for _ in $(seq 1 100); do
		compgen -G "$TMP/cache/git/*-octo-repo.git" >/dev/null && break
		sleep 0.05
	done
	sleep 0.5
	kill -9 "$HTTP_GIT_PID"
	wait "$post"
	# (post_push ran in a subshell: read the answer from the spool and log)
	grep -q "prog=kwh-fetch level=error delivery=d-killed status=502" "$TMP/log"
	spooled d-killed
	jq -e '.spool.status == 502 and .spool.stage == "kwh-fetch"' "$(spool_file "$TMP/spool" d-killed)"
	apiserver_requests | jq -e 'map(select(.method != "GET")) | length == 0'
	# the server comes back on the same port: the next delivery does not
	# trip over what the killed fetch left, and creates its Workflow
	rm -f "$TMP/stall"
	python3 "$TMP/githttp.py" "$HTTP_GIT_PORT" "$SRV" git-token-value "$TMP/http.log" "$TMP/stall" \
		2>"$TMP/http.err" 3>&- &
	_remember_pid $!
	wait_port "$HTTP_GIT_PORT"
	post_push "$PORT" d-after
	assert_equal "$CODE" 201
	assert_equal "$(workflows)" 1
	run ls "$TMP"/cache/git/*-octo-repo.git/kwh-incomplete
	assert_failure
}

# as_nobody: lets user 65534 reach $TMP and the API server's directory
# (read and search only).
as_nobody_paths() {
	local d
	for d in "$TMP" "$APISERVER_DIR"; do
		while [ "$d" != / ] && [ "$d" != /tmp ]; do
			chmod o+x "$d"
			d=$(dirname "$d")
		done
	done
	chmod o+rx "$TMP" "$APISERVER_DIR"
	chmod o+r "$APISERVER_DIR/kubeconfig" "$APISERVER_DIR/ca.crt"
}

# nobody_tree: copies what user 65534 runs (the handler H and the programs
# of KWH_BIN) into $TMP/nobody, readable
# by all, and points H and NOBODY_BIN at the copies: the checkout may sit
# under a home that only root can enter (CI clones to /root/kwh).
nobody_tree() {
	local t=$TMP/nobody f
	mkdir -p "$t/bin" "$t/share/kwh"
	for f in "$KWH_BIN"/kwh-*; do
		[[ $f == *.c ]] || cp "$f" "$t/bin/"
	done
	cp "$H" "$t/share/kwh/kwh-handler"
	chmod -R a+rX "$t"
	H=$t/share/kwh/kwh-handler
	NOBODY_BIN=$t/bin
}

@test "cache directory unwritable (not root): 500 saying so, logged, spooled, nothing created" {
	need_chain
	command -v setpriv >/dev/null || skip "no setpriv"
	[ "$(id -u)" = 0 ] || skip "needs root to switch to user 65534"
	apiserver_start
	scene
	as_nobody_paths
	nobody_tree
	chmod o+r "$TMP/kwh.env" "$TMP/push.json"
	chown 65534:65534 "$TMP/secret" "$TMP/spool" "$TMP/log" 2>/dev/null || true
	: >"$TMP/log"; chown 65534:65534 "$TMP/log"
	chmod -R o+rX "$TMP/srv"
	mkdir -p "$TMP/cache"
	chmod 755 "$TMP/cache" # root's, not writable by 65534
	# the premise: user 65534 cannot write there
	run setpriv --reuid=65534 --regid=65534 --clear-groups touch "$TMP/cache/x"
	assert_failure
	signed_request d-nocache
	setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/nonexistent KWH_BIN="$NOBODY_BIN" "$H" \
		<"$TMP/req" >"$TMP/out"
	assert_equal "$(http_status "$TMP/out")" 500
	http_body "$TMP/out" | jq -e '.spooled == true and (.message | test("cache"))'
	grep -q 'prog=kwh-fetch level=error delivery=d-nocache status=500' "$TMP/log"
	assert_equal "$(workflows)" 0
	spooled d-nocache
	assert_equal "$(stat -c %u "$(spool_file "$TMP/spool" d-nocache)")" 65534
}

# tmpfs_full DIR: a 64 KiB tmpfs on DIR, filled up.
tmpfs_full() {
	[ "$(id -u)" = 0 ] || skip "needs root to mount a tmpfs"
	mkdir -p "$1"
	mount -t tmpfs -o size=64k tmpfs "$1" || skip "cannot mount a tmpfs"
	MOUNTS+=("$1")
	dd if=/dev/zero of="$1/filler" bs=4k 2>/dev/null || true
	# the premise: not one more block fits
	if dd if=/dev/zero of="$1/probe" bs=4k count=1 2>/dev/null; then
		fail "tmpfs_full: a block still fits in $1"
	fi
	rm -f "$1/probe"
}

@test "disk full under the cache: 500 saying so, logged, spooled, nothing created; replayed once there is room" {
	need_chain
	apiserver_start
	scene
	tmpfs_full "$TMP/cache"
	serve
	post_push "$PORT" d-full
	assert_equal "$CODE" 500
	echo "$BODY" | jq -e '.spooled == true'
	grep -q 'prog=kwh-fetch level=error delivery=d-full status=500' "$TMP/log"
	assert_equal "$(workflows)" 0
	spooled d-full
	rm -f "$TMP/cache/filler"
	run --separate-stderr kwh-replay --spool "$TMP/spool" "$(replay_chain)"
	assert_success
	assert_equal "$(workflows)" 1
	not_spooled "$TMP/spool" d-full
}

@test "disk full under the spool: still a well-formed 503 that says NOT spooled, and an error logged" {
	need_chain
	apiserver_start
	scene
	tmpfs_full "$TMP/spool"
	serve
	apiserver_fault '{"count":100,"status":503,"method":"POST"}'
	post_push "$PORT" d-nospool
	assert_equal "$CODE" 503
	echo "$BODY" | jq -e '.spooled == false and (.message | test("NOT spooled"))'
	grep -q 'prog=kwh-respond level=error delivery=d-nospool' "$TMP/log"
	assert_equal "$(workflows)" 0
	# no temporary file left in the spool
	assert_equal "$(ls -A "$TMP/spool")" filler
}

@test "32 concurrent deliveries for one repository with an empty cache: one clone, all succeed" {
	need_chain
	apiserver_start
	SRV=$TMP/srv
	mkdir -p "$SRV"
	start_git_daemon
	# (a budget, and a curl timeout, for 32 chains at once on a small or
	# sanitized build: what is tested is that all succeed, not how fast)
	scene "KWH_REMOTE=git://127.0.0.1:$GIT_DAEMON_PORT/{full_name}.git" KWH_BUDGET=110
	serve
	local i sig pids=()
	sig=$(sig_of "$TMP/push.json" "$TMP/secret")
	for i in $(seq 1 32); do
		curl -sS --max-time 120 -o /dev/null -w '%{http_code}\n' \
			-H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
			-H "X-GitHub-Delivery: d-many-$i" -H "X-Hub-Signature-256: $sig" \
			--data-binary @"$TMP/push.json" "http://127.0.0.1:$PORT/" >"$TMP/code-$i" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || true; done
	# one signed push under 32 delivery ids: one delivery (deduplicated on
	# its digest), created once and found by the 31 others
	assert_equal "$(sort "$TMP"/code-* | uniq -c | awk '{print $1, $2}')" "$(printf '31 200\n1 201')"
	assert_equal "$(upload_packs)" 1
	assert_equal "$(workflows)" 1
	# one create per delivery, one of them 201, the others AlreadyExists
	apiserver_requests | jq -e '[.[] | select(.method == "POST") | .status] |
		length == 32 and (map(select(. == 201)) | length) == 1 and (map(select(. == 409)) | length) == 31'
}
