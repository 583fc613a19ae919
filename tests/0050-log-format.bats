#!/usr/bin/env bats
# --log-format json: the log's fields as one JSON object per line, which
# jq parses whatever the delivery id or message holds (quotes, newlines,
# control characters, invalid UTF-8); logfmt stays the default.

load test_helper

setup() {
	setup_tmp
}

# Hostile bytes: quotes, backslash, newline, CR, ESC, DEL, U+2028, a
# lone continuation byte, a truncated sequence, an overlong '/', a
# surrogate (all invalid UTF-8 but the first few).
HOSTILE_ID=$'id"\\\n\r\x01\x1b[31m\x7f'
HOSTILE_MSG=$'msg "q" \\ \n2nd line\t\xe2\x80\xa8 \x80 \xc3 \xc0\xaf \xed\xa0\x80 end'

@test "json: hostile delivery ids and messages make one line each, that jq parses back" {
	kwh-log-line json "$HOSTILE_ID" "$HOSTILE_MSG" 2>"$TMP/log"
	kwh-log-line json "-" "plain" 2>>"$TMP/log"
	[ "$(wc -l <"$TMP/log")" = 2 ]
	# each line alone is one JSON object
	while IFS= read -r line; do
		printf '%s\n' "$line" | jq -e 'type == "object"' >/dev/null
	done <"$TMP/log"
	head -1 "$TMP/log" | jq -e --arg id "$HOSTILE_ID" '
		.prog == "kwh-log-line" and .level == "warn" and .status == 400 and
		.delivery == $id and (.ts | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z$")) and
		(.msg | startswith("msg \"q\" \\ \n2nd line\t\u2028 ")) and
		(.msg | endswith(" end")) and (.msg | test("\ufffd"))'
	# no raw control character or invalid byte made it into the file
	run ! grep -qaP '[\x00-\x08\x0b-\x1f\x7f]' "$TMP/log"
	iconv -f UTF-8 -t UTF-8 "$TMP/log" >/dev/null
}

@test "logfmt stays the default, and an unknown format is a usage error" {
	kwh-log-line logfmt "d-1" "hello world" 2>"$TMP/log"
	grep -qE '^ts=[^ ]+ prog=kwh-log-line level=warn delivery=d-1 status=400 msg="hello world"$' "$TMP/log"
	run -100 kwh-verify --log-format xml --insecure
	assert_output --partial "--log-format: 'xml' is neither logfmt nor json"
}

@test "the stages and kwh-handle take --log-format json: a ping, a skipped ref" {
	secret_file secret s3cr3t
	printf '{"zen":"x"}' >"$TMP/p"
	kwh-sign --event ping --delivery d-1 --secret-file "$TMP/secret" "$TMP/p" >"$TMP/req"
	kwh-verify --secret-file "$TMP/secret" --log-format json --log "$TMP/log" <"$TMP/req" |
		kwh-annotate --log-format json --log "$TMP/log" |
		kwh-respond --log-format json --log "$TMP/log" >"$TMP/resp"
	[ "$(http_status "$TMP/resp")" = 200 ]
	jq -e -s 'length >= 2 and all(.[]; .prog and .level and .delivery and .msg)' "$TMP/log"
	jq -e -s 'any(.[]; .prog == "kwh-annotate" and .status == 200)' "$TMP/log"
	# a skipped ref whose name holds quotes, a newline and an escape
	printf '{"kwh":1,"delivery":"d-2","event":"push","payload":{"ref":"refs/heads/a\\"b\\n\\u001b[0m","repository":{"full_name":"o/r"}}}\n' |
		kwh-annotate --ignore-ref . --log-format json --log "$TMP/log2" >/dev/null
	jq -e '.status == 202 and (.msg | contains("a\"b\n\u001b[0m"))' "$TMP/log2"
	# kwh-handle one-shot: every stage's lines in JSON
	kwh-handle --secret-file "$TMP/secret" --log-format json --log "$TMP/log3" \
		--kubeconfig /nonexistent <"$TMP/req" >"$TMP/resp" 2>/dev/null || true
	[ "$(http_status "$TMP/resp")" = 200 ]
	jq -e -s 'length >= 1 and all(.[]; type == "object") and any(.[]; .prog == "kwh-annotate")' "$TMP/log3"
	run ! grep -q '^ts=' "$TMP/log3"
}
