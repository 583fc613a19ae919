#!/usr/bin/env bats
# kwh-fetch against git http-backend (http://) with a token check; a fetch
# killed half-way.

load test_helper

TOKEN=s3cr3t-t0ken-4-kwh

setup() {
	setup_tmp
	ALLOW=(--allow-remote-host http://127.0.0.1)
	make_test_repo
	start_http_git "$TOKEN"
	URL=http://127.0.0.1:$HTTP_GIT_PORT/octo/repo.git
	CACHE=$TMP/cache
	printf '%s\n' "$TOKEN" > "$TMP/token"
	printf 'wrong-token\n' > "$TMP/wrong"
}

teardown() {
	[ -z "${BG:-}" ] || { kill -9 $BG 2>/dev/null || true; wait $BG 2>/dev/null || true; }
	rm -f "$TMP/stall"
	stop_git_servers
}

@test "http://: the token from --token-file is accepted" {
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --token-file "$TMP/token" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v, .source.url' <<< "$output")" "two
$URL"
	grep -q '^POST /octo/repo.git/git-upload-pack 200$' "$TMP/http.log"
}

@test "http://: a wrong token is 502 saying the credentials were refused, and never shown" {
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --token-file "$TMP/wrong" < "$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 502
	assert_equal "$(jq -r '.response.message' <<< "$output")" "$GENERIC_FETCH_FAILURE d-1"
	assert_log_has "$URL: the remote refused our credentials"
	refute_output --partial wrong-token
	[[ "$stderr" != *wrong-token* ]]
}

@test "http://: no token is 502 saying credentials are needed" {
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 502
	assert_log_has "asks for credentials and none are configured (--token-file)"
}

@test "http://: the token appears neither in the output, the log nor the cache config" {
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --token-file "$TMP/token" --log "$TMP/log" < "$TMP/in"
	assert_success
	refute_output --partial "$TOKEN"
	[[ "$stderr" != *"$TOKEN"* ]]
	grep -q 'objects from' "$TMP/log"
	run -1 grep -r "$TOKEN" "$TMP/log" "$CACHE"
}

@test "http://: an empty token file stops kwh-fetch at start-up naming the file" {
	: > "$TMP/empty"
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --token-file "$TMP/empty" < "$TMP/in"
	assert_failure 111
	assert_equal "$stderr" "kwh-fetch: fatal: token file '$TMP/empty' is empty"
}

@test "http://: a fetch killed half-way leaves a cache the next run rebuilds" {
	touch "$TMP/stall"
	envelope "$REV2" refs/heads/main "$URL" octo/repo main $(( $(now_ms) + 60000 )) > "$TMP/in"
	kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --token-file "$TMP/token" < "$TMP/in" > /dev/null 2>&1 3>&- &
	BG=$!
	# wait until the fetch is under way (the entry exists, marked incomplete)
	for _ in $(seq 200); do
		compgen -G "$CACHE/*.git/kwh-incomplete" > /dev/null && break
		sleep 0.05
	done
	dir=$(ls -d "$CACHE"/*.git)
	assert [ -e "$dir/kwh-incomplete" ]
	kill -9 "$BG"
	wait "$BG" || true
	BG=
	rm -f "$TMP/stall"
	assert [ -e "$dir/kwh-incomplete" ]
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --token-file "$TMP/token" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" two
	assert [ ! -e "$dir/kwh-incomplete" ]
}

# has_lock_open PID: the process has the cache's lock file open.
has_lock_open() {
	ls -l "/proc/$1/fd" 2>/dev/null | grep -q '\.lock$'
}

@test "http://: 10 concurrent first fetches of one repository all succeed with one clone" {
	local i n pids=()
	envelope "$REV2" refs/heads/main "$URL" octo/repo main $(( $(now_ms) + 60000 )) > "$TMP/in"
	# hold the server until every process is inside kwh-fetch's cache code
	touch "$TMP/stall"
	for i in 1 2 3 4 5 6 7 8 9 10; do
		kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --token-file "$TMP/token" < "$TMP/in" > "$TMP/out.$i" 2> "$TMP/err.$i" 3>&- &
		pids+=($!)
	done
	BG="${pids[*]}"
	for _ in $(seq 400); do
		n=0
		for i in "${pids[@]}"; do has_lock_open "$i" && n=$((n + 1)); done
		[ "$n" -lt 10 ] || break
		sleep 0.05
	done
	assert_equal "$n" 10
	rm -f "$TMP/stall"
	for i in "${!pids[@]}"; do
		wait "${pids[$i]}" || fail "run $((i + 1)) failed: $(cat "$TMP/err.$((i + 1))")"
	done
	BG=
	for i in 1 2 3 4 5 6 7 8 9 10; do
		assert_equal "$(jq -r '.manifests[0].data.v' "$TMP/out.$i")" two
	done
	assert_equal "$(ls "$CACHE" | grep -c '\.git$')" 1
	# one fetch (the others found the revision): one connection to the
	# remote, one pack; shallow, three fetches (REV2 is below main's tip:
	# main at depth 1, REV2 by id, refused, main at depth 50), a shallow
	# negotiation taking more than one request over stateless HTTP
	if shallow_fetch; then
		assert_equal "$(grep -c '^GET /octo/repo.git/info/refs?service=git-upload-pack 200$' "$TMP/http.log")" 3
	else
		assert_equal "$(grep -c '^GET /octo/repo.git/info/refs?service=git-upload-pack 200$' "$TMP/http.log")" 1
		assert_equal "$(grep -c '^POST /octo/repo.git/git-upload-pack 200$' "$TMP/http.log")" 1
	fi
}

@test "http://: GITHUB_TOKEN (the original's variable) is the token, never logged" {
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	GITHUB_TOKEN=$TOKEN run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --log "$TMP/log" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" two
	refute_output --partial "$TOKEN"
	[[ "$stderr" != *"$TOKEN"* ]]
	run -1 grep -r "$TOKEN" "$TMP/log" "$CACHE"
	# without it, the server asks for credentials: it was the token that passed
	rm -rf "$CACHE"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_failure 1
}

@test "http://: --token-file wins over GITHUB_TOKEN; the token is wiped from kwh-fetch's environment" {
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	GITHUB_TOKEN=wrong-token run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --token-file "$TMP/token" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" two
	# a stalled fetch keeps kwh-fetch running long enough to read its environ
	rm -rf "$CACHE"
	touch "$TMP/stall"
	GITHUB_TOKEN=$TOKEN kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in" > /dev/null 2>&1 3>&- &
	BG=$!
	# wait until the fetch is under way (the entry exists, marked
	# incomplete): by then the options are read and the token taken
	local seen=
	for _ in $(seq 1 200); do
		compgen -G "$CACHE/*.git/kwh-incomplete" > /dev/null && { seen=yes; break; }
		sleep 0.05
	done
	assert_equal "$seen" yes
	tr '\0' '\n' <"/proc/$BG/environ" >"$TMP/environ" 2>/dev/null || true
	[ -s "$TMP/environ" ]
	# (the kernel keeps the variable's name where it was: the value is wiped)
	run -1 grep -a -e "$TOKEN" "$TMP/environ" /proc/$BG/cmdline
	grep -q "^$CACHE\|^--cache" <(tr '\0' '\n' <"/proc/$BG/cmdline")
}
