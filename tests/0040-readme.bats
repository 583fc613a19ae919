#!/usr/bin/env bats
# README.md's by-hand example runs as written, from a checkout after make.

load test_helper

# block AFTER: the indented code block that follows the line AFTER.
block() {
	awk -v after="$1" 'index($0, after) == 1 { on = 1; next }
		on && /^    / { print substr($0, 5); seen = 1; next }
		on && seen { exit }' "$TOP_DIR/README.md"
}

@test "README: the check of a saved delivery by hand works as written" {
	setup_tmp
	block "Check a saved delivery by hand" >"$TMP/example.sh"
	grep -q 'kwh-sign' "$TMP/example.sh"
	# a checkout: bin/ (the tools under test) and tests/ beside each other
	mkdir "$TMP/checkout"
	ln -s "$KWH_BIN" "$TMP/checkout/bin"
	ln -s "$TOP_DIR/tests" "$TMP/checkout/tests"
	cd "$TMP/checkout"
	run -0 --separate-stderr env -i HOME="$TMP" PATH=/usr/bin:/bin bash -e "$TMP/example.sh"
	assert_output --regexp "^HTTP/1.1 200 OK"
	[ -s request ]
}
