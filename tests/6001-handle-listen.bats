#!/usr/bin/env bats
# kwh-handle --listen: the resident, pre-forked server.  The same
# end-to-end cases as tests/6000-handle-chain.bats, sent with curl to the
# server and compared with the one-shot kwh-handle (responses, created
# objects, log lines); then what a resident server adds: many requests per
# worker over one kept-alive connection to the API server, concurrency, a
# slow client, a killed worker, --max-requests, SIGTERM, memory, secrets.

load test_helper

setup() {
	setup_tmp
	handler_setup listen-secret
	unset LISTEN_PID
}

teardown() {
	[ -z "${LISTEN_PID:-}" ] || stop_pid "$LISTEN_PID"
	[ -z "${SLOW_FD:-}" ] || exec {SLOW_FD}>&-
	[ -z "${CURL_PID:-}" ] || stop_pid "$CURL_PID"
	local p
	for p in ${SLOW_PIDS:-}; do stop_pid "$p"; done
	stop_git_servers
	apiserver_stop
}

# start_listen [OPTIONS]: kwh-handle --listen on a free port with the
# test's stage options; sets PORT and LISTEN_PID, logs to $TMP/listen.log.
start_listen() {
	PORT=$(free_port)
	kwh-handle --listen "127.0.0.1:$PORT" "${VOPTS[@]}" "${AOPTS[@]}" "${FOPTS[@]}" \
		"${POPTS[@]}" --log "$TMP/listen.log" "$@" 2>"$TMP/listen.err" 3>&- &
	LISTEN_PID=$!
	wait_port "$PORT"
}

# stop_listen: SIGTERM, and the exit status in LISTEN_RC.
stop_listen() {
	kill -TERM "$LISTEN_PID"
	wait "$LISTEN_PID" && LISTEN_RC=0 || LISTEN_RC=$?
	unset LISTEN_PID
}

# workers: the pids of the server's workers, one per line.
workers() {
	pgrep -P "$LISTEN_PID" | sort
}

# wait_replaced PID: waits (5 s at most) until a worker other than PID runs.
wait_replaced() {
	local n=100
	while [ "$(workers)" = "$1" ] || [ -z "$(workers)" ]; do
		n=$((n - 1)); [ "$n" -gt 0 ] || return 1
		sleep 0.05
	done
}

# wait_workers N: until the server has N workers that logged their start.
wait_workers() {
	local n=100
	while [ "$(workers | wc -l)" != "$1" ] ||
		[ "$(grep -c 'msg="worker [0-9]* started"' "$TMP/listen.log" 2>/dev/null)" -lt "$1" ]; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || { echo "not $1 workers: $(workers | xargs)" >&2; return 1; }
		sleep 0.05
	done
}

# curl_config FILE EVENT N PREFIX: a curl config of N signed POSTs of FILE
# (deliveries PREFIX-1..N), each printing its status on a line.
curl_config() {
	local sig i
	sig=$(sig_of "$1" "$TMP/secret")
	for i in $(seq 1 "$3"); do
		[ "$i" = 1 ] || echo next
		printf 'url = "http://127.0.0.1:%s/"\n' "$PORT"
		printf 'header = "Content-Type: application/json"\nheader = "X-GitHub-Event: %s"\n' "$2"
		printf 'header = "X-GitHub-Delivery: %s-%s"\nheader = "X-Hub-Signature-256: %s"\n' "$4" "$i" "$sig"
		printf 'data-binary = "@%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' "$1"
		printf 'max-time = 20\n'
	done
}

# slow_clients N MODE [SECONDS]: N connections to the server that stay
# idle (MODE idle) or trickle a head or a body (trickle, body) for SECONDS
# (30), from bench/slow-clients.py in the background; returns once they
# are all connected (5 s at most).
slow_clients() {
	local out="$TMP/slow.$RANDOM" n=100
	: >"$out"
	python3 "$BATS_TEST_DIRNAME/../bench/slow-clients.py" 127.0.0.1 "$PORT" "$1" "$2" "${3:-30}" >"$out" &
	SLOW_PIDS="${SLOW_PIDS:-} $!"
	until grep -q '^ready' "$out"; do
		n=$((n - 1)); [ "$n" -gt 0 ] || { echo "slow_clients: not ready" >&2; return 1; }
		sleep 0.05
	done
	assert_equal "$(cat "$out")" "ready $1"
}

# elapsed_ms CMD...: runs CMD (its output in $TMP/elapsed.out), prints
# how long it took in ms.
elapsed_ms() {
	local t0 t1
	t0=$(date +%s%3N)
	"$@" >"$TMP/elapsed.out"
	t1=$(date +%s%3N)
	echo $((t1 - t0))
}

# body FILE: a response body minus the generated object names.
body() {
	jq -S 'del(.results[]?.name, .results[]?.uid)' "$1"
}

# logged FILE: the request's log lines without time stamps and the
# server's own lines, sorted.
logged() {
	grep -v 'prog=kwh-handle' "$1" |
		sed 's/^ts=[^ ]* //; s/ci-[a-z0-9]\{5\} uid=[0-9a-f-]*/ci-NAME uid=UID/' | sort
}

# same STATUS EVENT DELIVERY [SECRET]: the one-shot kwh-handle on the
# kwh-sign request and the server on the same POST from curl give STATUS,
# the same body, the same objects and the same log lines.
same() {
	local before code
	kwh-sign --event "$2" --delivery "$3" --secret-file "$TMP/${4:-secret}" "$TMP/payload" >"$TMP/req"
	before=$(uids)
	kwh-handle "${VOPTS[@]}" "${AOPTS[@]}" "${FOPTS[@]}" "${POPTS[@]}" \
		--log "$TMP/oneshot.log" <"$TMP/req" >"$TMP/oneshot.resp" || true
	new_objects "$before" >"$TMP/oneshot.objects"
	http_body "$TMP/oneshot.resp" >"$TMP/oneshot.body"
	start_listen --workers 1
	before=$(uids)
	code=$(post "$TMP/payload" "$2" "$3" "${4:-}")
	new_objects "$before" >"$TMP/listen.objects"
	stop_listen
	assert_equal "$LISTEN_RC" 0
	assert_equal "$(http_status "$TMP/oneshot.resp")" "$1"
	assert_equal "$code" "$1"
	diff <(body "$TMP/oneshot.body") <(body "$TMP/listen.body")
	diff "$TMP/oneshot.objects" "$TMP/listen.objects"
	diff <(logged "$TMP/oneshot.log") <(logged "$TMP/listen.log")
}

@test "listen: push from a file:// repository: 201, the same Workflow as one-shot" {
	cp "$TMP/push.json" "$TMP/payload"
	same 201 push d-push
	jq -e --arg rev "$REV" 'length == 1 and .[0].kind == "Workflow" and
		.[0].metadata.namespace == "ci" and .[0].metadata.generateName == "ci-" and
		.[0].metadata.annotations."k8s-webhook-handler.io/revision" == $rev' "$TMP/listen.objects"
	jq -e '.status == 201 and .delivery == "d-push" and (.results | length == 1)' "$TMP/listen.body"
	grep -q 'prog=kwh-handle level=info delivery=- msg="listening on 127.0.0.1:[0-9]* with 1 worker' "$TMP/listen.log"
	grep -q 'msg="worker [0-9]* exits after 1 request (stopping)"' "$TMP/listen.log"
}

@test "listen: push through git daemon with --remote: 201 as one-shot" {
	mkdir -p "$TMP/srv/octo"
	git_quiet clone -q --bare "$TMP/repo" "$TMP/srv/octo/repo.git"
	SRV=$TMP/srv start_git_daemon
	push_payload refs/heads/main "https://github.invalid/octo/repo.git" >"$TMP/payload"
	FOPTS+=(--remote "git://127.0.0.1:$GIT_DAEMON_PORT/{full_name}.git")
	same 201 push d-daemon
	jq -e 'length == 1 and .[0].kind == "Workflow"' "$TMP/listen.objects"
}

@test "listen: ping 200, an ignored ref 202, a filtered event 202, as one-shot" {
	cp "$FIXTURES/github/ping-payload.json" "$TMP/payload"
	same 200 ping d-ping
	jq -e 'length == 0' "$TMP/listen.objects"
	cp "$TMP/push.json" "$TMP/payload"
	AOPTS=(--ignore-ref '^refs/heads/main$')
	same 202 push d-ignored
	AOPTS=(--events pull_request)
	same 202 push d-event
	jq -e 'length == 0' "$TMP/listen.objects"
}

@test "listen: a bad signature 401, a missing manifest 404, a refused kind 422, as one-shot" {
	cp "$TMP/push.json" "$TMP/payload"
	same 401 push d-badsig other
	jq -e '.message | test("does not match")' "$TMP/listen.body"
	FOPTS+=(--path .ci/nope.yaml)
	same 404 push d-nomanifest
	FOPTS=(--cache "$TMP/cache")
	POPTS+=(--allow-kind /ConfigMap)
	same 422 push d-policy
	jq -e 'length == 0' "$TMP/listen.objects"
	[ "$(apiserver_objects | jq length)" = 0 ]
}

@test "listen: --dry-run=client 200 and an unloadable kubeconfig 500, as one-shot" {
	cp "$TMP/push.json" "$TMP/payload"
	POPTS=(--dry-run=client)
	same 200 push d-dry
	POPTS=(--kubeconfig "$TMP/nope" --cache "$TMP/cache")
	same 500 push d-nocfg
	jq -e '.message | test("kwh-apply cannot run")' "$TMP/listen.body"
	[ "$(apiserver_objects | jq length)" = 0 ]
}

@test "listen: the API server down: 503, spooled as one-shot spools" {
	POPTS+=(--deadline 1.5)
	apiserver_fault '{"count":100000,"status":503}'
	mkdir "$TMP/spool-oneshot" "$TMP/spool-listen"
	kwh-sign --event push --delivery d-down --secret-file "$TMP/secret" "$TMP/push.json" >"$TMP/req"
	kwh-handle "${VOPTS[@]}" "${FOPTS[@]}" "${POPTS[@]}" --spool "$TMP/spool-oneshot" \
		--log none <"$TMP/req" >"$TMP/oneshot.resp" || true
	start_listen --spool "$TMP/spool-listen"
	code=$(post "$TMP/push.json" push d-down)
	assert_equal "$code" 503
	assert_equal "$(http_status "$TMP/oneshot.resp")" 503
	jq -e '.message | endswith("; delivery spooled for replay")' "$TMP/listen.body"
	diff <(http_body "$TMP/oneshot.resp" | jq -S 'del(.message)') <(jq -S 'del(.message)' "$TMP/listen.body")
	o=$(spool_file "$TMP/spool-oneshot" d-down)
	l=$(spool_file "$TMP/spool-listen" d-down)
	assert_equal "$(basename "$l")" "$(basename "$o")"
	jq -S '.payload' "$o" >"$TMP/o.payload"
	jq -S '.payload' "$l" >"$TMP/l.payload"
	diff "$TMP/o.payload" "$TMP/l.payload"
	jq -e '.spool.status == 503 and .spool.stage == "kwh-apply" and .delivery == "d-down"' "$l"
	jq -S 'del(.spool.time, .spool.message, .deadline, .received, .headers)' "$o" >"$TMP/o.json"
	jq -S 'del(.spool.time, .spool.message, .deadline, .received, .headers)' "$l" >"$TMP/l.json"
	diff "$TMP/o.json" "$TMP/l.json"
}

@test "listen: GET /-/alive 200, other methods 405, a truncated request 400, an oversized body 413" {
	start_listen --max-body 1k
	run curl -sS --max-time 10 -o "$TMP/alive" -w '%{http_code}' "http://127.0.0.1:$PORT/-/alive"
	assert_output 200
	jq -e '.message == "alive"' "$TMP/alive"
	run curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -X PUT "http://127.0.0.1:$PORT/"
	assert_output 405
	# one-shot on the same inputs
	printf 'GET /-/alive HTTP/1.1\r\nHost: x\r\n\r\n' | kwh-handle "${VOPTS[@]}" --log none >"$TMP/o"
	assert_equal "$(http_status "$TMP/o")" 200
	# a request cut short inside its headers
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'POST / HTTP/1.1\r\nHost: x\r\n' >&$fd
	exec {fd}>&-	# closes both directions: the server sees the end
	# the body over the limit: 413, and the answer reaches the client
	run post "$TMP/push.json" push d-big
	assert_output 413
	jq -e '.status == 413' "$TMP/listen.body"
	grep -q 'status=400 msg="request truncated' "$TMP/listen.log"
}

@test "listen: 60 requests through one worker: all 201, and one connection to the API server" {
	start_listen --workers 1
	apiserver_control DELETE /_test/connections >/dev/null
	curl_config "$TMP/push.json" push 60 d-seq >"$TMP/cfg"
	curl -sS -K "$TMP/cfg" >"$TMP/codes"
	assert_equal "$(sort "$TMP/codes" | uniq -c | xargs)" "60 201"
	[ "$(apiserver_objects | jq '[.[] | select(.kind == "Workflow")] | length')" = 60 ]
	requests=$(apiserver_requests | jq length)
	conns=$(apiserver_connections)
	echo "requests=$requests connections=$conns"
	[ "$requests" -ge 60 ]
	[ "$conns" -ge 1 ] && [ "$conns" -le 2 ]
	[ "$(workers | wc -l)" = 1 ]
	[ "$(grep -c 'prog=kwh-apply level=info delivery=d-seq-[0-9]* msg="created Workflow' "$TMP/listen.log")" = 60 ]
}

@test "listen: 8 concurrent requests with --workers 2 all succeed" {
	start_listen --workers 2
	wait_workers 2
	sig=$(sig_of "$TMP/push.json" "$TMP/secret")
	pids=()
	for i in 1 2 3 4 5 6 7 8; do
		curl -sS --max-time 20 -o /dev/null -w '%{http_code}\n' \
			-H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
			-H "X-GitHub-Delivery: d-conc-$i" -H "X-Hub-Signature-256: $sig" \
			--data-binary @"$TMP/push.json" "http://127.0.0.1:$PORT/" >"$TMP/code.$i" &
		pids+=($!)
	done
	wait "${pids[@]}"
	assert_equal "$(cat "$TMP"/code.* | sort | uniq -c | xargs)" "8 201"
	[ "$(apiserver_objects | jq length)" = 8 ]
	[ "$(workers | wc -l)" = 2 ]
}

@test "listen: a client that sends nothing gets 408 after --timeout; another is served meanwhile" {
	start_listen --workers 2 --timeout 2
	wait_workers 2
	exec {SLOW_FD}<>"/dev/tcp/127.0.0.1/$PORT"
	t0=$(date +%s%3N)
	run post "$TMP/push.json" push d-fast
	t1=$(date +%s%3N)
	assert_output 201
	[ $((t1 - t0)) -lt 1500 ]
	timeout 5 cat <&$SLOW_FD >"$TMP/slow.resp" || true
	t2=$(date +%s%3N)
	assert_equal "$(http_status "$TMP/slow.resp")" 408
	[ $((t2 - t0)) -ge 1500 ]
	grep -q 'status=408 msg="request not received within 2000 ms' "$TMP/listen.log"
}

@test "listen: a worker killed with SIGKILL is logged and replaced; the next request succeeds" {
	start_listen --workers 1
	wait_workers 1
	old=$(workers)
	kill -9 "$old"
	wait_replaced "$old"
	grep -q "msg=\"worker $old killed by signal 9 (Killed) after [0-9.]* s; replacing it\"" "$TMP/listen.log"
	grep -q 'msg="next worker in 100 ms"' "$TMP/listen.log"
	run post "$TMP/push.json" push d-after-kill
	assert_output 201
	[ "$(apiserver_objects | jq length)" = 1 ]
	kill -0 "$LISTEN_PID"
	# a worker that keeps dying young is replaced ever more slowly
	old=$(workers)
	kill -9 "$old"
	wait_replaced "$old"
	grep -q 'msg="next worker in 200 ms"' "$TMP/listen.log"
	run post "$TMP/push.json" push d-after-kill-2
	assert_output 201
}

@test "listen: --max-requests 3: a worker exits after 3 requests and is replaced" {
	start_listen --workers 1 --max-requests 3
	curl_config "$TMP/push.json" push 7 d-max >"$TMP/cfg"
	curl -sS -K "$TMP/cfg" >"$TMP/codes"
	assert_equal "$(sort "$TMP/codes" | uniq -c | xargs)" "7 201"
	[ "$(grep -c 'msg="worker [0-9]* exits after 3 requests (--max-requests)"' "$TMP/listen.log")" = 2 ]
	[ "$(grep -c 'msg="worker [0-9]* started"' "$TMP/listen.log")" = 3 ]
	grep -q 'msg="listening on 127.0.0.1:[0-9]* with 1 worker, each replaced after 3 requests"' "$TMP/listen.log"
	run -1 grep 'level=error' "$TMP/listen.log"
}

@test "listen: SIGTERM lets an in-flight request finish, then exits 0 and closes the port" {
	start_listen --workers 2
	wait_workers 2
	# the API server answers the create after 1.5 s
	apiserver_fault '{"count":1,"delay":1.5,"method":"POST"}'
	sig=$(sig_of "$TMP/push.json" "$TMP/secret")
	curl -sS --max-time 20 -o "$TMP/inflight.body" -w '%{http_code}' \
		-H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
		-H 'X-GitHub-Delivery: d-inflight' -H "X-Hub-Signature-256: $sig" \
		--data-binary @"$TMP/push.json" "http://127.0.0.1:$PORT/" >"$TMP/inflight.code" &
	CURL_PID=$!
	n=100
	until apiserver_requests | jq -e 'any(.[]; .method == "POST")' >/dev/null 2>&1 ||
		grep -q 'delivery=d-inflight' "$TMP/listen.log"; do
		n=$((n - 1)); [ "$n" -gt 0 ] || false
		sleep 0.05
	done
	kill -TERM "$LISTEN_PID"
	wait "$CURL_PID"
	unset CURL_PID
	assert_equal "$(cat "$TMP/inflight.code")" 201
	jq -e '.status == 201' "$TMP/inflight.body"
	wait "$LISTEN_PID" && rc=0 || rc=$?
	unset LISTEN_PID
	assert_equal "$rc" 0
	[ -z "$(ss -Hltn "( sport = :$PORT )")" ]
	run curl -sS --max-time 5 "http://127.0.0.1:$PORT/-/alive"
	assert_failure
	grep -q 'msg=stopped' "$TMP/listen.log"
	[ "$(apiserver_objects | jq length)" = 1 ]
}

@test "listen: a worker does not grow over 400 requests" {
	# ASan keeps freed memory in quarantine: RSS says nothing there
	[ -z "${KWH_SANITIZED:-}" ] || skip "RSS is meaningless under ASan (its quarantine)"
	start_listen --workers 1
	wait_workers 1
	w=$(workers)
	curl_config "$TMP/push.json" push 100 d-warm >"$TMP/cfg"
	curl -sS -K "$TMP/cfg" >"$TMP/codes"
	rss1=$(ps -o rss= -p "$w")
	curl_config "$TMP/push.json" push 300 d-grow >"$TMP/cfg"
	curl -sS -K "$TMP/cfg" >>"$TMP/codes"
	rss2=$(ps -o rss= -p "$w")
	echo "rss after 100: $rss1 kB, after 400: $rss2 kB"
	assert_equal "$(sort "$TMP/codes" | uniq -c | xargs)" "400 201"
	assert_equal "$(workers)" "$w"
	# a leak of even 5 kB per request would show as 1.5 MB
	[ $((rss2 - rss1)) -lt 1500 ]
}

@test "listen: 30 requests under valgrind: no error, no leak in the parent or the worker" {
	[ -z "${KWH_SANITIZED:-}" ] || skip "valgrind does not run sanitizer builds"
	command -v valgrind >/dev/null || skip "no valgrind"
	PORT=$(free_port)
	valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
		--errors-for-leak-kinds=definite,indirect --error-exitcode=42 --log-file="$TMP/vg.%p" \
		kwh-handle --listen "127.0.0.1:$PORT" --workers 1 "${VOPTS[@]}" "${FOPTS[@]}" "${POPTS[@]}" \
		--log "$TMP/listen.log" 3>&- &
	LISTEN_PID=$!
	wait_port "$PORT" 30
	curl_config "$TMP/push.json" push 28 d-vg >"$TMP/cfg"
	curl -sS -K "$TMP/cfg" >"$TMP/codes"
	run post "$TMP/push.json" push d-vg-bad other
	assert_output 401
	run curl -sS --max-time 20 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/-/alive"
	assert_output 200
	assert_equal "$(sort "$TMP/codes" | uniq -c | xargs)" "28 201"
	stop_listen
	assert_equal "$LISTEN_RC" 0
	if grep -qs 'ERROR SUMMARY: [1-9]' "$TMP"/vg.* || [ -n "$(cat "$TMP"/vg.*)" ]; then
		cat "$TMP"/vg.*; false
	fi
	grep -q 'exits after 30 requests' "$TMP/listen.log"
}

@test "listen: secrets are in no process's arguments or environment, nor in any log" {
	export WEBHOOK_SECRET=env-secret-value
	start_listen --workers 2 --secret-file "$TMP/secret"
	unset WEBHOOK_SECRET
	wait_workers 2
	run post "$TMP/push.json" push d-secret
	assert_output 201
	# the server's whole process tree (no request is in flight now); a
	# search of every process would see other test runs on the machine
	tree=$LISTEN_PID level=$LISTEN_PID
	while level=$(pgrep -d, -P "$level"); [ -n "$level" ]; do tree+=,$level; done
	IFS=, read -ra pids <<<"$tree"
	[ "${#pids[@]}" -ge 3 ]
	for p in "${pids[@]}"; do
		# read whole first (a process that is gone fails here), then looked at
		run -0 tr '\0' ' ' <"/proc/$p/cmdline"
		assert_output --partial kwh-handle
		refute_output --regexp 'listen-secret|env-secret-value'
		# /proc's copy of the initial environment keeps the name: the value
		# was zeroed in place (kwh_cli_secret_env)
		run -0 tr '\0' '\n' <"/proc/$p/environ"
		assert_line --regexp '^PATH='
		refute_output --partial env-secret-value
		refute_line --regexp '^WEBHOOK_SECRET=.'
	done
	# the env secret works too
	printf 'env-secret-value' >"$TMP/envsecret"; chmod 600 "$TMP/envsecret"
	run post "$TMP/push.json" push d-secret2 envsecret
	assert_output 201
	stop_listen
	run -1 grep -e listen-secret -e env-secret-value -e "$APISERVER_TOKEN" "$TMP/listen.log" "$TMP/listen.err"
	[ "$(grep -c 'delivery=d-secret' "$TMP/listen.log")" -ge 3 ]
}

@test "listen: 0.0.0.0 and [::] bind all addresses; systemd socket activation" {
	# serves HOST: /-/alive answered on 127.0.0.1, the address logged
	serves() {
		PORT=$(free_port)
		kwh-handle --listen "$1:$PORT" "${VOPTS[@]}" --dry-run=client --log "$TMP/any.log" 3>&- &
		LISTEN_PID=$!
		wait_port "$PORT"
		run curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/-/alive"
		assert_output 200
		grep -qF "listening on $1:$PORT" "$TMP/any.log"
		stop_listen
	}
	serves 0.0.0.0
	serves '[::]'
	command -v systemd-socket-activate >/dev/null || skip "no systemd-socket-activate"
	PORT=$(free_port)
	systemd-socket-activate -l "127.0.0.1:$PORT" kwh-handle --listen systemd --workers 1 \
		"${VOPTS[@]}" --dry-run=client --log "$TMP/sd.log" 2>"$TMP/sd.err" 3>&- &
	LISTEN_PID=$!
	wait_port "$PORT"
	run curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/-/alive"
	assert_output 200
	run curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/-/alive"
	assert_output 200
	grep -q "listening on 127.0.0.1:$PORT with 1 worker" "$TMP/sd.log"
	stop_listen
	assert_equal "$LISTEN_RC" 0
}

@test "listen: usage errors: options without --listen, bad addresses and counts; a taken port" {
	run -100 --separate-stderr kwh-handle "${VOPTS[@]}" --workers 2 </dev/null
	[[ "$stderr" == *"--workers: only with --listen"* ]]
	run -100 --separate-stderr kwh-handle "${VOPTS[@]}" --max-requests 2 </dev/null
	[[ "$stderr" == *"--max-requests: only with --listen"* ]]
	run -100 --separate-stderr kwh-handle "${VOPTS[@]}" --listen 127.0.0.1:8080 --workers 0
	[[ "$stderr" == *"--workers"* ]]
	run -100 --separate-stderr kwh-handle "${VOPTS[@]}" --listen 127.0.0.1:99999
	[[ "$stderr" == *"port '99999'"* ]]
	run -100 --separate-stderr kwh-handle "${VOPTS[@]}" --listen ::1:8080
	[[ "$stderr" == *"[ADDRESS]:PORT"* ]]
	run -111 --separate-stderr kwh-handle "${VOPTS[@]}" --listen systemd
	[[ "$stderr" == *"systemd passed no socket"* ]]
	run -100 --separate-stderr kwh-handle --listen 127.0.0.1:8080 --log none
	[[ "$stderr" == *"no secret"* ]]
	# a port something else listens on
	run -111 --separate-stderr kwh-handle "${VOPTS[@]}" --listen "127.0.0.1:$APISERVER_PORT" --log none
	[[ "$stderr" == *"cannot listen"* ]]
}

@test "listen: share/systemd/kwh-handle-listen.{socket,service} verify, and their ExecStart serves" {
	command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
	command -v systemd-socket-activate >/dev/null || skip "no systemd-socket-activate"
	mkdir -p "$TMP/units"
	cp "$TOP_DIR"/share/systemd/kwh-handle-listen.socket "$TOP_DIR"/share/systemd/kwh-handle-listen.service "$TMP/units/"
	sed -i "s|^ExecStart=/usr/local/bin/kwh-handle |ExecStart=$KWH_BIN/kwh-handle |" "$TMP/units/kwh-handle-listen.service"
	grep -q "^ExecStart=$KWH_BIN/kwh-handle " "$TMP/units/kwh-handle-listen.service"
	cd "$TMP/units"
	run systemd-analyze verify --man=no ./kwh-handle-listen.socket ./kwh-handle-listen.service
	assert_success
	assert_output ''
	# the service's command line, with the credentials and cache of a test
	mkdir "$TMP/creds" "$TMP/cachedir"
	cp "$TMP/secret" "$TMP/creds/webhook-secret"
	cp "$APISERVER_DIR/kubeconfig" "$TMP/creds/kubeconfig"
	cmd=$(sed -n '/^ExecStart=/,/[^\\]$/p' "$TMP/units/kwh-handle-listen.service" |
		sed 's/^ExecStart=//; s/\\$//' | tr -d '\n\t' |
		sed "s|%d|$TMP/creds|g; s|%C|$TMP/cachedir|g; s|--log stderr|--log $TMP/listen.log --allow-remote-host file://|")
	[[ "$cmd" == *"--listen systemd"* ]]
	PORT=$(free_port)
	# shellcheck disable=SC2086
	systemd-socket-activate -l "127.0.0.1:$PORT" $cmd 2>"$TMP/sd.err" 3>&- &
	LISTEN_PID=$!
	wait_port "$PORT"
	run post "$TMP/push.json" push d-unit
	assert_output 201
	apiserver_objects | jq -e 'length == 1 and .[0].kind == "Workflow"'
	[ -d "$TMP/cachedir/kwh" ]
	stop_listen
	assert_equal "$LISTEN_RC" 0
}

@test "listen: the completions know --listen, --workers and --max-requests" {
	run bash -c '
		set -e
		. "$TOP_DIR/completions/kwh.bash"
		COMP_WORDS=(kwh-handle --liste); COMP_CWORD=1; _kwh
		printf "%s\n" "${COMPREPLY[@]}"
		COMP_WORDS=(kwh-handle --listen sys); COMP_CWORD=2; _kwh
		printf "%s\n" "${COMPREPLY[@]}"
		COMP_WORDS=(kwh-handle --max-r); COMP_CWORD=1; _kwh
		printf "%s\n" "${COMPREPLY[@]}"'
	assert_success
	assert_output "$(printf -- '--listen\nsystemd\n--max-requests')"
	command -v fish >/dev/null || skip "no fish"
	run fish --no-config -c "source '$TOP_DIR/completions/kwh.fish'; complete -C'kwh-handle --work'; complete -C'kwh-handle --listen '"
	assert_success
	assert_line --index 0 --partial -- '--workers'
	assert_line --partial 'systemd'
}

@test "listen: the token file is read again for every request (a rotated token is used)" {
	printf 'wrong-token\n' >"$TMP/token"
	sed "s|^    token: .*|    tokenFile: $TMP/token|" "$APISERVER_DIR/kubeconfig" >"$TMP/kubeconfig"
	grep -q tokenFile "$TMP/kubeconfig"
	POPTS=(--kubeconfig "$TMP/kubeconfig" --cache "$TMP/cache" --no-dedupe)
	start_listen --workers 1
	run post "$TMP/push.json" push d-tok-1
	assert_output 502
	jq -e '.message | test("refused our credentials")' "$TMP/listen.body"
	# rotate: the same worker picks the new token up
	printf '%s\n' "$APISERVER_TOKEN" >"$TMP/token"
	run post "$TMP/push.json" push d-tok-2
	assert_output 201
	apiserver_control POST /_test/tokens '{"token":"rotated-token","user":"system:serviceaccount:ci:kwh"}' >/dev/null
	printf 'rotated-token\n' >"$TMP/token"
	run post "$TMP/push.json" push d-tok-3
	assert_output 201
	[ "$(workers | wc -l)" = 1 ]
	[ "$(grep -c 'msg="worker [0-9]* started"' "$TMP/listen.log")" = 1 ]
	apiserver_requests | jq -e '.[0].status == 401 and ([.[] | select(.method == "POST") | .status] == [201, 201])'
}

# exec_kubeconfig EXPIRES: a kubeconfig whose user is the test exec plugin,
# giving the token in $TMP/exec-token with that expirationTimestamp and
# counting its runs in $TMP/runs; POPTS use it.
exec_kubeconfig() {
	write_kubeconfig "$TMP/kc" "    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: $BATS_TEST_DIRNAME/fixtures/apply/exec-plugin.sh
      args: [token, $TMP/exec-token]
      env:
      - name: PLUGIN_RUNS
        value: $TMP/runs
      - name: PLUGIN_EXPIRES
        value: \"$1\""
	POPTS=(--kubeconfig "$TMP/kc" --cache "$TMP/cache" --no-dedupe)
	: >"$TMP/runs"
}

runs() { wc -l <"$TMP/runs"; }

@test "listen: an exec plugin's credentials are kept until they expire, and asked for again after a 401" {
	apiserver_control POST /_test/tokens '{"token":"exec-token-1","user":"system:serviceaccount:ci:kwh"}' >/dev/null
	printf 'exec-token-1\n' >"$TMP/exec-token"
	exec_kubeconfig "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%S.123456+00:00)"
	start_listen --workers 1
	run post "$TMP/push.json" push d-exec-1
	assert_output 201
	first=$(runs)
	[ "$first" -ge 1 ]
	run post "$TMP/push.json" push d-exec-2
	assert_output 201
	[ "$(runs)" = "$first" ]
	# the kept token is revoked: 401, the plugin runs again, the POST is sent again
	apiserver_control POST /_test/tokens '{"token":"exec-token-2","user":"system:serviceaccount:ci:kwh"}' >/dev/null
	printf 'exec-token-2\n' >"$TMP/exec-token"
	apiserver_control DELETE /_test/tokens '{"token":"exec-token-1"}' >/dev/null
	run post "$TMP/push.json" push d-exec-3
	assert_output 201
	[ "$(runs)" = "$((first + 1))" ]
	apiserver_requests | jq -e '[.[] | select(.method == "POST") | .status] == [201, 201, 401, 201]'
	grep -q 'msg="POST [^"]*: 401 Unauthorized with the exec plugin.s credentials; ran it again"' "$TMP/listen.log"
	run -1 grep exec-token "$TMP/listen.log"
}

@test "listen: an exec plugin's expired (or unreadable) credentials are asked for at every request" {
	cp "$APISERVER_DIR/token" "$TMP/exec-token"
	n=0
	for expires in 2020-01-01T00:00:00Z 'next tuesday'; do
		n=$((n + 1))
		exec_kubeconfig "$expires"
		start_listen --workers 1
		run post "$TMP/push.json" push "d-exp-$n-1"
		assert_output 201
		first=$(runs)
		run post "$TMP/push.json" push "d-exp-$n-2"
		assert_output 201
		run post "$TMP/push.json" push "d-exp-$n-3"
		assert_output 201
		[ "$(runs)" = "$((first + 2))" ]
		stop_listen
	done
}

@test "listen: a secret file that changes is read again, without a restart" {
	cp "$TMP/secret" "$TMP/old-secret"
	start_listen --workers 1
	run post "$TMP/push.json" push d-rot-1
	assert_output 201
	# replaced as a Kubernetes Secret volume or mv replaces it
	printf 'the-new-secret\n' >"$TMP/secret.new"
	mv "$TMP/secret.new" "$TMP/secret"
	cp "$TMP/secret" "$TMP/new-secret"; chmod 600 "$TMP/new-secret"
	run post "$TMP/push.json" push d-rot-2 old-secret
	assert_output 401
	run post "$TMP/push.json" push d-rot-3 new-secret
	assert_output 201
	grep -q 'msg="a secret file changed: the secrets were read again"' "$TMP/listen.log"
	# a file that cannot be read keeps the secrets in use, with a warning
	rm "$TMP/secret"
	run post "$TMP/push.json" push d-rot-4 new-secret
	assert_output 201
	grep -q "level=warn .*the secrets in use are kept" "$TMP/listen.log"
	[ "$(grep -c 'the secrets in use are kept' "$TMP/listen.log")" = 1 ]
	run post "$TMP/push.json" push d-rot-5 new-secret
	assert_output 201
	[ "$(grep -c 'the secrets in use are kept' "$TMP/listen.log")" = 1 ]
	[ "$(grep -c 'msg="worker [0-9]* started"' "$TMP/listen.log")" = 1 ]
	run -1 grep -e the-new-secret -e listen-secret "$TMP/listen.log" "$TMP/listen.err"
}

@test "listen: a --token-file that changes is read again, without a restart" {
	SRV=$TMP/srv
	mkdir -p "$SRV/octo"
	git clone -q --bare "$TMP/repo" "$SRV/octo/repo.git"
	start_http_git git-token-2
	printf 'git-token-1\n' >"$TMP/gtoken"
	FOPTS+=(--token-file "$TMP/gtoken" --remote "http://127.0.0.1:$HTTP_GIT_PORT/{full_name}.git")
	start_listen --workers 1
	run post "$TMP/push.json" push d-gtok-1
	assert_output 502
	jq -e '.message == "fetching the repository failed; see the log for delivery d-gtok-1"' "$TMP/listen.body"
	grep -q 'delivery=d-gtok-1 status=502 msg=".*the remote refused our credentials' "$TMP/listen.log"
	printf 'git-token-2\n' >"$TMP/gtoken.new"
	mv "$TMP/gtoken.new" "$TMP/gtoken"
	run post "$TMP/push.json" push d-gtok-2
	assert_output 201
	grep -q 'msg="the token file changed: it was read again"' "$TMP/listen.log"
	run -1 grep git-token "$TMP/listen.log" "$TMP/listen.err"
}

@test "listen: 40 idle or trickling connections delay neither /-/alive nor a signed delivery" {
	start_listen --workers 2
	wait_workers 2
	slow_clients 15 idle
	slow_clients 15 trickle
	slow_clients 10 body
	sleep 0.5
	ms=$(elapsed_ms curl -sS --max-time 20 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/-/alive")
	echo "alive: $(cat "$TMP/elapsed.out") in $ms ms"
	assert_equal "$(cat "$TMP/elapsed.out")" 200
	[ "$ms" -lt 2000 ]
	ms=$(elapsed_ms post "$TMP/push.json" push d-beside-slow)
	echo "delivery: $(cat "$TMP/elapsed.out") in $ms ms"
	assert_equal "$(cat "$TMP/elapsed.out")" 201
	[ "$ms" -lt 2000 ]
	[ "$(apiserver_objects | jq length)" = 1 ]
}

@test "listen: a head still incomplete after --header-timeout gets 408, logged" {
	start_listen --workers 1 --header-timeout 1 --timeout 5
	exec {SLOW_FD}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'POST / HTTP/1.1\r\nHost: x\r\n' >&$SLOW_FD
	t0=$(date +%s%3N)
	timeout 5 cat <&$SLOW_FD >"$TMP/slow.resp" || true
	t1=$(date +%s%3N)
	assert_equal "$(http_status "$TMP/slow.resp")" 408
	echo "408 after $((t1 - t0)) ms"
	[ $((t1 - t0)) -ge 700 ] && [ $((t1 - t0)) -lt 3000 ]
	grep -q 'status=408 msg="request headers not received within 1000 ms (26 bytes read)' "$TMP/listen.log"
	# a body is still read until --timeout
	exec {SLOW_FD}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{' >&$SLOW_FD
	timeout 8 cat <&$SLOW_FD >"$TMP/slow.resp" || true
	assert_equal "$(http_status "$TMP/slow.resp")" 408
	grep -q 'status=408 msg="request not received within 5000 ms' "$TMP/listen.log"
	[ "$(grep -c 'status=408' "$TMP/listen.log")" = 2 ]
	run -1 grep 'level=error' "$TMP/listen.log"
}

@test "listen: beyond --max-pending the oldest idle connection is closed; the soft descriptor limit is raised" {
	PORT=$(free_port)
	(ulimit -Sn 256; exec kwh-handle --listen "127.0.0.1:$PORT" "${VOPTS[@]}" --dry-run=client \
		--workers 1 --max-pending 5 --log "$TMP/listen.log" 2>"$TMP/listen.err" 3>&-) &
	LISTEN_PID=$!
	wait_port "$PORT"
	wait_workers 1
	awk '/^Max open files/ { if ($4 != $5) exit 1 }' "/proc/$LISTEN_PID/limits"
	exec {SLOW_FD}<>"/dev/tcp/127.0.0.1/$PORT"	# the oldest
	sleep 0.2
	slow_clients 6 idle
	# the oldest was closed: it reads the end at once
	run timeout 3 cat <&$SLOW_FD
	assert_success
	assert_output ''
	run curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/-/alive"
	assert_output 200
	grep -q 'level=warn .*closed .*--max-pending 5' "$TMP/listen.log"
}
