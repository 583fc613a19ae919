#!/usr/bin/env bats
# kwh-handle --listen serves Prometheus text at GET /metrics: it parses
# (tests/lib/promcheck.py, strict; promtool too where installed), and the
# counters move by exactly the deliveries sent, whichever worker handled
# them.  --metrics-path moves or disables it.

load test_helper

setup() {
	setup_tmp
	handler_setup metrics-secret
	unset LISTEN_PID
}

teardown() {
	[ -z "${LISTEN_PID:-}" ] || stop_pid "$LISTEN_PID"
	apiserver_stop
}

# listen [OPTIONS]: kwh-handle --listen with the test's stage options.
listen() {
	PORT=$(free_port)
	kwh-handle --listen "127.0.0.1:$PORT" "${VOPTS[@]}" "${AOPTS[@]}" "${FOPTS[@]}" \
		"${POPTS[@]}" --log "$TMP/listen.log" "$@" 2>"$TMP/listen.err" 3>&- &
	LISTEN_PID=$!
	wait_port "$PORT"
}

# deliver EVENT DELIVERY [SECRET]: POSTs $TMP/push.json signed; prints the status.
deliver() {
	local sig
	sig=$(sig_of "$TMP/push.json" "$TMP/${3:-secret}")
	curl -sS --max-time 20 -o /dev/null -w '%{http_code}' \
		-H 'Content-Type: application/json' -H "X-GitHub-Event: $1" \
		-H "X-GitHub-Delivery: $2" -H "X-Hub-Signature-256: $sig" \
		--data-binary @"$TMP/push.json" "http://127.0.0.1:$PORT/"
}

# scrape [PATH]: GETs the metrics into $TMP/metrics (headers in
# $TMP/metrics.head), checks them with promcheck.py, and leaves the
# samples, one per line, in $TMP/samples.
scrape() {
	curl -sS --max-time 10 -D "$TMP/metrics.head" -o "$TMP/metrics" \
		"http://127.0.0.1:$PORT${1:-/metrics}"
	python3 "$TESTS_DIR/lib/promcheck.py" --dump "$TMP/metrics" >"$TMP/samples"
	if command -v promtool >/dev/null; then
		promtool check metrics <"$TMP/metrics"
	fi
}

# sample LINE: the scrape holds exactly this sample line.
sample() {
	grep -qxF -- "$1" "$TMP/samples" || {
		echo "no sample '$1' in:" >&2
		cat "$TMP/samples" >&2
		return 1
	}
}

@test "promcheck.py refuses what is not Prometheus text" {
	printf '# TYPE x counter\nx 1\n' >"$TMP/a"
	run python3 "$TESTS_DIR/lib/promcheck.py" "$TMP/a"
	assert_failure
	assert_output --partial 'does not end in _total'
	printf 'x_total 1\n' >"$TMP/a"
	run python3 "$TESTS_DIR/lib/promcheck.py" "$TMP/a"
	assert_failure
	assert_output --partial 'no TYPE line'
	printf '# TYPE h histogram\nh_bucket{le="1"} 3\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n' >"$TMP/a"
	run python3 "$TESTS_DIR/lib/promcheck.py" "$TMP/a"
	assert_failure
	assert_output --partial 'not cumulative'
	printf '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n' >"$TMP/a"
	run python3 "$TESTS_DIR/lib/promcheck.py" "$TMP/a"
	assert_failure
	assert_output --partial '!= _count'
	printf '# TYPE g gauge\ng{a="\\x"} 1\n' >"$TMP/a"
	run python3 "$TESTS_DIR/lib/promcheck.py" "$TMP/a"
	assert_failure
	assert_output --partial 'bad escape'
	printf '# TYPE g gauge\ng{a="x\\n\\"y"} 1\n' >"$TMP/a"
	run python3 "$TESTS_DIR/lib/promcheck.py" --dump "$TMP/a"
	assert_success
}

@test "metrics: deliveries by event and status, stages, API requests, across workers" {
	mkdir "$TMP/spool"
	listen --workers 2 --spool "$TMP/spool"
	scrape
	grep -qi '^content-type: text/plain; version=0.0.4' "$TMP/metrics.head"
	run ! grep -q '^kwh_deliveries_total' "$TMP/samples"
	sample 'kwh_stage_duration_seconds_count{stage="verify"} 0'
	sample 'kwh_workers 2'
	sample 'kwh_spool_files 0'

	[ "$(deliver push d-1)" = 201 ]
	[ "$(deliver push d-2)" = 201 ]
	[ "$(deliver push d-bad other)" = 401 ]
	[ "$(deliver ping d-ping)" = 200 ]
	[ "$(deliver no_such_event d-odd)" = 202 ]
	[ "$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/-/alive")" = 200 ]
	scrape
	sample 'kwh_deliveries_total{event="push",status="201"} 2'
	sample 'kwh_deliveries_total{event="push",status="401"} 1'
	sample 'kwh_deliveries_total{event="ping",status="200"} 1'
	# an event kwh does not know counts as "other": the sender names it
	sample 'kwh_deliveries_total{event="other",status="202"} 1'
	[ "$(grep -c '^kwh_deliveries_total' "$TMP/samples")" = 4 ]
	# six requests read and answered (the probe too, but it is no
	# delivery); the two pushes alone were fetched and applied
	sample 'kwh_stage_duration_seconds_count{stage="verify"} 6'
	sample 'kwh_stage_duration_seconds_count{stage="annotate"} 4'
	sample 'kwh_stage_duration_seconds_count{stage="fetch"} 2'
	sample 'kwh_stage_duration_seconds_count{stage="apply"} 2'
	sample 'kwh_stage_duration_seconds_count{stage="respond"} 6'
	# two creations (--no-dedupe: one POST each), no retry
	sample 'kwh_kube_requests_total{code="201"} 2'
	run ! grep -q '^kwh_kube_requests_total{code="[345]' "$TMP/samples"
	sample 'kwh_kube_retries_total 0'
	# file:// remotes are fetched too: the first fetch filled the cache
	grep -q '^kwh_git_fetches_total{result="ok"} [12]$' "$TMP/samples"
	grep -q '^kwh_cache_bytes [1-9][0-9]*$' "$TMP/samples"
	# nothing else is in flight: the scrape itself may or may not be seen
	# (the parent notes it as the worker starts answering)
	grep -qx 'kwh_inflight_requests [01]' "$TMP/samples"
	sample 'kwh_queued_requests 0'
	# a scrape is no delivery, and logs nothing
	run ! grep -q 'metrics' "$TMP/listen.log"
}

@test "metrics: a bad signature needs no secret to be counted, and the scrape needs none" {
	listen --workers 1
	[ "$(deliver push d-bad other)" = 401 ]
	curl -sS --max-time 10 -o "$TMP/metrics" "http://127.0.0.1:$PORT/metrics?x=1"
	python3 "$TESTS_DIR/lib/promcheck.py" --dump "$TMP/metrics" >"$TMP/samples"
	sample 'kwh_deliveries_total{event="push",status="401"} 1'
	# HEAD: the headers only
	curl -sS --max-time 10 -I "http://127.0.0.1:$PORT/metrics" >"$TMP/head"
	grep -q '^HTTP/1.1 200' "$TMP/head"
	# a POST to /metrics is a delivery like any other: refused
	curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -X POST -d '{}' \
		"http://127.0.0.1:$PORT/metrics" >"$TMP/code"
	[ "$(cat "$TMP/code")" = 401 ]
}

@test "--metrics-path moves the endpoint; none disables it; only with --listen" {
	listen --workers 1 --metrics-path /-/metrics
	scrape /-/metrics
	sample 'kwh_workers 1'
	[ "$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/metrics")" = 405 ]
	stop_pid "$LISTEN_PID"
	unset LISTEN_PID
	listen --workers 1 --metrics-path none
	[ "$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/metrics")" = 405 ]
	run -100 kwh-handle --metrics-path /m --secret-file "$TMP/secret"
	assert_output --partial 'only with --listen'
	run -100 kwh-handle --listen 127.0.0.1:0 --metrics-path metrics --secret-file "$TMP/secret"
	assert_output --partial "neither a path"
}

@test "metrics: API retries and the answers that caused them; fetch bytes" {
	listen --workers 1
	apiserver_fault '{"count":2,"status":503,"method":"POST"}'
	[ "$(deliver push d-retry)" = 201 ]
	scrape
	sample 'kwh_kube_requests_total{code="503"} 2'
	sample 'kwh_kube_requests_total{code="201"} 1'
	sample 'kwh_kube_retries_total 2'
	sample 'kwh_deliveries_total{event="push",status="201"} 1'
	sample 'kwh_git_fetches_total{result="ok"} 1'
	# the bytes libgit2 received, carried back from the fetch's child
	grep -qE '^kwh_git_fetch_bytes_total [1-9][0-9]*$' "$TMP/samples"
}
