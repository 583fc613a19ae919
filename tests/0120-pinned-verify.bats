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

# openssl_hmac ALG KEYFILE BODYFILE: hex HMAC by the openssl CLI, the key
# being the file's bytes (the test's secrets hold no NUL and do not end
# in a newline, so a shell variable carries them whole).
openssl_hmac() {
	local key
	key=$(cat "$2")
	openssl dgst "-$1" -hmac "$key" -r <"$3" | cut -d' ' -f1
}

# secret_of_len N FILE: a random secret of N bytes (no NUL; a LF inside
# when N > 2, bytes over 0x7f; not ending in CR or LF) written to FILE as
# kwh-verify(1) reads it: the secret and one trailing LF, which is not part
# of it.  FILE.key holds the bare secret.
secret_of_len() {
	python3 - "$1" "$2" <<-'EOP'
	import os, sys
	n, f = int(sys.argv[1]), sys.argv[2]
	b = bytearray(x or 1 for x in os.urandom(n))
	if n > 2:
	    b[n // 2] = 0x0a
	    b[1] = 0xe9
	if b[-1] in (0x0a, 0x0d):
	    b[-1] = 0x41
	open(f + ".key", "wb").write(b)
	open(f, "wb").write(b + b"\n")
	EOP
	chmod 600 "$2"
	[ "$(wc -c <"$2.key")" -eq "$1" ]
}

@test "HMAC-SHA256 (and SHA-1) agree with openssl for secrets of 1, 63, 64, 65 and 200 bytes" {
	for n in 1 63 64 65 200; do
		secret_of_len "$n" "$TMP/s$n"
		want=$(openssl_hmac sha256 "$TMP/s$n.key" "$PING")
		[[ "$want" =~ ^[0-9a-f]{64}$ ]]
		# openssl signs, kwh-verify accepts
		request "$PING" "sha256=$want" "d-$n"
		verify_and_respond "$TMP/req" --secret-file "$TMP/s$n"
		assert_equal "$n:$STATUS" "$n:200"
		assert_equal "$(jq -r .verified "$TMP/env")" sha256
		# kwh-sign writes what openssl computes, for both headers
		kwh-sign --secret-file "$TMP/s$n" "$PING" | tr -d '\r' >"$TMP/signed"
		assert_equal "$n:$(sed -n 's/^X-Hub-Signature-256: //p' "$TMP/signed")" "$n:sha256=$want"
		assert_equal "$n:$(sed -n 's/^X-Hub-Signature: //p' "$TMP/signed")" \
			"$n:sha1=$(openssl_hmac sha1 "$TMP/s$n.key" "$PING")"
	done
	# The secrets differ by length only in what is compared: a 64-byte
	# secret's signature is no 65-byte one's.
	request "$PING" "sha256=$(openssl_hmac sha256 "$TMP/s64.key" "$PING")"
	verify_and_respond "$TMP/req" --secret-file "$TMP/s65"
	assert_equal "$STATUS" 401
}

@test "a signature with more hex digits after the 64 is 401" {
	good=$(sig_of "$PING" "$TMP/secret")
	request "$PING" "$good"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 200
	for extra in 0 a "${good#sha256=}"; do
		request "$PING" "$good$extra"
		verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
		assert_equal "$extra:$STATUS:$VERIFY_RC" "$extra:401:1"
		jq -e '.response.status == 401 and (has("payload") | not)' "$TMP/env"
	done
	# and one digit short
	request "$PING" "${good%?}"
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 401
}

@test "a delivery id of 128 characters passes, 129 is 400" {
	id=$(printf 'Ab9_-%.0s' $(seq 1 26))	# 130 of [A-Za-z0-9_-]
	for n in 1 127 128; do
		request "$PING" "$(sig_of "$PING" "$TMP/secret")" "${id:0:n}"
		verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
		assert_equal "$n:$STATUS:$VERIFY_RC" "$n:200:0"
		assert_equal "$(jq -r .delivery "$TMP/env")" "${id:0:n}"
	done
	for n in 129 130; do
		request "$PING" "$(sig_of "$PING" "$TMP/secret")" "${id:0:n}"
		verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
		assert_equal "$n:$STATUS:$VERIFY_RC" "$n:400:1"
		jq -e '.response.status == 400 and (has("payload") | not)' "$TMP/env"
	done
}

@test "UTF-8-encoded surrogates in a signed body are 400; their neighbours pass" {
	# bytes  -> code point: ED A0 80 U+D800, ED BF BF U+DFFF, a CESU-8 pair
	# for U+1F600, and in a key; ED 9F BF U+D7FF and EE 80 80 U+E000 are fine.
	for b in '\xed\xa0\x80' '\xed\xbf\xbf' '\xed\xa0\xbd\xed\xb8\x80' 'KEY\xed\xb0\x80'; do
		case $b in
		KEY*) printf "{\"${b#KEY}\":1}" >"$TMP/body" ;;
		*) printf "{\"a\":\"x$b\"}" >"$TMP/body" ;;
		esac
		request "$TMP/body" "$(sig_of "$TMP/body" "$TMP/secret")"
		verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
		assert_equal "$b:$STATUS:$VERIFY_RC" "$b:400:1"
		jq -e '.response.status == 400 and (has("payload") | not)' "$TMP/env"
	done
	for b in '\xed\x9f\xbf' '\xee\x80\x80' '\xf0\x9f\x98\x80'; do
		printf "{\"a\":\"x$b\"}" >"$TMP/body"
		request "$TMP/body" "$(sig_of "$TMP/body" "$TMP/secret")"
		verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
		assert_equal "$b:$STATUS" "$b:200"
		# the payload is the body, byte for byte
		jq -j .payload.a "$TMP/env" | cmp - <(printf "x$b")
	done
}

# counted REQUESTFILE: what --max-header-bytes limits (lib/http.c counts
# the request target, each header's name and each value, not the method,
# version, separators or line ends).
counted() {
	sed '/^\r$/q' "$1" | tr -d '\r' | awk '
		NR == 1 { n += length($2); next }
		/^$/ { next }
		{ i = index($0, ":"); v = substr($0, i + 1); sub(/^[ \t]+/, "", v); n += (i - 1) + length(v) }
		END { print n }'
}

# padded_request TOTAL: a signed ping whose counted header bytes are
# exactly TOTAL, by an X-Pad header, to $TMP/req.
padded_request() {
	local sig base
	sig=$(sig_of "$PING" "$TMP/secret")
	request "$PING" "$sig" d1 $'X-Pad: \r\n'
	base=$(counted "$TMP/req")
	[ "$1" -gt "$base" ]
	request "$PING" "$sig" d1 "X-Pad: $(head -c $(($1 - base)) /dev/zero | tr '\0' p)"$'\r\n'
	assert_equal "$(counted "$TMP/req")" "$1"
}

@test "the header-size limit: exactly at it passes, one byte over is 431" {
	# the default, 32k (kwh-verify(1))
	padded_request 32768
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS" 200
	[ "$(jq -r '.headers["x-pad"] | length' "$TMP/env")" -gt 30000 ]
	handle_status --secret-file "$TMP/secret"
	assert_equal "$STATUS" 200
	padded_request 32769
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret"
	assert_equal "$STATUS:$VERIFY_RC" 431:1
	handle_status --secret-file "$TMP/secret"
	assert_equal "$STATUS:$HANDLE_RC" 431:1
	# and one given with --max-header-bytes
	padded_request 1000
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret" --max-header-bytes 1000
	assert_equal "$STATUS" 200
	handle_status --secret-file "$TMP/secret" --max-header-bytes 1000
	assert_equal "$STATUS" 200
	padded_request 1001
	verify_and_respond "$TMP/req" --secret-file "$TMP/secret" --max-header-bytes 1000
	assert_equal "$STATUS" 431
	handle_status --secret-file "$TMP/secret" --max-header-bytes 1000
	assert_equal "$STATUS" 431
}
