#!/usr/bin/env bats
# kwh-handle: what kwh-handle(1) and kwh-apply(1) promise about
# deduplication that no other test pinned (issue 14, point 7).  Each test here was seen
# to fail on a build broken on purpose; the commit that added it names the
# breakage.

load test_helper

setup() {
	setup_tmp
	handler_setup handle-secret
}

teardown() {
	apiserver_stop
}

# handle DELIVERY [OPTIONS]: the push in $TMP/push.json, signed, as
# DELIVERY, through kwh-handle; the response to $TMP/resp, sets STATUS,
# BODY (the response's JSON body) and HANDLE_RC.
handle() {
	local d=$1; shift
	kwh-sign --event push --delivery "$d" --secret-file "$TMP/secret" "$TMP/push.json" >"$TMP/req"
	kwh-handle "${VOPTS[@]}" "${AOPTS[@]}" "${FOPTS[@]}" "${POPTS[@]}" --log "$TMP/handle.log" "$@" \
		<"$TMP/req" >"$TMP/resp" && HANDLE_RC=0 || HANDLE_RC=$?
	STATUS=$(http_status "$TMP/resp")
	BODY=$(http_body "$TMP/resp")
}

workflows() {
	apiserver_objects | jq -c '[.[] | select(.kind == "Workflow")]'
}

@test "--dedupe: the same delivery twice creates one object; the second answer names it" {
	handle d-dup-1 --dedupe
	assert_equal "$STATUS:$HANDLE_RC" 201:0
	name=$(jq -r '.results[0] | select(.action == "created") | .name' <<<"$BODY")
	[[ "$name" =~ ^ci-[a-z0-9]{5}$ ]]
	# The name came from kwh-handle (derived from the delivery), not from
	# the server's generateName.
	apiserver_requests | jq -e --arg n "$name" '[.[] | select(.method == "POST")] | length == 1 and
		(.[0].body | fromjson | .metadata.name == $n)'
	workflows | jq -e --arg n "$name" 'length == 1 and .[0].metadata.name == $n'
	uid=$(workflows | jq -r '.[0].metadata.uid')
	# Redelivered: 2xx, naming the object that is there, nothing new.
	handle d-dup-1 --dedupe
	assert_equal "$HANDLE_RC" 0
	(( STATUS >= 200 && STATUS <= 299 ))
	jq -e --arg n "$name" --arg u "$uid" '.results | length == 1 and .[0].action == "exists" and
		.[0].name == $n and .[0].uid == $u and .[0].kind == "Workflow" and .[0].namespace == "ci"' <<<"$BODY"
	workflows | jq -e 'length == 1'
	# The same signed push under another delivery id is the same delivery
	# (the key is the digest of what is signed, not the unsigned id).
	handle d-dup-2 --dedupe
	assert_equal "$STATUS" 200
	jq -e --arg n "$name" '.results[0].action == "exists" and .results[0].name == $n' <<<"$BODY"
	workflows | jq -e 'length == 1'
	# Another push is another object.
	jq '.pusher.name = "someone-else"' "$TMP/push.json" >"$TMP/push2.json"
	mv "$TMP/push2.json" "$TMP/push.json"
	handle d-dup-3 --dedupe
	assert_equal "$STATUS" 201
	workflows | jq -e --arg n "$name" 'length == 2 and ([.[].metadata.name] | index($n) != null)'
	# Control: --no-dedupe (in POPTS; the last option wins) creates again.
	handle d-dup-3
	assert_equal "$STATUS" 201
	workflows | jq -e 'length == 3'
}
