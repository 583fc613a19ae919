#!/usr/bin/env bats
# kwh-verify's "digest" (kwh(7)): SHA-256 of the event, the hook target
# type and the body as signed, the key kwh-apply names objects and
# kwh-respond names spool files by.  The delivery id is not signed, so it
# is not in it.

load test_helper

setup() {
	setup_tmp
	secret_file secret digest-secret
	printf '{"zen":"Keep it logically awesome.","hook_id":1}' >"$TMP/body.json"
}

# digest_of [kwh-sign OPTIONS...]: the digest kwh-verify puts in the
# envelope of the signed $TMP/body.json; fails when kwh-verify does.
digest_of() {
	kwh-sign --secret-file "$TMP/secret" "$@" "$TMP/body.json" >"$TMP/req"
	kwh-verify --secret-file "$TMP/secret" --log none <"$TMP/req" >"$TMP/env"
	jq -e -r '.digest | select(test("^[0-9a-f]{64}$"))' "$TMP/env"
}

@test "digest: SHA-256 of EVENT, newline, TARGET TYPE, newline, body" {
	run digest_of --event ping --delivery d-1
	assert_success
	assert_output "$({ printf 'ping\n\n'; cat "$TMP/body.json"; } | sha256sum | cut -d' ' -f1)"
	run digest_of --event ping --delivery d-1 --header 'X-GitHub-Hook-Installation-Target-Type: organization' \
		--header 'X-GitHub-Hook-Installation-Target-ID: 42'
	assert_success
	assert_output "$({ printf 'ping\norganization\n'; cat "$TMP/body.json"; } | sha256sum | cut -d' ' -f1)"
}

@test "digest: the same for any delivery id, other for another event, body or target type" {
	a=$(digest_of --event push --delivery d-1)
	b=$(digest_of --event push --delivery d-2)
	c=$(digest_of --event push --delivery d-1 --header 'X-GitHub-Hook-Installation-Target-Type: repository')
	d=$(digest_of --event ping --delivery d-1)
	# the target id is not signed and not in it; an unknown type counts as none
	e=$(digest_of --event push --delivery d-3 --header 'X-GitHub-Hook-Installation-Target-Type: repository' \
		--header 'X-GitHub-Hook-Installation-Target-ID: 99')
	f=$(digest_of --event push --delivery d-4 --header 'X-GitHub-Hook-Installation-Target-Type: whatever')
	printf ' ' >>"$TMP/body.json"
	g=$(digest_of --event push --delivery d-1)
	[ -n "$a" ]
	assert_equal "$b" "$a"
	assert_equal "$e" "$c"
	assert_equal "$f" "$a"
	[ "$c" != "$a" ] && [ "$d" != "$a" ] && [ "$g" != "$a" ]
}

@test "digest: a form body is hashed as received, before it is decoded" {
	run digest_of --event push --delivery d-1 --form
	assert_success
	body=$(sed '1,/^\r$/d' "$TMP/req")
	assert_output "$({ printf 'push\n\n%s' "$body"; } | sha256sum | cut -d' ' -f1)"
	jq -e '.payload.hook_id == 1' "$TMP/env"
}

@test "a refused request has no digest" {
	kwh-sign --secret-file "$TMP/secret" --event push "$TMP/body.json" >"$TMP/req"
	secret_file other not-it
	run --separate-stderr kwh-verify --secret-file "$TMP/other" --log none <"$TMP/req"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 401 and (has("digest") | not)'
}
