#!/usr/bin/env bats
# kwh-annotate as the original k8s-webhook-handler's users expect it: its
# four default events, its RE2 -ignore patterns (PCRE2 here), and pull
# requests handled only for the actions that change the code.
load test_helper
load fixtures/annotate/helper

GH=$FIXTURES/github

@test "default events: push, delete, check_run and check_suite pass" {
	annotate push "$GH/push-with-new-branch.json"
	assert_success
	assert_no_response
	annotate delete "$GH/delete-payload.json"
	assert_no_response
	annotate check_run "$GH/check_run-created.json"
	assert_no_response
	annotate check_suite "$GH/check_suite-requested.json"
	assert_no_response
}

@test "default events: create, pull_request, release, workflow_dispatch get 202 unless in --events" {
	annotate create "$GH/create-payload.json"
	assert_success
	assert_response 202 "event create is not handled"
	annotate pull_request "$GH/pull_request-opened.json"
	assert_response 202 "event pull_request is not handled"
	annotate release "$GH/create-payload.json"
	assert_response 202 "event release is not handled"
	annotate workflow_dispatch "$GH/create-payload.json"
	assert_response 202 "event workflow_dispatch is not handled"
	annotate create "$GH/create-payload.json" --events push,create
	assert_no_response
	assert_ann ref refs/tags/simple-tag
}

@test "a hook sending every event: a new branch is one object (push), not two (push and create)" {
	local ev f
	for ev in push create; do
		f=$GH/push-with-new-branch.json
		[ "$ev" = push ] || f=$(payload_with "$GH/create-payload.json" '.ref = "master" | .ref_type = "branch"')
		envelope "$ev" "$f"
	done >"$BATS_TEST_TMPDIR/two.json"
	run --separate-stderr kwh-annotate --log none <"$BATS_TEST_TMPDIR/two.json"
	assert_success
	run jq -s -c 'map(select(.response == null) | .event)' <<<"$output"
	assert_output '["push"]'
}

@test "--ignore-ref: RE2's \\d, as the original's -ignore took it" {
	annotate push "$(payload_with "$GH/push-payload.json" '.ref = "refs/tags/v12.0"')" --ignore-ref '^refs/tags/v\d+'
	assert_success
	assert_response 202 "ref refs/tags/v12.0 is ignored"
	annotate push "$(payload_with "$GH/push-payload.json" '.ref = "refs/tags/vx"')" --ignore-ref '^refs/tags/v\d+'
	assert_no_response
}

@test "--ignore-ref: (?i) makes the rest case-insensitive" {
	annotate push "$(payload_with "$GH/push-payload.json" '.ref = "refs/heads/WIP-thing"')" --ignore-ref '(?i)^refs/heads/wip-'
	assert_response 202 "ref refs/heads/WIP-thing is ignored"
	annotate push "$(payload_with "$GH/push-payload.json" '.ref = "refs/heads/WIP-thing"')" --ignore-ref '^refs/heads/wip-'
	assert_no_response
}

@test "--ignore-ref: POSIX ERE patterns that worked before still match the same refs" {
	local re ref want
	while read -r re ref want; do
		annotate push "$(payload_with "$GH/push-payload.json" ".ref = \"$ref\"")" --ignore-ref "$re"
		assert_success
		if [ "$want" = yes ]; then
			assert_response 202 "ref $ref is ignored"
		else
			assert_no_response
		fi
	done <<-'EOF'
	^refs/heads/(gh-pages|dependabot/.*)$ refs/heads/dependabot/npm/x yes
	^refs/heads/(gh-pages|dependabot/.*)$ refs/heads/main no
	^refs/tags/[[:digit:]]+\.[0-9]{1,3}$ refs/tags/1.22 yes
	^refs/tags/[[:digit:]]+\.[0-9]{1,3}$ refs/tags/1.2222 no
	[[:upper:]] refs/heads/Main yes
	tmp refs/heads/feature/tmp-1 yes
	EOF
}

@test "--ignore-ref: a non-ASCII ref is matched by characters (UTF-8), as RE2 does" {
	annotate push "$(payload_with "$GH/push-payload.json" '.ref = "refs/heads/é"')" --ignore-ref '^refs/heads/.$'
	assert_response 202 "ref refs/heads/é is ignored"
}

@test "--ignore-ref: an invalid pattern is a usage error naming it and PCRE2's offset" {
	annotate push "$GH/push-payload.json" --ignore-ref '^refs/(heads|tags'
	assert_failure 100
	[[ $stderr == *"--ignore-ref '^refs/(heads|tags': at offset 17: "* ]] || fail "$stderr"
	annotate push "$GH/push-payload.json" --ignore-ref 'a{2,1}'
	assert_failure 100
	[[ $stderr == *"--ignore-ref 'a{2,1}': at offset "* ]] || fail "$stderr"
}

@test "--ignore-ref: a pattern that backtracks without end is bounded: 422, not a hang" {
	local ref
	ref="refs/heads/$(printf 'a%.0s' $(seq 1 40))!"
	annotate push "$(payload_with "$GH/push-payload.json" ".ref = \"$ref\"")" --ignore-ref '^refs/heads/(a+)+$'
	assert_failure 1
	assert_response 422
	[[ $(jq -r .response.message <<<"$output") == *"match limit"* ]] || fail "$output"
}

@test "pull_request: opened, synchronize and reopened create; labeled, edited, closed get 202" {
	local a
	for a in opened synchronize reopened; do
		annotate pull_request "$(payload_with "$GH/pull_request-opened.json" ".action = \"$a\"")" --events pull_request
		assert_success
		assert_no_response
		assert_ann event_action "$a"
	done
	for a in labeled edited closed assigned review_requested; do
		annotate pull_request "$(payload_with "$GH/pull_request-opened.json" ".action = \"$a\"")" --events pull_request
		assert_success
		assert_response 202 "pull_request action $a is not handled"
	done
	annotate pull_request "$(payload_with "$GH/pull_request-opened.json" 'del(.action)')" --events pull_request
	assert_response 202 "pull_request action (none) is not handled"
}

@test "--pull-request-actions selects the actions, 'all' every one" {
	annotate pull_request "$(payload_with "$GH/pull_request-opened.json" '.action = "labeled"')" --events pull_request --pull-request-actions labeled,closed
	assert_no_response
	assert_ann event_action labeled
	annotate pull_request "$GH/pull_request-opened.json" --events pull_request --pull-request-actions labeled,closed
	assert_response 202 "pull_request action opened is not handled"
	annotate pull_request "$(payload_with "$GH/pull_request-opened.json" '.action = "edited"')" --events pull_request --pull-request-actions all
	assert_no_response
	# other events are not concerned by it
	annotate check_run "$GH/check_run-created.json" --pull-request-actions closed
	assert_no_response
	annotate push "$GH/push-payload.json" --pull-request-actions 'opened,,closed'
	assert_failure 100
	[[ $stderr == *"--pull-request-actions"* ]] || fail "$stderr"
}

@test "--log-level: a bad level is a usage error; the four levels are accepted" {
	local l
	annotate push "$GH/push-payload.json" --log-level verbose
	assert_failure 100
	[[ $stderr == *"--log-level: 'verbose' is not debug, info, warn or error"* ]] || fail "$stderr"
	for l in debug info warn error; do
		annotate push "$GH/push-payload.json" --log-level "$l"
		assert_success
		assert_no_response
	done
}
