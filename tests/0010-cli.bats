#!/usr/bin/env bats
# Every tool: --help, --version, usage errors.

load test_helper

tools() { ls "$KWH_BIN" | grep -E '^kwh-[a-z]+$'; }

@test "--help prints the usage on stdout and exits 0" {
	for t in $(tools); do
		run --separate-stderr "$t" --help
		assert_success
		[[ "$output" == "usage: $t "* ]]
		assert_equal "$stderr" ""
	done
}

@test "--version names the tool and kwh's version" {
	v=$(sed -n 's/^KWH_VERSION = //p' "$TOP_DIR/Makefile")
	for t in $(tools); do
		run --separate-stderr "$t" --version
		assert_success
		assert_output "$t (kwh) $v"
	done
}

@test "an unknown option is a usage error: 100, a hint on stderr, nothing on stdout" {
	for t in $(tools); do
		run -100 --separate-stderr "$t" --no-such-option
		assert_output ""
		[[ "$stderr" == *"Try '$t --help'."* ]]
	done
}
