#!/usr/bin/env bats
# kwh-fetch: which remotes it may reach (--allow-remote-host, --remote),
# what the sender is told when it may not, full revision ids, no cache
# entry for a URL that failed, the git deadline answered 504 in time.

load test_helper

setup() {
	setup_tmp
	make_test_repo
	CACHE=$TMP/cache
}

teardown() {
	stop_git_servers
}

# fetch_url URL [OPTIONS...]: kwh-fetch on an envelope for REV1 at URL.
fetch_url() {
	local url=$1
	shift
	envelope "$REV1" refs/heads/main "$url" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "$@" < "$TMP/in"
}

# cache_entries: the names in the cache directory (none: empty).
cache_entries() {
	ls -A "$CACHE" 2> /dev/null | tr '\n' ' ' | sed 's/ $//'
}

GENERIC="fetching the repository failed; see the log for delivery d-1"

@test "file:// is refused by default: 422, a generic message, the detail in the log, no cache entry" {
	fetch_url "file://$BARE"
	assert_failure 1
	assert_equal "$(jq -r '.response | "\(.status) \(.message)"' <<< "$output")" "422 $GENERIC"
	assert_equal "$(jq -r '.manifests // "none"' <<< "$output")" none
	# the path is in the log, not in the answer
	run ! grep -q "$BARE" <<< "$(jq -r '.response.message' <<< "$output")"
	assert_regex "$stderr" "delivery=d-1 status=422 msg=\"file://$BARE: local repositories are not allowed"
	assert_equal "$(cache_entries)" ""
}

@test "a plain local path (no scheme) is refused like file://" {
	fetch_url "$BARE"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 422
	assert_equal "$(cache_entries)" ""
}

@test "--allow-remote-host file:// allows local repositories" {
	fetch_url "file://$BARE" --allow-remote-host file://
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" one
	fetch_url "$BARE" --allow-remote-host file://
	assert_success
}

@test "--remote pins its own scheme: a file:// template is allowed without --allow-remote-host" {
	fetch_url "https://github.com/octo/repo.git" --remote "file://$SRV/{full_name}.git"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" one
}

@test "http://127.0.0.1 is refused by default, and the token is not sent: no request at all" {
	start_http_git s3cret
	secret_file token s3cret
	fetch_url "http://127.0.0.1:$HTTP_GIT_PORT/octo/repo.git" --token-file "$TMP/token"
	assert_failure 1
	assert_equal "$(jq -r '.response | "\(.status) \(.message)"' <<< "$output")" "422 $GENERIC"
	assert_regex "$stderr" "http://127\.0\.0\.1 is not an allowed remote"
	assert [ ! -s "$TMP/http.log" ]
	assert_equal "$(cache_entries)" ""
}

@test "--allow-remote-host HOST allows https and ssh only; SCHEME://HOST allows that scheme" {
	start_http_git s3cret
	secret_file token s3cret
	url=http://127.0.0.1:$HTTP_GIT_PORT/octo/repo.git
	fetch_url "$url" --token-file "$TMP/token" --allow-remote-host 127.0.0.1
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 422
	assert [ ! -s "$TMP/http.log" ]
	fetch_url "$url" --token-file "$TMP/token" --allow-remote-host http://127.0.0.1
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" one
}

@test "a name for 127.0.0.1 (localhost) is refused unless that name is allowed" {
	start_git_daemon
	fetch_url "git://localhost:$GIT_DAEMON_PORT/octo/repo.git" --allow-remote-host git://127.0.0.1
	assert_failure 1
	assert_equal "$(jq -r '.response | "\(.status) \(.message)"' <<< "$output")" "422 $GENERIC"
	assert_equal "$(upload_packs)" 0
	fetch_url "git://localhost:$GIT_DAEMON_PORT/octo/repo.git" --allow-remote-host git://LOCALHOST
	assert_success
	# shallow, REV1 (below main's tip) takes three: main at depth 1, REV1
	# by id (refused), main at depth 50
	packs=1
	if shallow_fetch; then packs=3; fi
	assert_equal "$(upload_packs)" "$packs"
}

@test "an allowed host name that resolves to a loopback address is refused before connecting" {
	# github.com (the default allow-list) made to resolve to 127.0.0.1 in a
	# mount namespace of its own
	unshare -m true 2> /dev/null || skip "unshare(1) cannot make a mount namespace here"
	start_silent_server
	printf '127.0.0.1 github.com\n' > "$TMP/hosts"
	envelope "$REV1" refs/heads/main "https://github.com:$SILENT_PORT/octo/repo.git" octo/repo main \
	    $(( $(now_ms) + 5000 )) > "$TMP/in"
	run --separate-stderr unshare -m sh -c 'mount --bind "$1" /etc/hosts && exec kwh-fetch --cache "$2" < "$3"' \
	    sh "$TMP/hosts" "$CACHE" "$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r '.response | "\(.status) \(.message)"' <<< "$output")" "422 $GENERIC"
	assert_regex "$stderr" "github\.com resolves to 127\.0\.0\.1, a loopback, private, link-local or reserved address"
	assert_equal "$(cache_entries)" ""
}

@test "URLs that hide another host, other schemes and scp-like remotes are refused by default" {
	for url in "https://github.com@127.0.0.1/octo/repo.git" "https://127.0.0.1#@github.com/x" \
	    "https://github.com.example.net/octo/repo.git" "ssh://git@127.0.0.1/octo/repo.git" \
	    "git@127.0.0.1:octo/repo.git" "git://github.com/octo/repo.git" \
	    "http://github.com/octo/repo.git" "ftp://github.com/x" "https://[::1]/x" \
	    "https://github.com:x@127.0.0.1/" "https://github%2ecom/x" "git@github.com@127.0.0.1:x.git"; do
		fetch_url "$url"
		assert_failure 1
		assert_equal "$url: $(jq -r '.response.status' <<< "$output")" "$url: 422"
	done
	assert_equal "$(cache_entries)" ""
}

@test "--allow-remote-host: a malformed entry is a usage error (100)" {
	for a in "" "ftp://h" "https://h/path" "https://u@h" "file:///srv" "h/x" "h_x"; do
		run --separate-stderr kwh-fetch --allow-remote-host "$a" < /dev/null
		assert_failure 100
		assert_regex "$stderr" "--allow-remote-host: '$a' is neither HOST"
	done
	run --separate-stderr kwh-fetch --allow-remote-host git.example.com --allow-remote-host '[::1]' \
	    --allow-remote-host ssh://10.0.0.1 --allow-remote-host file:// --help
	assert_success
}

@test "an abbreviated revision (4 or 39 hex digits) is 422, a full one is fetched" {
	for rev in "${REV1:0:4}" "${REV1:0:39}" "${REV1}0"; do
		envelope "$rev" refs/heads/main https://github.com/octo/repo.git > "$TMP/in"
		run --separate-stderr kwh-fetch --cache "$CACHE" --remote "file://$SRV/{full_name}.git" < "$TMP/in"
		assert_failure 1
		assert_equal "$(jq -r '.response.status' <<< "$output")" 422
		assert_regex "$(jq -r '.response.message' <<< "$output")" "is not a full commit id"
	done
	envelope "$REV1" refs/heads/main https://github.com/octo/repo.git > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" --remote "file://$SRV/{full_name}.git" < "$TMP/in"
	assert_success
}

@test "a URL that fails on its first fetch leaves no cache entry; a warm entry survives a failure" {
	port=$(free_port)
	envelope "$REV1" refs/heads/main https://github.com/octo/repo.git > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" --remote "git://127.0.0.1:$port/{full_name}.git" < "$TMP/in"
	assert_failure 1
	assert_equal "$(cache_entries)" ""
	assert_equal "$(jq -r '.response | "\(.status) \(.message)"' <<< "$output")" "502 $GENERIC"
	assert_regex "$stderr" "status=502 msg=\"git://127\.0\.0\.1:$port/octo/repo\.git: "
	# a repository the remote does not have
	start_git_daemon
	run --separate-stderr kwh-fetch --cache "$CACHE" \
	    --remote "git://127.0.0.1:$GIT_DAEMON_PORT/{owner}/missing.git" < "$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 502
	assert_equal "$(cache_entries)" ""
	# a warm entry: a failed fetch of an unknown revision keeps it
	tpl="git://127.0.0.1:$GIT_DAEMON_PORT/{full_name}.git"
	run --separate-stderr kwh-fetch --cache "$CACHE" --remote "$tpl" < "$TMP/in"
	assert_success
	entries=$(cache_entries)
	stop_pid "$GIT_DAEMON_PID"
	envelope "$(printf 'a%.0s' {1..40})" refs/heads/main https://github.com/octo/repo.git > "$TMP/in2"
	run --separate-stderr kwh-fetch --cache "$CACHE" --remote "$tpl" < "$TMP/in2"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 502
	assert_equal "$(cache_entries)" "$entries"
	run --separate-stderr kwh-fetch --cache "$CACHE" --remote "$tpl" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" one
}

@test "a remote that accepts and says nothing is 504, answered before the envelope's deadline" {
	start_silent_server
	deadline=$(( $(now_ms) + 2000 ))
	envelope "$REV1" refs/heads/main https://github.com/octo/repo.git octo/repo main "$deadline" > "$TMP/in"
	# the kill at the deadline (a fetch going on in the background: tests/2013)
	run --separate-stderr timeout 20 kwh-fetch --cache "$CACHE" --max-background-fetches 0 \
	    --remote "git://127.0.0.1:$SILENT_PORT/{full_name}.git" < "$TMP/in"
	end=$(now_ms)
	assert_failure 1
	# stopped a margin (0.5 s) before the deadline
	assert [ "$end" -lt "$deadline" ]
	assert_equal "$(jq -r '.response.status' <<< "$output")" 504
	assert_equal "$(cache_entries)" ""
	assert_equal "$(jq -r '.response.message' <<< "$output")" "$GENERIC"
	assert_regex "$stderr" "status=504 msg=\"git://127\.0\.0\.1:$SILENT_PORT/octo/repo\.git did not answer before the deadline"
}

# handle_request DELIVERY URL: $TMP/req, a signed push of REV1 on main from URL.
handle_request() {
	secret_file secret handle-secret
	jq --arg rev "$REV1" --arg url "$2" '.after = $rev | .ref = "refs/heads/main" |
	    .repository.clone_url = $url | .repository.full_name = "octo/repo"' \
	    "$FIXTURES/github/push-payload.json" > "$TMP/push.json"
	kwh-sign --event push --delivery "$1" --secret-file "$TMP/secret" "$TMP/push.json" > "$TMP/req"
}

@test "kwh-handle: the payload's file:// URL is 422 by default, fetched under --allow-remote-host file://" {
	handle_request d-h1 "file://$BARE"
	run --separate-stderr kwh-handle --secret-file "$TMP/secret" --cache "$CACHE" --dry-run=client < "$TMP/req"
	assert_failure 1
	assert_equal "$(http_status <(printf '%s\n' "$output"))" 422
	assert_equal "$(http_body <(printf '%s\n' "$output") | jq -r .message)" "$GENERIC_FETCH_FAILURE d-h1"
	assert_log_has "file://$BARE: local repositories are not allowed"
	run --separate-stderr kwh-handle --secret-file "$TMP/secret" --cache "$CACHE" --dry-run=client \
	    --allow-remote-host file:// --allow-kind /ConfigMap < "$TMP/req"
	assert_success
	assert_equal "$(http_status <(printf '%s\n' "$output"))" 200
}

@test "kwh-handle: a silent remote is answered 504 before the budget ends" {
	start_silent_server
	handle_request d-h2 https://github.com/octo/repo.git
	start=$(now_ms)
	# the kill at the deadline (a fetch going on in the background: tests/6006)
	run --separate-stderr timeout 20 kwh-handle --secret-file "$TMP/secret" --cache "$CACHE" \
	    --dry-run=client --budget 2 --max-background-fetches 0 \
	    --remote "git://127.0.0.1:$SILENT_PORT/{full_name}.git" < "$TMP/req"
	end=$(now_ms)
	assert_failure 1
	assert [ $(( end - start )) -lt 2000 ]
	assert_equal "$(http_status <(printf '%s\n' "$output"))" 504
	assert_equal "$(cache_entries)" ""
}
