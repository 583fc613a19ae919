#!/usr/bin/env bats
# Shell completions: each loads in its shell and completes the options.

load test_helper

@test "bash: loads, and completes options from the tool's --help" {
	run bash -c '
		set -e
		. "$TOP_DIR/completions/kwh.bash"
		COMP_WORDS=(kwh-verify --sec); COMP_CWORD=1; _kwh
		printf "%s\n" "${COMPREPLY[@]}"
		COMP_WORDS=(kwh-sign --no); COMP_CWORD=1; _kwh
		printf "%s\n" "${COMPREPLY[@]}"'
	assert_success
	assert_output "$(printf -- '--secret-file\n--no-sha1')"
}

@test "zsh: loads, and compinit binds it to every tool" {
	run zsh -f -c '
		fpath=("$TOP_DIR/completions" $fpath)
		autoload -Uz compinit && compinit -u -d "$BATS_TEST_TMPDIR/zcompdump"
		for t in kwh-verify kwh-respond kwh-sign; do print -r -- "$t=$_comps[$t]"; done'
	assert_success
	assert_output "$(printf 'kwh-verify=_kwh\nkwh-respond=_kwh\nkwh-sign=_kwh')"
}

@test "fish: loads, and completes options from the tool's --help" {
	run fish --no-config -c "source '$TOP_DIR/completions/kwh.fish'; complete -C'kwh-verify --secret-f'; complete -C'kwh-sign --chu'"
	assert_success
	assert_output "$(printf -- '--secret-file\n--chunked')"
}

@test "bash and fish: --log-format completes its two values, --statsd no file name" {
	run bash -c '
		set -e
		. "$TOP_DIR/completions/kwh.bash"
		COMP_WORDS=(kwh-respond --log-format ""); COMP_CWORD=2; _kwh
		printf "%s\n" "${COMPREPLY[@]}"
		COMP_WORDS=(kwh-respond --statsd ""); COMP_CWORD=2; _kwh
		echo "statsd: ${#COMPREPLY[@]}"'
	assert_success
	assert_output "$(printf 'logfmt\njson\nstatsd: 0')"
	run fish --no-config -c "source '$TOP_DIR/completions/kwh.fish'; complete -C'kwh-handle --log-format '"
	assert_success
	assert_output "$(printf 'json\nlogfmt')"
}

@test "bash and fish: kwh-replay completes --from-github; --app-key-file a file, --hook-id nothing" {
	touch "$BATS_TEST_TMPDIR/app.pem"
	run bash -c '
		set -e
		. "$TOP_DIR/completions/kwh.bash"
		cd "$BATS_TEST_TMPDIR"
		COMP_WORDS=(kwh-replay --from-g); COMP_CWORD=1; _kwh
		printf "%s\n" "${COMPREPLY[@]}"
		COMP_WORDS=(kwh-replay --app-key-file app); COMP_CWORD=2; _kwh
		printf "%s\n" "${COMPREPLY[@]}"
		COMP_WORDS=(kwh-replay --hook-id ""); COMP_CWORD=2; _kwh
		echo "hook-id: ${#COMPREPLY[@]}"'
	assert_success
	assert_output "$(printf -- '--from-github\napp.pem\nhook-id: 0')"
	run fish --no-config -c "source '$TOP_DIR/completions/kwh.fish'; complete -C'kwh-replay --from-'"
	assert_success
	assert_output --partial -- "--from-github"
}
