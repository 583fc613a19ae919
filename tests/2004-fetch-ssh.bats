#!/usr/bin/env bats
# kwh-fetch against sshd (ssh://): keys, known hosts.

load test_helper

setup() {
	setup_tmp
	ALLOW=(--allow-remote-host 127.0.0.1)
	make_test_repo
	start_sshd
	URL=ssh://$SSH_USER@127.0.0.1:$SSHD_PORT$BARE
	CACHE=$TMP/cache
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
}

teardown() {
	stop_git_servers
}

@test "ssh://: the key is accepted and the host key is in known_hosts" {
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --ssh-key "$SSH_KEY" --known-hosts "$KNOWN_HOSTS" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v, .source.url' <<< "$output")" "two
$URL"
}

@test "ssh://: a hashed known_hosts entry is understood" {
	ssh-keygen -q -H -f "$KNOWN_HOSTS" 2>/dev/null
	# the premise: no entry names the host in clear any more
	run -1 grep 127.0.0.1 "$KNOWN_HOSTS"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --ssh-key "$SSH_KEY" --known-hosts "$KNOWN_HOSTS" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" two
}

@test "ssh://: an unknown host key is refused, saying so" {
	echo "[127.0.0.1]:1 $OTHER_HOST_PUB" > "$TMP/kh"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --ssh-key "$SSH_KEY" --known-hosts "$TMP/kh" < "$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 502
	assert_equal "$(jq -r '.response.message' <<< "$output")" "$GENERIC_FETCH_FAILURE d-1"
	assert_log_has "$URL: unknown host key for [127.0.0.1]:$SSHD_PORT: not in '$TMP/kh' (refused)"
}

@test "ssh://: a changed host key is refused, saying so" {
	echo "[127.0.0.1]:$SSHD_PORT $OTHER_HOST_PUB" > "$TMP/kh"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --ssh-key "$SSH_KEY" --known-hosts "$TMP/kh" < "$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 502
	assert_log_has "the host key of [127.0.0.1]:$SSHD_PORT has changed"
}

@test "ssh://: --insecure-skip-host-key-check accepts an unknown host key" {
	echo "[127.0.0.1]:1 $OTHER_HOST_PUB" > "$TMP/kh"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --ssh-key "$SSH_KEY" --insecure-skip-host-key-check < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" two
}

@test "ssh://: a key the server does not know is 502" {
	ssh-keygen -q -t ed25519 -N '' -f "$TMP/stranger"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --ssh-key "$TMP/stranger" --known-hosts "$KNOWN_HOSTS" < "$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 502
	refute_output --partial "PRIVATE KEY"
}

@test "ssh://: the URL is payload.repository.ssh_url when a key is given" {
	jq -nc --arg r "$REV1" --arg u "$URL" '{kwh:1, annotations:{"k8s-webhook-handler.io/revision":$r},
	    payload:{repository:{full_name:"octo/repo", clone_url:"http://127.0.0.1:1/x.git", ssh_url:$u}}}' > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --ssh-key "$SSH_KEY" --known-hosts "$KNOWN_HOSTS" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v, .source.url' <<< "$output")" "one
$URL"
}

@test "ssh://: malformed hashed known_hosts entries are skipped, not fatal" {
	ssh-keygen -q -H -f "$KNOWN_HOSTS" 2>/dev/null
	key=$(awk '{ print $2, $3 }' "$KNOWN_HOSTS" | head -1)
	{ echo "|1|!!!!|AAAA $key"; echo "|1|YWJj|YWJj $key"; echo "|1|| $key"
	  echo "|1|YWJjZA==|!!!! $key"; cat "$KNOWN_HOSTS"; } > "$TMP/kh"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --ssh-key "$SSH_KEY" --known-hosts "$TMP/kh" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" two
	# and with only the malformed ones, the host is unknown
	head -4 "$TMP/kh" > "$TMP/kh2"
	rm -rf "$CACHE"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --ssh-key "$SSH_KEY" --known-hosts "$TMP/kh2" < "$TMP/in"
	assert_failure 1
	assert_log_has "unknown host key for [127.0.0.1]:$SSHD_PORT"
}
