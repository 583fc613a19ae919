#!/usr/bin/env bats
# kwh-fetch: options, usage errors, start-up failures, the man page.

load test_helper

setup() {
	setup_tmp
}

@test "--help prints the synopsis on stdout and exits 0" {
	run --separate-stderr kwh-fetch --help
	assert_success
	assert_line --index 0 --partial "usage: kwh-fetch [--allow-remote-host HOST]... [--ca-file FILE] [--cache DIR]"
	assert_output --partial "--token-file FILE"
	assert_equal "$stderr" ""
}

@test "--version prints the version" {
	run kwh-fetch --version
	assert_success
	assert_output --regexp '^kwh-fetch \(kwh\) [0-9]'
}

@test "an unknown option is a usage error (100)" {
	run --separate-stderr kwh-fetch --frobnicate
	assert_failure 100
	assert_equal "$output" ""
}

@test "an argument is a usage error (100)" {
	run --separate-stderr kwh-fetch extra
	assert_failure 100
	assert_equal "${stderr_lines[0]}" "kwh-fetch: unexpected argument 'extra'"
}

@test "--remote without a placeholder is a usage error (100)" {
	run --separate-stderr kwh-fetch --remote https://example.com/fixed.git
	assert_failure 100
	assert_equal "${stderr_lines[0]}" "kwh-fetch: --remote: 'https://example.com/fixed.git' has no {full_name}, {owner} or {name}"
}

@test "--timeout must be a positive number of seconds (100)" {
	run --separate-stderr kwh-fetch --timeout -3
	assert_failure 100
	run --separate-stderr kwh-fetch --timeout soon
	assert_failure 100
}

@test "an unreadable SSH key stops kwh-fetch at start-up (111) naming the file" {
	run --separate-stderr kwh-fetch --ssh-key "$TMP/nokey" --insecure-skip-host-key-check < /dev/null
	assert_failure 111
	assert_equal "$stderr" "kwh-fetch: fatal: cannot read SSH key '$TMP/nokey': No such file or directory"
}

@test "an unreadable known hosts file stops kwh-fetch at start-up (111)" {
	touch "$TMP/key"
	run --separate-stderr kwh-fetch --ssh-key "$TMP/key" --known-hosts "$TMP/nokh" < /dev/null
	assert_failure 111
	assert_output ""
	assert_equal "$stderr" "kwh-fetch: fatal: cannot read known hosts file '$TMP/nokh': No such file or directory"
}

@test "an unreadable token file stops kwh-fetch at start-up (111)" {
	run --separate-stderr kwh-fetch --token-file "$TMP/none" < /dev/null
	assert_failure 111
	assert_output --partial ""
	assert_equal "$stderr" "kwh-fetch: fatal: cannot read token file '$TMP/none': No such file or directory"
}

@test "empty input gives one envelope with response 500" {
	run --separate-stderr kwh-fetch --cache "$TMP/cache" < /dev/null
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 500
}

@test "input that is not JSON gives a 500 envelope" {
	run --separate-stderr kwh-fetch --cache "$TMP/cache" <<< 'not json'
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 500
}

@test "the default cache is \$XDG_CACHE_HOME/kwh" {
	git_quiet init -q -b main "$TMP/r"
	rev=$(commit_file "$TMP/r" .ci/workflow.yaml "$(cm x y)" one)
	envelope "$rev" "" "file://$TMP/r" > "$TMP/in"
	XDG_CACHE_HOME=$TMP/xdg run --separate-stderr kwh-fetch --allow-remote-host file:// < "$TMP/in"
	assert_success
	assert_equal "$(ls "$TMP/xdg/kwh" | grep -c '\.git$')" 1
}

@test "the default cache is ~/.cache/kwh without XDG_CACHE_HOME" {
	[ ! -w /var/cache/kwh ] || skip "/var/cache/kwh is writable here"
	git_quiet init -q -b main "$TMP/r"
	rev=$(commit_file "$TMP/r" .ci/workflow.yaml "$(cm x y)" one)
	envelope "$rev" "" "file://$TMP/r" > "$TMP/in"
	mkdir "$TMP/home"
	HOME=$TMP/home XDG_CACHE_HOME= run --separate-stderr kwh-fetch --allow-remote-host file:// < "$TMP/in"
	assert_success
	assert_equal "$(ls "$TMP/home/.cache/kwh" | grep -c '\.git$')" 1
}

@test "man/kwh-fetch.1 is clean and documents every option" {
	command -v mandoc > /dev/null || skip "mandoc not installed"
	run mandoc -Tlint -W warning "$TOP_DIR/man/kwh-fetch.1"
	assert_success
	for opt in $(kwh-fetch --help | grep -o -- '--[a-z-]*' | sort -u); do
		grep -q -- "^\.\(It\|Op\) Fl \\\\${opt#-}" "$TOP_DIR/man/kwh-fetch.1" ||
		    fail "$opt not in the man page"
	done
}

@test "the man page EXAMPLES run" {
	command -v mandoc > /dev/null || skip "mandoc not installed"
	mandoc -Tascii "$TOP_DIR/man/kwh-fetch.1" | col -bx |
	    sed -n '/^EXAMPLES/,/^SEE ALSO/p' | sed -n 's/^           //p' > "$TMP/ex.sh"
	cd "$TMP"
	HOME=$TMP run --separate-stderr bash -e "$TMP/ex.sh"
	assert_success
	assert_line --index 0 '[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"demo"}}]'
	assert_line --index 3 demo
}
