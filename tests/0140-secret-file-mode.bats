#!/usr/bin/env bats
# A secret file others can read is used, with a warning that names it and
# its mode (issue 15, point 8); a 0600 one gets none.

load test_helper

setup() {
	setup_tmp
	secret_file secret s3cr3t-for-tests
	kwh-sign --secret-file "$TMP/secret" --event push --delivery d-mode \
		"$FIXTURES/github/push-payload.json" >"$TMP/req"
}

@test "kwh-verify: a 0644 or 0640 secret file is used, with a warning naming the file and its mode" {
	chmod 644 "$TMP/secret"
	run --separate-stderr kwh-verify --secret-file "$TMP/secret" --log none <"$TMP/req"
	assert_success
	[[ $stderr == *"secret file '$TMP/secret' is readable by every user (mode 0644)"* ]] || fail "stderr: $stderr"
	chmod 640 "$TMP/secret"
	run --separate-stderr kwh-verify --secret-file "$TMP/secret" --log none <"$TMP/req"
	assert_success
	[[ $stderr == *"secret file '$TMP/secret' is readable by its group (mode 0640)"* ]] || fail "stderr: $stderr"
}

@test "kwh-verify, kwh-handle, kwh-sign: a 0600 secret file, no warning" {
	chmod 600 "$TMP/secret"
	run --separate-stderr kwh-verify --secret-file "$TMP/secret" --log none <"$TMP/req"
	assert_success
	assert_equal "$stderr" ""
	run --separate-stderr kwh-sign --secret-file "$TMP/secret" "$FIXTURES/github/push-payload.json"
	assert_success
	assert_equal "$stderr" ""
	chmod 604 "$TMP/secret"
	run --separate-stderr kwh-handle --secret-file "$TMP/secret" --dry-run=client --log none <"$TMP/req"
	[[ $stderr == *"mode 0604"* ]] || fail "stderr: $stderr"
}
