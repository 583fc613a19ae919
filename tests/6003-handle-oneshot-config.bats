#!/usr/bin/env bats
# One-shot kwh-handle with a file kwh-fetch needs missing (issue 15, point
# 8): the request is still answered, 500 naming the file, as the chain's
# kwh-fetch answers; the resident server refuses to start instead.

load test_helper

setup() {
	setup_tmp
	export HOME=$TMP
	secret_file secret s3cr3t-for-tests
	ssh-keygen -q -t ed25519 -N '' -f "$TMP/key"
	kwh-sign --secret-file "$TMP/secret" --event push --delivery d-cfg \
		"$FIXTURES/github/push-payload.json" >"$TMP/req"
}

@test "one-shot: --ssh-key with no known hosts file answers 500 naming it, exit 111" {
	run --separate-stderr kwh-handle --secret-file "$TMP/secret" --ssh-key "$TMP/key" \
		--dry-run=client --log none <"$TMP/req"
	assert_equal "$status" 111
	[[ ${lines[0]} == "HTTP/1.1 500 "* ]] || fail "answer: ${lines[0]:-nothing}"
	assert_output --partial "kwh-fetch cannot run: cannot read known hosts file '$TMP/.ssh/known_hosts'"
}

@test "one-shot: an unreadable --ca-file answers 500 too; an unsigned request still gets 401 first" {
	run --separate-stderr kwh-handle --secret-file "$TMP/secret" --ca-file "$TMP/none.pem" \
		--dry-run=client --log none <"$TMP/req"
	assert_equal "$status" 111
	[[ ${lines[0]} == "HTTP/1.1 500 "* ]] || fail "answer: ${lines[0]:-nothing}"
	assert_output --partial "cannot read CA file"
	sed 's/^X-Hub-Signature-256: .*/X-Hub-Signature-256: sha256=00/' "$TMP/req" >"$TMP/bad"
	run --separate-stderr kwh-handle --secret-file "$TMP/secret" --ca-file "$TMP/none.pem" \
		--dry-run=client --log none <"$TMP/bad"
	[[ ${lines[0]} == "HTTP/1.1 401 "* ]] || fail "answer: ${lines[0]:-nothing}"
	refute_output --partial "none.pem"
}

@test "--listen: a missing known hosts file stops it at start-up, saying so" {
	run --separate-stderr timeout 10 kwh-handle --listen "127.0.0.1:$(free_port)" \
		--secret-file "$TMP/secret" --ssh-key "$TMP/key" --dry-run=client --log none
	assert_equal "$status" 111
	[[ $stderr == *"cannot read known hosts file"* ]] || fail "stderr: $stderr"
}
