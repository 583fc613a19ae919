#!/usr/bin/env bats
# kwh-fetch against git http-backend over HTTPS: server certificates are
# verified, against --ca-file or the system bundle, and the bundle is read
# only when a fetch needs the network (lib/git.c, "The CA bundle").

load test_helper

TOKEN=s3cr3t-t0ken-4-kwh

setup_file() {
	"$TESTS_DIR/lib/mkcerts.sh" "$BATS_FILE_TMPDIR/pki" >/dev/null
}

setup() {
	setup_tmp
	ALLOW=(--allow-remote-host localhost)
	make_test_repo
	PKI=$BATS_FILE_TMPDIR/pki
	start_http_git "$TOKEN" "$PKI/server.crt" "$PKI/server.key"
	# a DNS name: libgit2's mbedTLS (2.28) matches no IP address in a
	# certificate's subjectAltName
	URL=https://localhost:$HTTP_GIT_PORT/octo/repo.git
	CACHE=$TMP/cache
	printf '%s\n' "$TOKEN" > "$TMP/token"
}

teardown() {
	[ -z "${LISTEN_PID:-}" ] || stop_pid "$LISTEN_PID"
	stop_git_servers
}

@test "https://: a server signed by the CA in --ca-file is trusted" {
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --token-file "$TMP/token" \
	    --ca-file "$PKI/ca.crt" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v, .source.url' <<< "$output")" "two
$URL"
	grep -q '^POST /octo/repo.git/git-upload-pack 200$' "$TMP/http.log"
}

@test "https://: a server the system bundle does not trust is 502, and nothing is sent to it" {
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --token-file "$TMP/token" < "$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 502
	assert_equal "$(jq -r '.response.message' <<< "$output")" "$GENERIC_FETCH_FAILURE d-1"
	assert_log_has "$URL: the SSL certificate is invalid: 0x08 - The certificate is not correctly signed by the trusted CA"
	# the handshake failed: no request (so no token) reached the server
	[ ! -s "$TMP/http.log" ]
}

@test "https://: a certificate from another CA than --ca-file's is 502" {
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --token-file "$TMP/token" \
	    --ca-file "$PKI/other-ca.crt" < "$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 502
	assert_log_has "the SSL certificate is invalid"
	[ ! -s "$TMP/http.log" ]
}

@test "https://: the system bundle is read when a fetch needs it (bundle replaced in a mount namespace)" {
	# Debian's libgit2 reads /etc/ssl/certs/ca-certificates.crt; here it
	# holds only the test CA, so that trusting the server proves the
	# bundle was loaded although kwh-fetch defers it past start-up.
	unshare -m true 2>/dev/null || skip "no mount namespace here (unshare -m needs root or user namespaces)"
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr unshare -m sh -c \
	    'mount --bind "$1" /etc/ssl/certs/ca-certificates.crt && shift && exec "$@"' sh \
	    "$PKI/ca.crt" kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --token-file "$TMP/token" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" two
}

@test "https://: a cached revision is read without loading any CA file; a fetch reports a CA file it cannot load" {
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	cp "$PKI/ca.crt" "$TMP/ca.crt"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --token-file "$TMP/token" \
	    --ca-file "$TMP/ca.crt" < "$TMP/in"
	assert_success
	# the CA file goes bad: a cached revision needs no CA and still reads
	echo 'not a certificate' > "$TMP/ca.crt"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --token-file "$TMP/token" \
	    --ca-file "$TMP/ca.crt" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" two
	# FEAT (on another branch) is not cached: the fetch needs the CA
	# file, and says it is bad
	envelope "$FEAT" refs/heads/feature "$URL" > "$TMP/in3"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --token-file "$TMP/token" \
	    --ca-file "$TMP/ca.crt" < "$TMP/in3"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 502
	assert_log_has "$URL: cannot load the certificate authorities in '$TMP/ca.crt'"
}

@test "--ca-file: an unreadable file stops kwh-fetch at start-up (111), naming it" {
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --ca-file "$TMP/missing.crt" < "$TMP/in"
	assert_failure 111
	assert_output ""
	[[ "$stderr" == *"$TMP/missing.crt"* ]]
}

@test "kwh-handle --ca-file: the whole handler fetches over HTTPS through the same CA option" {
	secret_file secret handle-secret
	jq --arg rev "$REV2" --arg url "$URL" \
		'.after = $rev | .ref = "refs/heads/main" | .repository.clone_url = $url |
		 .repository.full_name = "octo/repo"' \
		"$FIXTURES/github/push-payload.json" > "$TMP/push.json"
	kwh-sign --event push --delivery d-https --secret-file "$TMP/secret" "$TMP/push.json" > "$TMP/req"
	run --separate-stderr kwh-handle --secret-file "$TMP/secret" --cache "$CACHE" "${ALLOW[@]}" \
	    --token-file "$TMP/token" --ca-file "$PKI/ca.crt" --dry-run=client --allow-kind /ConfigMap < "$TMP/req"
	assert_success
	assert_equal "$(http_status <(printf '%s\n' "$output"))" 200
	grep -q '^POST /octo/repo.git/git-upload-pack 200$' "$TMP/http.log"
	# without it, the certificate is refused
	run --separate-stderr kwh-handle --secret-file "$TMP/secret" --cache "$TMP/cache2" "${ALLOW[@]}" \
	    --token-file "$TMP/token" --dry-run=client --allow-kind /ConfigMap < "$TMP/req"
	assert_failure 1
	assert_equal "$(http_status <(printf '%s\n' "$output"))" 502
	assert_log_has "the SSL certificate is invalid"
}

@test "kwh-handle --listen --ca-file: a resident worker fetches over HTTPS, request after request" {
	secret_file secret handle-secret
	PORT=$(free_port)
	kwh-handle --listen "127.0.0.1:$PORT" --workers 1 --secret-file "$TMP/secret" \
	    --cache "$CACHE" "${ALLOW[@]}" --token-file "$TMP/token" --ca-file "$PKI/ca.crt" --dry-run=client \
	    --allow-kind /ConfigMap \
	    --log "$TMP/listen.log" 3>&- &
	LISTEN_PID=$!
	wait_port "$PORT"
	# two revisions on two branches: each request needs its own fetch
	local rev ref n=0
	for rev in "$REV1:main" "$FEAT:feature"; do
		ref=${rev#*:}; rev=${rev%%:*}; n=$((n + 1))
		jq --arg rev "$rev" --arg ref "refs/heads/$ref" --arg url "$URL" \
			'.after = $rev | .ref = $ref | .repository.clone_url = $url |
			 .repository.full_name = "octo/repo"' \
			"$FIXTURES/github/push-payload.json" > "$TMP/push.json"
		run curl -sS --max-time 20 -o "$TMP/body" -w '%{http_code}' --data-binary @"$TMP/push.json" \
		    -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
		    -H "X-GitHub-Delivery: d-l$n" \
		    -H "X-Hub-Signature-256: $(sig_of "$TMP/push.json" "$TMP/secret")" \
		    "http://127.0.0.1:$PORT/"
		assert_output 200
		jq -e '.results[0].action == "dry-run"' "$TMP/body"
	done
	if shallow_fetch; then
		# REV1 is below main's tip: main at depth 1, REV1 by id
		# (refused), main at depth 50; then FEAT: four connections
		[ "$(grep -c '^GET /octo/repo.git/info/refs?service=git-upload-pack 200$' "$TMP/http.log")" -eq 4 ]
	else
		[ "$(grep -c '^POST /octo/repo.git/git-upload-pack 200$' "$TMP/http.log")" -eq 2 ]
	fi
	[ "$(grep -c 'worker [0-9]* started' "$TMP/listen.log")" -eq 1 ]
}
