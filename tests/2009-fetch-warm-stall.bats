#!/usr/bin/env bats
# A fetch into a warm cache entry that does not finish (a remote that
# accepts and says nothing; the deadline kills the fetch) leaves the entry
# usable: the next delivery of a cached revision is read from it, nothing
# rebuilt (issue 16, point 1, in part).

load test_helper

setup() {
	setup_tmp
	ALLOW=(--allow-remote-host git://127.0.0.1)
	make_test_repo
	start_git_daemon
	URL=git://127.0.0.1:$GIT_DAEMON_PORT/octo/repo.git
	CACHE=$TMP/cache
}

teardown() {
	stop_git_servers
}

@test "a stalled fetch into a warm entry: the next read of a cached revision is served from it" {
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	entry=$(ls -d "$CACHE"/*.git)
	# the remote now accepts and says nothing
	kill "$GIT_DAEMON_PID"
	while kill -0 "$GIT_DAEMON_PID" 2>/dev/null; do sleep 0.05; done
	start_silent_server "$GIT_DAEMON_PORT"
	envelope "$FEAT" refs/heads/feature "$URL" octo/repo main $(( $(now_ms) + 2500 )) > "$TMP/in"
	# killed at the deadline (no background fetch; tests/2013 has those)
	run --separate-stderr timeout 20 kwh-fetch --cache "$CACHE" "${ALLOW[@]}" \
	    --max-background-fetches 0 < "$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 504
	# a revision the entry holds is read from it, without the remote
	envelope "$REV1" refs/heads/main "$URL" octo/repo main $(( $(now_ms) + 2500 )) > "$TMP/in"
	run --separate-stderr timeout 20 kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" one
	# the same entry, with what the first fetch brought
	assert_equal "$(ls -d "$CACHE"/*.git)" "$entry"
	assert_equal "$(git --git-dir="$entry" cat-file -t "$REV3")" commit
	[ ! -e "$entry/kwh-incomplete" ]
}

@test "an entry whose first fetch was killed is rebuilt, not trusted" {
	# a repository that was never filled: the marker and no reference
	envelope "$REV1" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	entry=$(ls -d "$CACHE"/*.git)
	rm -rf "$entry" && git init -q --bare "$entry" && : >"$entry/kwh-incomplete"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" one
	[ ! -e "$entry/kwh-incomplete" ]
}
