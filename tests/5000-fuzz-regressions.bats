#!/usr/bin/env bats
# Every crash or bug the fuzz targets found (tests/fuzz/README.md), replayed
# through the normal tools or through the kwh-fuzz-* drivers, which run a
# fuzz target's checks on the files given, without libFuzzer.  The inputs
# are in tests/fuzz/regressions/; the seed corpora must pass too.
load test_helper

REG=$TESTS_DIR/fuzz/regressions
CORPUS=$TESTS_DIR/fuzz/corpus

setup() {
	setup_tmp
	# jq 1.6 leaks on some parse errors (tests/fuzz/lsan.supp); its frames
	# are only seen with the slow unwinder.
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
	export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$TESTS_DIR/fuzz/lsan.supp"
}

# A request with a JSON body, on stdin of kwh-verify --insecure.
request() {
	printf 'POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
	printf 'X-GitHub-Event: push\r\nX-GitHub-Delivery: d1\r\nContent-Length: %d\r\n\r\n%s' \
		"${#1}" "$1"
}

@test "seed corpora pass every target's checks" {
	for t in http verify env yaml kubeconfig; do
		run --separate-stderr "kwh-fuzz-$t" "$CORPUS/$t"/*
		[ "$status" -eq 0 ] || { echo "target $t: status $status"; echo "$stderr" | tail -5; false; }
	done
}

# Finding 1: kwh_json_validate (lib/json.c, string()) accepts a \uD800-\uDBFF
# escape not followed by a \uDC00-\uDFFF one; jq 1.6 refuses it, so the
# body passes kwh-verify and every later stage fails to parse the envelope.
@test "finding 1: a lone high surrogate escape is refused by kwh_json_validate" {
	run --separate-stderr kwh-fuzz-env "$REG/env-lone-high-surrogate"
	assert_success
	run --separate-stderr kwh-fuzz-verify "$REG/verify-lone-high-surrogate-found"
	assert_success
}

@test "finding 1: kwh-verify answers 400 to a body with a lone high surrogate" {
	request '{"a":"\udbff x"}' >"$TMP/req"
	run --separate-stderr kwh-verify --insecure --log none <"$TMP/req"
	assert_failure 1
	[ "$(jq -r .response.status <<<"$output")" = 400 ]
}

@test "finding 1: a correct surrogate pair still passes kwh-verify" {
	request '{"a":"\ud83d\ude00"}' >"$TMP/req"
	run --separate-stderr kwh-verify --insecure --log none <"$TMP/req"
	assert_success
	[ "$(jq -r .payload.a <<<"$output")" = "😀" ]
}

# Finding 2: kwh_buf_grow (lib/buf.c) on a buffer with no data allocates
# without writing the NUL that buf.h promises; http.c pre-sizes the body
# from Content-Length, so a body that never comes leaves garbage in it.
# MALLOC_PERTURB_ makes glibc's fresh memory non-zero, as ASan's is.
@test "finding 2: a body announced but never sent leaves a NUL-terminated body" {
	MALLOC_PERTURB_=165 run --separate-stderr kwh-fuzz-http "$REG/http-body-never-sent"
	assert_success
}

# Finding 3: jq 1.6 leaks a parsed value on "Expected separator between
# values"; kwh must leak nothing else on such input (valgrind, with the jq
# leak suppressed, when valgrind is installed; ASan in make sanitize-check).
@test "finding 3: YAML read as JSON with a missing separator: refused, no kwh leak" {
	run --separate-stderr kwh-fuzz-yaml "$REG/yaml-jq-leak-separator"
	assert_success
	if [ -z "${KWH_SANITIZED:-}" ] && command -v valgrind >/dev/null; then
		run --separate-stderr valgrind -q --leak-check=full --error-exitcode=1 \
			--suppressions="$TESTS_DIR/fuzz/valgrind.supp" \
			kwh-fuzz-yaml "$REG/yaml-jq-leak-separator"
		assert_success
	fi
}

# Finding 4: an ASCII RS byte (0x1e) in the envelope stream makes
# jv_parser_next() return "no value yet" with input left in its buffer;
# kwh_env_next (lib/env.c) then hands it a new buffer and libjq aborts on
# its assertion "previous buffer not exhausted".
@test "finding 4: the envelope reader survives an RS byte (driver)" {
	run --separate-stderr kwh-fuzz-env "$REG/env-record-separator" "$REG/env-record-separator-found"
	assert_success
}

@test "finding 4: kwh-annotate does not abort on an RS byte before an envelope" {
	run --separate-stderr kwh-annotate --log none <"$REG/env-record-separator"
	[ "$status" -le 1 ] || { echo "status $status: $stderr"; false; }
	jq -e 'type == "object" and .kwh == 1' <<<"$output"
}

@test "finding 4: kwh-respond still answers after an RS byte" {
	run --separate-stderr kwh-respond --log none <"$REG/env-record-separator"
	[ "$status" -le 1 ] || { echo "status $status: $stderr"; false; }
	[[ "$output" == "HTTP/1.1 "* ]]
}

# Finding 5: load_kubeconfig (lib/kube.c) reads insecure-skip-tls-verify
# with jget() and never frees the value: a string, array or object there
# leaks.  Seen by valgrind (normal build) or LeakSanitizer (sanitize-check).
@test "finding 5: a kubeconfig with insecure-skip-tls-verify as a string leaks nothing" {
	run --separate-stderr kwh-fuzz-kubeconfig "$REG/kubeconfig-insecure-string-leak" \
		"$REG/kubeconfig-insecure-string-leak-found"
	assert_success
	if [ -z "${KWH_SANITIZED:-}" ] && command -v valgrind >/dev/null; then
		run --separate-stderr valgrind -q --leak-check=full --errors-for-leak-kinds=definite \
			--error-exitcode=1 --suppressions="$TESTS_DIR/fuzz/valgrind.supp" \
			kwh-fuzz-kubeconfig "$REG/kubeconfig-insecure-string-leak" \
			"$REG/kubeconfig-insecure-string-leak-found"
		assert_success
	fi
}
