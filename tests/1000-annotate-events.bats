#!/usr/bin/env bats
# kwh-annotate: every GitHub fixture, its annotations written out key by key.
load test_helper
load fixtures/annotate/helper

GH=$FIXTURES/github

@test "push (tag deleted): the original's values, revision kept as forty zeros" {
	annotate push "$GH/push-payload.json"
	assert_success
	assert_no_response
	assert_eight
	assert_ann ref refs/tags/simple-tag
	assert_ann revision 0000000000000000000000000000000000000000
	assert_ann before 6113728f27ae82c7b1a177c8d03f9e96e0adf246
	assert_ann repo_name Codertocat/Hello-World
	assert_ann repo_url git://github.com/Codertocat/Hello-World.git
	assert_ann repo_ssh git@github.com:Codertocat/Hello-World.git
	assert_ann event_type push
	assert_ann event_action ""
}

@test "push (new branch)" {
	annotate push "$GH/push-with-new-branch.json"
	assert_success
	assert_no_response
	assert_eight
	assert_ann ref refs/heads/master
	assert_ann revision 6113728f27ae82c7b1a177c8d03f9e96e0adf246
	assert_ann before 0000000000000000000000000000000000000000
	assert_ann repo_name Codertocat/Hello-World
	assert_ann repo_url git://github.com/Codertocat/Hello-World.git
	assert_ann repo_ssh git@github.com:Codertocat/Hello-World.git
	assert_ann event_type push
	assert_ann event_action ""
}

@test "delete of a tag: refs/tags/X" {
	annotate delete "$GH/delete-payload.json"
	assert_success
	assert_eight
	assert_ann ref refs/tags/simple-tag
	assert_ann revision ""
	assert_ann before ""
	assert_ann repo_name Codertocat/Hello-World
	assert_ann repo_url git://github.com/Codertocat/Hello-World.git
	assert_ann repo_ssh git@github.com:Codertocat/Hello-World.git
	assert_ann event_type delete
	assert_ann event_action ""
}

@test "delete of a branch: refs/heads/X" {
	annotate delete "$(payload_with "$GH/delete-payload.json" '.ref = "feature/x" | .ref_type = "branch"')"
	assert_success
	assert_eight
	assert_ann ref refs/heads/feature/x
	assert_ann revision ""
	assert_ann before ""
	assert_ann event_type delete
}

@test "create of a tag" {
	annotate create "$GH/create-payload.json" --events create
	assert_success
	assert_eight
	assert_ann ref refs/tags/simple-tag
	assert_ann revision ""
	assert_ann before ""
	assert_ann repo_name Codertocat/Hello-World
	assert_ann repo_url git://github.com/Codertocat/Hello-World.git
	assert_ann repo_ssh git@github.com:Codertocat/Hello-World.git
	assert_ann event_type create
	assert_ann event_action ""
}

@test "create of a branch" {
	annotate create "$(payload_with "$GH/create-payload.json" '.ref = "topic" | .ref_type = "branch"')" --events create
	assert_success
	assert_ann ref refs/heads/topic
}

@test "check_run: ref from check_run.check_suite.head_branch, revision check_run.head_sha" {
	annotate check_run "$GH/check_run-created.json"
	assert_success
	assert_no_response
	assert_eight
	assert_ann ref refs/heads/changes
	assert_ann revision ec26c3e57ca3a959ca5aad62de7213c562f8c821
	assert_ann before ""
	assert_ann repo_name Codertocat/Hello-World
	assert_ann repo_url git://github.com/Codertocat/Hello-World.git
	assert_ann repo_ssh git@github.com:Codertocat/Hello-World.git
	assert_ann event_type check_run
	assert_ann event_action created
}

@test "check_run with a null head_branch: ref is empty, not refs/heads/" {
	annotate check_run "$(payload_with "$GH/check_run-created.json" '.check_run.check_suite.head_branch = null')"
	assert_success
	assert_ann ref ""
	assert_ann revision ec26c3e57ca3a959ca5aad62de7213c562f8c821
}

@test "check_suite: revision from check_suite.after, before from check_suite.before" {
	annotate check_suite "$GH/check_suite-requested.json"
	assert_success
	assert_no_response
	assert_eight
	assert_ann ref refs/heads/master
	assert_ann revision f95f852bd8fca8fcc58a9a2d6c842781e32a215e
	assert_ann before 6113728f27ae82c7b1a177c8d03f9e96e0adf246
	assert_ann repo_name Codertocat/Hello-World
	assert_ann repo_url git://github.com/Codertocat/Hello-World.git
	assert_ann repo_ssh git@github.com:Codertocat/Hello-World.git
	assert_ann event_type check_suite
	assert_ann event_action requested
}

@test "check_suite without head_branch: ref is empty" {
	annotate check_suite "$(payload_with "$GH/check_suite-requested.json" 'del(.check_suite.head_branch)')"
	assert_success
	assert_ann ref ""
	assert_ann revision f95f852bd8fca8fcc58a9a2d6c842781e32a215e
}

@test "pull_request: refs/pull/N/head and the head sha" {
	annotate pull_request "$GH/pull_request-opened.json" --events pull_request
	assert_success
	assert_no_response
	assert_eight
	assert_ann ref refs/pull/2/head
	assert_ann revision ec26c3e57ca3a959ca5aad62de7213c562f8c821
	assert_ann before ""
	assert_ann repo_name Codertocat/Hello-World
	assert_ann repo_url git://github.com/Codertocat/Hello-World.git
	assert_ann repo_ssh git@github.com:Codertocat/Hello-World.git
	assert_ann event_type pull_request
	assert_ann event_action opened
}

@test "pull_request synchronize: before is the previous head" {
	annotate pull_request "$(payload_with "$GH/pull_request-opened.json" '.action = "synchronize" | .before = "1111111111111111111111111111111111111111" | .after = .pull_request.head.sha')" --events pull_request
	assert_success
	assert_ann before 1111111111111111111111111111111111111111
	assert_ann event_action synchronize
	assert_ann ref refs/pull/2/head
}

@test "release: refs/tags/ + release.tag_name" {
	annotate release "$(payload_with "$GH/create-payload.json" 'del(.ref, .ref_type, .master_branch, .description, .pusher_type) | .action = "published" | .release = {tag_name: "v1.2.3", target_commitish: "master"}')" --events release
	assert_success
	assert_eight
	assert_ann ref refs/tags/v1.2.3
	assert_ann revision ""
	assert_ann before ""
	assert_ann repo_name Codertocat/Hello-World
	assert_ann event_type release
	assert_ann event_action published
}

@test "workflow_dispatch: ref as given" {
	annotate workflow_dispatch "$(payload_with "$GH/create-payload.json" 'del(.ref_type, .master_branch, .description, .pusher_type) | .ref = "refs/heads/main" | .inputs = {}')" --events workflow_dispatch
	assert_success
	assert_eight
	assert_ann ref refs/heads/main
	assert_ann revision ""
	assert_ann before ""
	assert_ann repo_ssh git@github.com:Codertocat/Hello-World.git
	assert_ann event_type workflow_dispatch
	assert_ann event_action ""
}

@test "ping: 200 pong with the hook id, no annotations" {
	annotate ping "$GH/ping-payload.json"
	assert_success
	assert_response 200 "pong (hook 109948940)"
	[ "$(jq -c .annotations <<<"$output")" = null ]
}

@test "ping passes even when --events does not name it" {
	annotate ping "$GH/ping-payload.json" --events push
	assert_success
	assert_response 200 "pong (hook 109948940)"
}

@test "an event kwh does not map: 202, not an error" {
	annotate issues "$GH/pull_request-opened.json"
	assert_success
	assert_response 202 "event issues is not handled"
	[ "$(jq -c .annotations <<<"$output")" = null ]
}

@test "an unmapped event named in --events gets the generic annotations" {
	annotate issues "$GH/pull_request-opened.json" --events push,issues
	assert_success
	assert_no_response
	assert_eight
	assert_ann ref ""
	assert_ann revision ""
	assert_ann before ""
	assert_ann repo_name Codertocat/Hello-World
	assert_ann event_type issues
	assert_ann event_action opened
}

@test "null fields give empty values" {
	annotate push "$(payload_with "$GH/push-payload.json" '.ref = null | del(.after) | .repository.ssh_url = null')"
	assert_success
	assert_eight
	assert_ann ref ""
	assert_ann revision ""
	assert_ann before 6113728f27ae82c7b1a177c8d03f9e96e0adf246
	assert_ann repo_ssh ""
	assert_ann repo_name Codertocat/Hello-World
}
