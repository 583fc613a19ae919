#!/usr/bin/env bats
# lib/jv.c against libjq, the oracle: kwh-verify, kwh-fetch, kwh-apply,
# kwh-respond and kwh-replay take jq's value API from lib/jv.c instead of
# libjq (Makefile, JV_BINS), and must parse and print exactly as libjq does.
# tests/tools/kwh-jv-check.c is built twice, with libjq (kwh-jv-check) and
# with lib/jv.c (kwh-jv-check-own); both read the same input, generated
# with fixed seeds by tests/tools/jv-corpus.py, and their outputs must be
# byte for byte the same.

load test_helper

setup() {
	setup_tmp
}

# same MODE [ARG] < input: runs both builds and compares their outputs.
same() {
	cat >"$TMP/in"
	kwh-jv-check "$@" <"$TMP/in" >"$TMP/jq.out"
	kwh-jv-check-own "$@" <"$TMP/in" >"$TMP/own.out"
	[ -s "$TMP/jq.out" ]
	if ! cmp -s "$TMP/jq.out" "$TMP/own.out"; then
		diff "$TMP/jq.out" "$TMP/own.out" | head -20
		return 1
	fi
}

corpus() {
	python3 "$TESTS_DIR/tools/jv-corpus.py" "$@"
}

@test "the programs that run no jq program do not load libjq" {
	local b
	for b in kwh-verify kwh-fetch kwh-apply kwh-respond kwh-replay; do
		run ldd "$KWH_BIN/$b"
		assert_success
		refute_output --partial libjq
		refute_output --partial libonig
	done
	run ldd "$KWH_BIN/kwh-annotate"
	assert_output --partial libjq
}

@test "the check program really is built both ways" {
	run ldd "$(command -v kwh-jv-check)"
	assert_output --partial libjq
	run ldd "$(command -v kwh-jv-check-own)"
	refute_output --partial libjq
}

@test "parsing and printing: 12,000 generated texts, valid and damaged, fed in pieces" {
	local s
	for s in 1 2 3; do
		corpus records "$s" 4000 | same records
	done
	# the corpus reaches the cases it is meant to: values, errors, RS
	grep -q '^V ' "$TMP/jq.out"
	grep -q '^E string .* at line ' "$TMP/jq.out"
	grep -q '^E string Exceeds depth limit' "$TMP/jq.out"
	grep -q '^R$' "$TMP/jq.out"
}

@test "numbers: 30,000 doubles print as jq prints them" {
	corpus numbers 7 30000 | same numbers
	grep -q 'e-' "$TMP/jq.out"
	grep -q 'e+' "$TMP/jq.out"
	grep -qx '\[1.7976931348623157e+308\]' "$TMP/jq.out"
}

@test "strings: bad UTF-8 becomes U+FFFD as jq makes it, in every string constructor" {
	corpus lines 11 5000 | same lines
	grep -q $'\xef\xbf\xbd' "$TMP/jq.out"
	grep -q '^P! string ' "$TMP/jq.out"
}

@test "jq's quirks, one by one" {
	printf '%s\0' '01' '+1' '.5' '5.' 'nan' 'NaN' '-Infinity' 'nul' 'nanx' 'n' \
	    '1e400' '-0' '1e17' '1e16' '0.00001' '123456789012345678' \
	    '"\ud800"' '"\udc00x"' '"a\/b"' $'"\x1f\x7f"' $'"\t"' \
	    '{"a":1,"a":2,"b":3}' '1 2' '[1]x' '1[' '1,' '{:1}' '1:' '[1:' \
	    $'\xef\xbb\xbf{}' $'\xef\xbb{}' $'{"a":1}\x1e{"b":2}' $'[1,\x1e2]' \
	    '"abc' '[1,2' '"\' '{"a"}' '[1,]' '{"a":1,}' '' ' ' \
	    | same records
}

@test "the API: arrays, objects, invalid values, and a change to a copy" {
	same api </dev/null
	# the original keeps what it had when a copy changed
	grep -qx 'a \[null,null,null,"x",true\]' "$TMP/own.out"
	grep -qx 'b \[null,null,null,"x",false\]' "$TMP/own.out"
}

@test "GitHub's payloads parse and print the same, whole and a byte at a time" {
	local f
	for f in "$FIXTURES"/github/*.json; do
		same records <"$f"
		printf '%s' "$(cat "$f")" | tr -d '\0' >"$TMP/one"
		same parse 1 <"$TMP/one"
	done
}

@test "an envelope through kwh-fetch and kwh-respond prints as jq prints it" {
	# a payload whose numbers and strings jq would print its own way
	jq -nc '{kwh: 1, delivery: "d", payload: {n: [1e17, 0.1, -0, 1e-7,
	  123456789012345678], s: "\u007f\u00e9\u0001/"},
	  response: {status: 202, message: "m"}}' >"$TMP/env"
	run -0 --separate-stderr kwh-fetch --cache "$TMP/c" <"$TMP/env"
	jq -c . "$TMP/env" >"$TMP/want"
	[ "$output" = "$(cat "$TMP/want")" ]
}
