#!/usr/bin/env bats
# kwh-verify (and kwh-handle's verify stage): behaviour kwh-verify(1) and
# kwh(7) promise that no other test pinned at its edge (issue 14, point 7).
# Each test here was seen to fail on a build broken on purpose; the commit
# that added it names the breakage.

load test_helper

setup() {
	setup_tmp
	export HOME=$TMP
	secret_file secret s3cr3t-for-tests
	secret_file other another-secret
}

PING=$BATS_TEST_DIRNAME/fixtures/github/ping-payload.json

# request BODYFILE SIG256 [DELIVERY] [EXTRA-HEADER-LINES]: a POST of
# BODYFILE as JSON with that X-Hub-Signature-256 value (no header when
# SIG256 is empty) to $TMP/req.
request() {
	{
		printf 'POST / HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: ping\r\nX-GitHub-Delivery: %s\r\nContent-Type: application/json\r\n' "${3:-d1}"
		[ -z "$2" ] || printf 'X-Hub-Signature-256: %s\r\n' "$2"
		[ -z "${4:-}" ] || printf '%s' "$4"
		printf 'Content-Length: %d\r\n\r\n' "$(wc -c <"$1")"
		cat "$1"
	} >"$TMP/req"
}

# handle_status [kwh-handle options...]: $TMP/req through kwh-handle
# (one-shot); sets STATUS and HANDLE_RC.
handle_status() {
	kwh-handle --cache "$TMP/cache" --log "$TMP/handle.log" "$@" <"$TMP/req" >"$TMP/hresp" &&
		HANDLE_RC=0 || HANDLE_RC=$?
	STATUS=$(http_status "$TMP/hresp")
}

# secret_by HOW CMD ARGS...: CMD ARGS with the secret s3cr3t-for-tests
# configured as a file (HOW=file) or in WEBHOOK_SECRET (HOW=env).
secret_by() {
	local how=$1; shift
	if [ "$how" = file ]; then
		"$@" --secret-file "$TMP/secret"
	else
		WEBHOOK_SECRET=s3cr3t-for-tests "$@"
	fi
}

@test "--insecure with a secret configured still checks signatures (kwh-verify, kwh-handle)" {
	good=$(sig_of "$PING" "$TMP/secret")
	bad=$(sig_of "$PING" "$TMP/other")
	[ "$good" != "$bad" ]
	# --insecure is heard: without any secret, an unsigned delivery passes.
	request "$PING" ""
	verify_and_respond "$TMP/req" --insecure
	assert_equal "$STATUS" 200
	assert_equal "$(jq -r .verified "$TMP/env")" none
	handle_status --insecure
	assert_equal "$STATUS" 200
	# With a secret, as a file or in WEBHOOK_SECRET, it turns no check off.
	for how in file env; do
		request "$PING" "$good"
		secret_by $how verify_and_respond "$TMP/req" --insecure
		assert_equal "$STATUS $VERIFY_RC" "200 0"
		assert_equal "$(jq -r .verified "$TMP/env")" sha256
		secret_by $how handle_status --insecure
		assert_equal "$STATUS $HANDLE_RC" "200 0"
		for sig in "$bad" ""; do
			request "$PING" "$sig"
			secret_by $how verify_and_respond "$TMP/req" --insecure
			assert_equal "$STATUS $VERIFY_RC" "401 1"
			jq -e '.response.status == 401 and (has("payload") or has("verified") | not)' "$TMP/env"
			secret_by $how handle_status --insecure
			assert_equal "$STATUS $HANDLE_RC" "401 1"
		done
	done
}
