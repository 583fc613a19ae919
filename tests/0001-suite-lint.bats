#!/usr/bin/env bats
# The suite's own files: no "! cmd" where set -e ignores it (tests/lint-bats).

load test_helper

setup() {
	setup_tmp
}

@test "no test or helper has a \"! cmd\" that asserts nothing" {
	run "$TESTS_DIR/lint-bats" "$TESTS_DIR"/*.bats "$TESTS_DIR"/*.bash "$TESTS_DIR"/lib/*.bash
	assert_success
	assert_output ''
}

# (The sample is a fixture: bats would take its @test lines for its own.)
@test "lint-bats refuses a \"! cmd\" before another command, naming file and line" {
	cp "$FIXTURES/lint-bats/sample" "$TMP/sample.bats"
	run "$TESTS_DIR/lint-bats" "$TMP/sample.bats"
	assert_failure 1
	assert_equal "$(cut -d: -f1,2 <<<"$output")" "$TMP/sample.bats:3
$TMP/sample.bats:14
$TMP/sample.bats:22
$TMP/sample.bats:27"
	assert_line --index 0 "$TMP/sample.bats:3: \"!\" is not the last command of its body, so set -e ignores it: ! grep -q secret \"\$1\""
	# the same bodies with each "!" last (or, in the loop, an if) pass
	sed -i '/^	rm -f "$1"$/d; /^	echo two$/d; /^	echo more$/d' "$TMP/sample.bats"
	sed -i 's/^		! grep -q secret "$f"$/		if grep -q secret "$f"; then fail; fi/' "$TMP/sample.bats"
	run "$TESTS_DIR/lint-bats" "$TMP/sample.bats"
	assert_success
	assert_output ''
}

@test "lint-bats: no file is a usage error, an unreadable one an error" {
	run -2 "$TESTS_DIR/lint-bats"
	run -2 "$TESTS_DIR/lint-bats" "$TMP/none.bats"
	assert_output "lint-bats: cannot read $TMP/none.bats"
}
