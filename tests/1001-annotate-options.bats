#!/usr/bin/env bats
# kwh-annotate: --events, --ignore-ref, --filter, --set.
load test_helper
load fixtures/annotate/helper

GH=$FIXTURES/github

@test "--events: a listed event passes" {
	annotate push "$GH/push-with-new-branch.json" --events delete,push
	assert_success
	assert_no_response
	assert_ann ref refs/heads/master
}

@test "--events: an event not listed gets 202" {
	annotate delete "$GH/delete-payload.json" --events push,check_suite
	assert_success
	assert_response 202 "event delete is not handled"
}

@test "--events: a prefix of a listed name does not match" {
	annotate check_run "$GH/check_run-created.json" --events check_run_x,push
	assert_success
	assert_response 202 "event check_run is not handled"
}

@test "--events: a malformed list is a usage error" {
	annotate push "$GH/push-payload.json" --events 'push,,delete'
	assert_failure 100
	assert_output ""
	[[ $stderr == *"--events"* ]]
}

@test "--ignore-ref: a matching ref gets 202 naming the ref" {
	annotate push "$GH/push-payload.json" --ignore-ref '^refs/tags/'
	assert_success
	assert_response 202 "ref refs/tags/simple-tag is ignored"
	[ "$(jq -c .annotations <<<"$output")" = null ]
}

@test "--ignore-ref: a ref that does not match passes" {
	annotate push "$GH/push-with-new-branch.json" --ignore-ref '^refs/tags/'
	assert_success
	assert_no_response
	assert_ann ref refs/heads/master
}

@test "--ignore-ref is an extended regular expression on the full ref" {
	annotate push "$GH/push-with-new-branch.json" --ignore-ref '^refs/heads/(master|main)$'
	assert_response 202 "ref refs/heads/master is ignored"
	annotate check_run "$GH/check_run-created.json" --ignore-ref '^refs/heads/(master|main)$'
	assert_no_response
	assert_ann ref refs/heads/changes
}

@test "--ignore-ref applies to the mapped ref of delete events" {
	annotate delete "$GH/delete-payload.json" --ignore-ref '^refs/tags/simple'
	assert_success
	assert_response 202 "ref refs/tags/simple-tag is ignored"
}

@test "--ignore-ref: an invalid expression stops at start-up with 100" {
	annotate push "$GH/push-payload.json" --ignore-ref '(unclosed'
	assert_failure 100
	assert_output ""
	[[ $stderr == *"--ignore-ref '(unclosed'"* ]]
}

@test "--filter: true passes, false gets 202 naming the expression" {
	annotate push "$GH/push-with-new-branch.json" --filter '.payload.ref == "refs/heads/master"'
	assert_success
	assert_no_response
	annotate push "$GH/push-payload.json" --filter '.payload.ref == "refs/heads/master"'
	assert_success
	assert_response 202 'filtered out by .payload.ref == "refs/heads/master"'
}

@test "--filter: null and no output filter out" {
	annotate push "$GH/push-payload.json" --filter '.nothing'
	assert_response 202 "filtered out by .nothing"
	annotate push "$GH/push-payload.json" --filter 'empty'
	assert_response 202 "filtered out by empty"
}

@test "--filter sees the annotations" {
	annotate push "$GH/push-with-new-branch.json" --filter '.annotations["k8s-webhook-handler.io/ref"] | startswith("refs/heads/")'
	assert_no_response
	annotate push "$GH/push-payload.json" --filter '.annotations["k8s-webhook-handler.io/ref"] | startswith("refs/heads/")'
	assert_response 202
}

@test "--filter: several are and-ed" {
	annotate push "$GH/push-with-new-branch.json" --filter '.event == "push"' --filter '.payload.created'
	assert_no_response
	annotate push "$GH/push-payload.json" --filter '.event == "push"' --filter '.payload.created'
	assert_response 202 "filtered out by .payload.created"
}

@test "--filter: an error at run time is 422 naming the expression" {
	annotate push "$GH/push-payload.json" --filter '.payload.ref | tonumber'
	assert_failure 1
	assert_response 422
	[[ $(jq -r .response.message <<<"$output") == "--filter '.payload.ref | tonumber' failed: "* ]]
}

@test "--filter: an invalid expression stops at start-up with 100 and jq's error" {
	annotate push "$GH/push-payload.json" --filter '.payload.ref ==='
	assert_failure 100
	assert_output ""
	[[ $stderr == *"--filter '.payload.ref ===': "*"syntax error"* ]]
}

@test "--set: a new annotation from a string" {
	annotate push "$GH/push-with-new-branch.json" --set 'example.com/pusher=.payload.pusher.name'
	assert_success
	assert_ann example.com/pusher Codertocat
	assert_ann ref refs/heads/master
}

@test "--set: numbers and booleans in their JSON form" {
	annotate push "$GH/push-with-new-branch.json" --set 'x.io/n=.payload.repository.id' --set 'x.io/f=.payload.forced' --set 'x.io/d=1.5'
	assert_success
	assert_ann x.io/n 186853002
	assert_ann x.io/f false
	assert_ann x.io/d 1.5
}

@test "--set: null leaves the annotation out" {
	annotate push "$GH/push-with-new-branch.json" --set 'x.io/none=.payload.nothing'
	assert_success
	assert_no_response
	assert_ann x.io/none "<missing>"
	assert_eight
}

@test "--set: overrides one of the eight, or removes it with null" {
	annotate push "$GH/push-payload.json" --set 'k8s-webhook-handler.io/revision=.payload.before'
	assert_success
	assert_ann revision 6113728f27ae82c7b1a177c8d03f9e96e0adf246
	assert_ann before 6113728f27ae82c7b1a177c8d03f9e96e0adf246
	annotate push "$GH/push-payload.json" --set 'k8s-webhook-handler.io/before=null'
	assert_ann before "<missing>"
	assert_ann revision 0000000000000000000000000000000000000000
}

@test "--set: each sees the ones before it" {
	annotate push "$GH/push-with-new-branch.json" --set 'a.io/x="one"' --set 'a.io/y=.annotations["a.io/x"] + "-two"'
	assert_ann a.io/y one-two
}

@test "--set: an expression that fails is 422 naming it" {
	annotate push "$GH/push-payload.json" --set 'a.io/x=error("boom")'
	assert_failure 1
	assert_response 422 "--set 'a.io/x=error(\"boom\")' failed: boom"
}

@test "--set: an object or array is 422" {
	annotate push "$GH/push-payload.json" --set 'a.io/x=.payload.pusher'
	assert_failure 1
	assert_response 422 "--set 'a.io/x=.payload.pusher' gave an object, not a string, number or boolean"
}

@test "--set: an invalid expression stops at start-up with 100" {
	annotate push "$GH/push-payload.json" --set 'a.io/x=.a ||| .b'
	assert_failure 100
	assert_output ""
	[[ $stderr == *"--set 'a.io/x=.a ||| .b': "*"error"* ]]
}

@test "--set: a missing = or an invalid key stops at start-up with 100" {
	annotate push "$GH/push-payload.json" --set 'justakey'
	assert_failure 100
	[[ $stderr == *"--set 'justakey': not KEY=EXPR"* ]]
	annotate push "$GH/push-payload.json" --set 'bad key=1'
	assert_failure 100
	[[ $stderr == *"annotation key 'bad key' is invalid"* ]]
}

@test "--filter and --set run only on deliveries that get that far" {
	annotate push "$GH/push-payload.json" --ignore-ref '^refs/tags/' --set 'a.io/x=error("never")'
	assert_success
	assert_response 202 "ref refs/tags/simple-tag is ignored"
}

@test "usage: --help on stdout, unknown options and arguments exit 100" {
	run --separate-stderr kwh-annotate --help
	assert_success
	[[ $output == "usage: kwh-annotate "* ]]
	run --separate-stderr kwh-annotate --bogus
	assert_failure 100
	run --separate-stderr kwh-annotate extra
	assert_failure 100
}
