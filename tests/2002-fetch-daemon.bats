#!/usr/bin/env bats
# kwh-fetch against git daemon (git://): offline reads, concurrency, the
# deadline, unreachable remotes.

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

@test "git://: an exact revision, fetched once, then read from the cache" {
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v, .source.url' <<< "$output")" "two
$URL"
	# REV2 is below main's tip: shallow, main at depth 1, REV2 by id
	# (refused by this server), main at depth 50
	packs=1
	if shallow_fetch; then packs=3; fi
	assert_equal "$(upload_packs)" "$packs"
	envelope "$REV1" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" one
	# REV1 came with the first fetch: no further upload-pack
	assert_equal "$(upload_packs)" "$packs"
}

@test "git://: a cached revision is read with the server stopped (no network)" {
	envelope "$REV3" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	stop_pid "$GIT_DAEMON_PID"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" three
	# and the server is really gone: an unknown revision cannot be fetched
	envelope "$(printf 'a%.0s' {1..40})" refs/heads/main "$URL" > "$TMP/in2"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in2"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 502
}

@test "git://: a new commit pushed later is fetched into the existing cache" {
	envelope "$REV3" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	REV4=$(commit_file "$TMP/work" .ci/workflow.yaml "$(cm wf four)" four)
	git_quiet -C "$TMP/work" push -q "$BARE" main
	envelope "$REV4" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" four
	assert_equal "$(upload_packs)" 2
}

@test "git://: a remote that refuses connections is 502, the log naming it" {
	port=$(free_port)
	url=git://127.0.0.1:$port/octo/repo.git
	envelope "$REV1" refs/heads/main "$url" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 502
	assert_equal "$(jq -r '.response.message' <<< "$output")" "$GENERIC_FETCH_FAILURE d-1"
	assert_log_has "msg=\"git://127.0.0.1:$port/octo/repo.git: "
}

@test "git://: a remote that never answers is 504 before the deadline" {
	start_silent_server
	url=git://127.0.0.1:$SILENT_PORT/octo/repo.git
	envelope "$REV1" refs/heads/main "$url" octo/repo main $(( $(now_ms) + 1500 )) > "$TMP/in"
	# the kill at the deadline (a fetch going on in the background: tests/2013)
	run --separate-stderr timeout 20 kwh-fetch --cache "$CACHE" "${ALLOW[@]}" \
	    --max-background-fetches 0 < "$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r '.response | "\(.status) \(.message)"' <<< "$output")" \
	    "504 $GENERIC_FETCH_FAILURE d-1"
	assert_log_has "$url did not answer before the deadline"
}

@test "git://: a first fetch cut off at the deadline leaves no entry; the next run succeeds" {
	start_silent_server
	envelope "$REV1" refs/heads/main "git://127.0.0.1:$SILENT_PORT/octo/repo.git" \
	    octo/repo main $(( $(now_ms) + 1000 )) > "$TMP/in"
	run --separate-stderr timeout 20 kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --max-background-fetches 0 \
	    --remote "git://127.0.0.1:$SILENT_PORT/{full_name}.git" < "$TMP/in"
	assert_failure 1
	assert_equal "$(ls -A "$CACHE")" ""
	envelope "$REV1" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --remote "git://127.0.0.1:$GIT_DAEMON_PORT/{full_name}.git" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" one
}

@test "git://: --use-git-url takes payload.repository.git_url" {
	jq -nc --arg r "$REV1" --arg u "$URL" '{kwh:1, annotations:{"k8s-webhook-handler.io/revision":$r},
	    payload:{repository:{full_name:"octo/repo", clone_url:"https://127.0.0.1:1/x.git", git_url:$u}}}' > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --use-git-url < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.source.url' <<< "$output")" "$URL"
}

@test "git://: a revision only under a pull request ref is fetched through that ref" {
	git_quiet -C "$TMP/work" checkout -q -b pr "$REV1"
	PR=$(commit_file "$TMP/work" .ci/workflow.yaml "$(cm wf pr)" pr)
	git_quiet -C "$TMP/work" push -q "$BARE" "$PR:refs/pull/7/head"
	envelope "$PR" refs/pull/7/head "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" pr
	assert_equal "$(upload_packs)" 1
}

@test "git://: progress is shown on a terminal, never otherwise" {
	command -v script > /dev/null || skip "script(1) not installed"
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --log none < "$TMP/in"
	assert_success
	assert_equal "$stderr" ""
	rm -rf "$CACHE"
	run script -qec "kwh-fetch --cache '$CACHE' --allow-remote-host git://127.0.0.1 --log none < '$TMP/in' > '$TMP/out'" /dev/null
	assert_success
	assert_output --partial "kwh-fetch: receiving objects: 100%"
	assert_equal "$(jq -r '.manifests[0].data.v' "$TMP/out")" two
}
