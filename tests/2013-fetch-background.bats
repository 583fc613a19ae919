#!/usr/bin/env bats
# A fetch outlives the delivery that started it (issue 16, point 2): a
# fetch still running at the deadline goes on in the background under
# --fetch-budget; the delivery gets 503 with Retry-After within its
# deadline; the fetch lands, and the next delivery reads the cache.  The
# slow remote is a git daemon whose upload-pack waits at a gate (an
# uploadpack.packObjectsHook in a GIT_CONFIG_GLOBAL file) until the test
# opens it: what happened before the answer is told by the gate's files,
# not by timings.

load test_helper

setup() {
	setup_tmp
	ALLOW=(--allow-remote-host git://127.0.0.1)
	make_test_repo
	start_gated_git_daemon
	URL=git://127.0.0.1:$GIT_DAEMON_PORT/octo/repo.git
	CACHE=$TMP/cache
	LOG=$TMP/fetch.log
}

teardown() {
	: > "$TMP/gate-open"
	# the background fetches end once the gate is open
	for _ in $(seq 100); do
		ls "$CACHE"/*.git/kwh-incomplete >/dev/null 2>&1 || break
		sleep 0.1
	done
	stop_git_servers
}

# wait_log TEXT: waits (20 s at most) until the log holds TEXT.
wait_log() {
	local n=200
	until grep -qF -- "$1" "$LOG" 2>/dev/null; do
		[ $n -gt 0 ] || { echo "not logged: $1" >&2; cat "$LOG" >&2; return 1; }
		sleep 0.1
		n=$((n - 1))
	done
}

@test "a fetch that outlasts the deadline: 503 + Retry-After in time, then it lands and the next delivery reads the cache" {
	envelope "$REV2" refs/heads/main "$URL" octo/repo main $(( $(now_ms) + 2000 )) > "$TMP/in"
	run --separate-stderr timeout 20 kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --log "$LOG" < "$TMP/in"
	assert_failure 1
	# answered while the remote still waited at the gate
	[ -e "$TMP/gate-reached" ]
	[ ! -e "$TMP/gate-passed" ]
	assert_equal "$(jq -r .response.status <<< "$output")" 503
	assert_equal "$(jq -r .response.retry_after <<< "$output")" 30
	jq -e '.response.message | test("background")' <<< "$output"
	# kwh-respond carries it to the HTTP answer
	run --separate-stderr kwh-respond <<< "$output"
	[[ "$output" == "HTTP/1.1 503 "* ]]
	[[ "$output" == *$'\r\nRetry-After: 30\r\n'* ]]
	grep -F "goes on in the background" "$LOG"
	# the fetch lands without any further command
	: > "$TMP/gate-open"
	wait_log "background fetch from $URL landed"
	wait_log "background slot 0 free"
	entry=$(ls -d "$CACHE"/*.git)
	[ ! -e "$entry/kwh-incomplete" ]
	# the next delivery of that revision: from the cache, no fetch
	packs=$(upload_packs)
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr timeout 20 kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" two
	assert_equal "$(upload_packs)" "$packs"
}

@test "--fetch-budget stops a background fetch that never ends; a warm entry stays usable" {
	: > "$TMP/gate-open"
	envelope "$REV1" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	entry=$(ls -d "$CACHE"/*.git)
	rm "$TMP/gate-open" "$TMP/gate-passed"
	envelope "$FEAT" refs/heads/feature "$URL" octo/repo main $(( $(now_ms) + 1500 )) > "$TMP/in"
	run --separate-stderr timeout 20 kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --log "$LOG" \
	    --fetch-budget 3 < "$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r .response.status <<< "$output")" 503
	wait_log "did not finish within 3 s (--fetch-budget): stopped"
	wait_log "background slot 0 free"
	[ ! -e "$TMP/gate-passed" ]
	# what the entry held is read from it
	envelope "$REV1" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr timeout 20 kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" one
	assert_equal "$(ls -d "$CACHE"/*.git)" "$entry"
}

@test "--max-background-fetches: with no slot free the fetch is stopped at the deadline (504)" {
	git clone -q --bare "$BARE" "$SRV/octo/other.git"
	OTHER=git://127.0.0.1:$GIT_DAEMON_PORT/octo/other.git
	envelope "$REV2" refs/heads/main "$URL" octo/repo main $(( $(now_ms) + 1500 )) > "$TMP/in"
	run --separate-stderr timeout 20 kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --log "$LOG" \
	    --max-background-fetches 1 < "$TMP/in"
	assert_equal "$(jq -r .response.status <<< "$output")" 503
	wait_log "slot 0, at most"
	envelope "$REV2" refs/heads/main "$OTHER" octo/other main $(( $(now_ms) + 1500 )) > "$TMP/in"
	run --separate-stderr timeout 20 kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --log "$LOG" \
	    --max-background-fetches 1 < "$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r .response.status <<< "$output")" 504
	wait_log "background fetches run already (--max-background-fetches)"
	# the one in the background still lands
	[ ! -e "$TMP/gate-passed" ]
	: > "$TMP/gate-open"
	wait_log "background fetch from $URL landed"
}

@test "--fetch-budget and --max-background-fetches: bad values are usage errors" {
	run -100 --separate-stderr kwh-fetch --fetch-budget 0 </dev/null
	run -100 --separate-stderr kwh-fetch --max-background-fetches 2000 </dev/null
	run -100 --separate-stderr kwh-handle --insecure --fetch-budget x </dev/null
}
