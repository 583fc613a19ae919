#!/usr/bin/env bats
# kwh-fetch's known_hosts check beyond what libssh2's knownhost API does
# itself (lib/git.c, "Known hosts"): @revoked lines, !negated host
# patterns, and lines that name no host.  Against sshd on 127.0.0.1.

load test_helper

setup() {
	setup_tmp
	ALLOW=(--allow-remote-host 127.0.0.1 --allow-remote-host localhost)
	make_test_repo
	start_sshd
	URL=ssh://$SSH_USER@127.0.0.1:$SSHD_PORT$BARE
	CACHE=$TMP/cache
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	HOST="[127.0.0.1]:$SSHD_PORT"
	KEY=$(cut -d' ' -f2,3 "$KNOWN_HOSTS")
}

teardown() {
	stop_git_servers
}

fetch_with() { # KNOWN_HOSTS_FILE
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --ssh-key "$SSH_KEY" --known-hosts "$1" < "$TMP/in"
}

@test "known_hosts: a key marked @revoked is refused even when another line accepts it" {
	{ echo "$HOST $KEY"; echo "@revoked $HOST $KEY"; } > "$TMP/kh"
	fetch_with "$TMP/kh"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 502
	assert_log_has "the host key of $HOST is revoked"
	# the same file without the @revoked line is accepted
	head -1 "$TMP/kh" > "$TMP/kh2"
	fetch_with "$TMP/kh2"
	assert_success
}

@test "known_hosts: @revoked for another key does not refuse this one" {
	{ echo "@revoked $HOST $OTHER_HOST_PUB"; echo "$HOST $KEY"; } > "$TMP/kh"
	fetch_with "$TMP/kh"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" two
}

@test "known_hosts: a !negated pattern that names the host keeps its line from accepting" {
	echo "example.org,!$HOST,$HOST $KEY" > "$TMP/kh"
	fetch_with "$TMP/kh"
	assert_failure 1
	assert_log_has "unknown host key for $HOST"
	# negating another host leaves the line in force
	echo "!example.org,$HOST $KEY" > "$TMP/kh"
	fetch_with "$TMP/kh"
	assert_success
}

@test "known_hosts: lines libssh2 cannot parse are skipped, not the end of the file" {
	{ echo "# a comment"; echo "$HOST ssh-ed25519 !!!notbase64"; echo "@cert-authority $HOST $KEY"
	  echo "garbage"; echo "$HOST $KEY"; } > "$TMP/kh"
	fetch_with "$TMP/kh"
	assert_success
	# @cert-authority alone is not a known key (not supported)
	echo "@cert-authority $HOST $KEY" > "$TMP/kh"
	rm -rf "$CACHE"
	fetch_with "$TMP/kh"
	assert_failure 1
	assert_log_has "unknown host key for $HOST"
}

@test "known_hosts: host names compare without case, as OpenSSH compares them" {
	URL=ssh://$SSH_USER@LocalHost:$SSHD_PORT$BARE
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	echo "[localhost]:$SSHD_PORT $KEY" > "$TMP/kh"
	fetch_with "$TMP/kh"
	assert_success
}
