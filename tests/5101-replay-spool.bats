#!/usr/bin/env bats
# kwh-replay's own logic, with stand-in chains written with jq and sh (the
# chain under test is kwh-replay, not the stages): re-arming, where the
# chain starts, what removes a file and what keeps it, order, locking.

load test_helper

setup() {
	setup_tmp
	SPOOL=$TMP/spool
	mkdir "$SPOOL" "$TMP/stubs"
	# Stand-ins named like the stages: each reads the envelope, records its
	# name, then passes it on, so a test sees which stages ran, in order.
	for s in kwh-annotate kwh-fetch kwh-apply; do
		printf '#!/bin/sh\nin=$(cat)\necho %s >>"$TMP/trace"\nprintf "%%s\\n" "$in"\n' "$s" >"$TMP/stubs/$s"
		chmod +x "$TMP/stubs/$s"
	done
	OK='jq -c ".results = [{\"action\": \"created\"}]"'
	FAIL='jq -c ".response = {\"status\": 503, \"message\": \"still down\"}"'
}

# spooled DELIVERY [STAGE] [MTIME]: a spooled file as kwh-respond writes it.
spooled() {
	jq -nc --arg d "$1" --arg st "${2:-kwh-apply}" '{kwh: 1, delivery: $d, verified: "sha256",
		deadline: 1000, payload: {ref: "refs/heads/main"}, annotations: {a: "b"}, manifests: [],
		spool: {stage: $st, status: 503, message: "down", time: 1000, attempts: 0}}' >"$SPOOL/$1.json"
	[ -z "${3:-}" ] || touch -d "$3" "$SPOOL/$1.json"
}

@test "a success removes the file; the chain gets the envelope re-armed; the result goes to stdout" {
	spooled r1
	before=$(date +%s%3N)
	run --separate-stderr kwh-replay --spool "$SPOOL" --budget 30 "tee \"\$TMP/in\" | $OK"
	after=$(date +%s%3N)
	assert_success
	[ ! -e "$SPOOL/r1.json" ]
	[ -z "$(ls -A "$SPOOL")" ]
	# what the chain read: no spool key, no response, deadline = now + 30 s
	jq -e --argjson b "$before" --argjson a "$after" '(has("spool") or has("response") | not) and
		.delivery == "r1" and .payload.ref == "refs/heads/main" and
		.deadline >= $b + 30000 and .deadline <= $a + 30000' "$TMP/in"
	echo "$output" | jq -e '.delivery == "r1" and .results == [{"action": "created"}]'
	[[ "$stderr" == *"level=info delivery=r1 status=201 msg=\"replayed from kwh-apply (attempt 1): created\""* ]]
}

@test "a failure keeps the file, with attempts + 1 and the last outcome; the rest is unchanged" {
	spooled f1
	cp "$SPOOL/f1.json" "$TMP/orig"
	run --separate-stderr kwh-replay --spool "$SPOOL" "$FAIL"
	assert_failure 1
	jq -e --slurpfile o "$TMP/orig" 'del(.spool.attempts, .spool.last) == ($o[0] | del(.spool.attempts)) and .spool.attempts == 1 and
		.spool.last.status == 503 and .spool.last.message == "still down" and (.spool.last.time | type) == "number"' \
		"$SPOOL/f1.json"
	[[ "$stderr" == *"level=error delivery=f1 status=503 msg=\"replay from kwh-apply failed (attempt 1), kept: still down\""* ]]
	run --separate-stderr kwh-replay --spool "$SPOOL" "$FAIL"
	assert_failure 1
	jq -e '.spool.attempts == 2' "$SPOOL/f1.json"
	[ "$(ls -A "$SPOOL")" = f1.json ]
}

@test "a 4xx result keeps the file too" {
	spooled f4
	run --separate-stderr kwh-replay --spool "$SPOOL" 'jq -c ".response = {\"status\": 422, \"message\": \"invalid\"}"'
	assert_failure 1
	jq -e '.spool.attempts == 1 and .spool.last.status == 422 and .spool.last.message == "invalid"' "$SPOOL/f4.json"
	[[ "$stderr" == *"level=warn delivery=f4 status=422"* ]]
}

@test "a chain that exits non-zero, writes nothing, or answers for another delivery does not remove the file" {
	spooled n1
	run --separate-stderr kwh-replay --spool "$SPOOL" "$OK; exit 3"
	assert_failure 1
	jq -e '.spool.last == (.spool.last | .message = "the chain exited 3") and .spool.last.status == 500' "$SPOOL/n1.json"
	run --separate-stderr kwh-replay --spool "$SPOOL" 'cat >/dev/null'
	assert_failure 1
	jq -e '.spool.attempts == 2 and .spool.last.message == "the chain wrote nothing"' "$SPOOL/n1.json"
	run --separate-stderr kwh-replay --spool "$SPOOL" 'echo "not json"'
	assert_failure 1
	jq -e '.spool.last.message == "the chain wrote no envelope"' "$SPOOL/n1.json"
	run --separate-stderr kwh-replay --spool "$SPOOL" 'jq -c ".delivery = \"other\""'
	assert_failure 1
	jq -e '.spool.attempts == 4 and .spool.last.message == "the chain answered for delivery '"'"'other'"'"'"' "$SPOOL/n1.json"
	run --separate-stderr kwh-replay --spool "$SPOOL" 'kill -9 $$'
	assert_failure 1
	jq -e '.spool.attempts == 5 and .spool.last.status == 500' "$SPOOL/n1.json"
}

@test "the chain starts at the stage where the delivery stopped" {
	PATH=$TMP/stubs:$PATH
	spooled a1 kwh-annotate 2020-01-01
	spooled f1 kwh-fetch 2020-01-02
	spooled p1 kwh-apply 2020-01-03
	spooled x1 custom-step 2020-01-04
	run --separate-stderr kwh-replay --spool "$SPOOL" 'kwh-annotate | kwh-fetch | kwh-apply'
	assert_success
	[ "$(tr '\n' ' ' <"$TMP/trace")" = "kwh-annotate kwh-fetch kwh-apply kwh-fetch kwh-apply kwh-apply kwh-annotate kwh-fetch kwh-apply " ]
	[ -z "$(ls -A "$SPOOL")" ]
}

@test "the chain is split only at pipes outside quotes, by program name" {
	spooled q1 kwh-apply
	spooled q2 kwh-fetch
	chain='jq -c "if .x then . else . end | ." | /usr/local/bin/kwh-apply --dedupe'
	run --separate-stderr kwh-replay --dry-run --spool "$SPOOL" "$chain"
	assert_success
	[[ "$stderr" == *'delivery=q1 msg="would replay from kwh-apply: /usr/local/bin/kwh-apply --dedupe"'* ]]
	# no kwh-fetch in the chain: the whole of it
	[[ "$stderr" == *'delivery=q2 msg="would replay from kwh-fetch: jq -c \"if .x then . else . end | .\" | /usr/local/bin/kwh-apply --dedupe"'* ]]
	# "||" is not a pipe: the whole chain
	run --separate-stderr kwh-replay --dry-run --spool "$SPOOL" "echo 'kwh-apply | x' || kwh-apply"
	[[ "$stderr" == *"delivery=q1 msg=\"would replay from kwh-apply: echo 'kwh-apply | x' || kwh-apply\""* ]]
	run --separate-stderr kwh-replay --dry-run --spool "$SPOOL" "kwh-fetch|kwh-apply"
	[[ "$stderr" == *'delivery=q1 msg="would replay from kwh-apply: kwh-apply"'* ]]
	[[ "$stderr" == *'delivery=q2 msg="would replay from kwh-fetch: kwh-fetch|kwh-apply"'* ]]
}

@test "the stage and the attempt number are in the chain's environment" {
	spooled e1 kwh-fetch
	run --separate-stderr kwh-replay --spool "$SPOOL" 'echo "$KWH_REPLAY_STAGE $KWH_REPLAY_ATTEMPT" >>"$TMP/seen"; '"$FAIL"
	run --separate-stderr kwh-replay --spool "$SPOOL" 'echo "$KWH_REPLAY_STAGE $KWH_REPLAY_ATTEMPT" >>"$TMP/seen"; '"$FAIL"
	[ "$(cat "$TMP/seen")" = "kwh-fetch 1
kwh-fetch 2" ]
}

@test "oldest first, and a failed file keeps its place" {
	spooled c kwh-apply "2021-03-01 00:00:03"
	spooled a kwh-apply "2021-03-01 00:00:01"
	spooled b kwh-apply "2021-03-01 00:00:02"
	# the chain records the delivery and writes nothing: a failure
	run --separate-stderr kwh-replay --spool "$SPOOL" 'jq -r .delivery >>"$TMP/order"'
	assert_failure 1
	run --separate-stderr kwh-replay --spool "$SPOOL" 'jq -r .delivery >>"$TMP/order"'
	[ "$(tr '\n' ' ' <"$TMP/order")" = "a b c a b c " ]
	[ "$(stat -c %Y "$SPOOL/a.json")" = "$(date -d '2021-03-01 00:00:01' +%s)" ]
}

@test "--dry-run prints the re-armed envelopes and changes nothing" {
	spooled d1 kwh-fetch "2021-01-01"
	spooled d2 kwh-apply "2021-01-02"
	tar -C "$SPOOL" -cf "$TMP/before.tar" .
	run --separate-stderr kwh-replay --dry-run --spool "$SPOOL"
	assert_success
	[ "${#lines[@]}" -eq 2 ]
	echo "${lines[0]}" | jq -e '.delivery == "d1" and (has("spool") | not) and .deadline > 1000'
	echo "${lines[1]}" | jq -e '.delivery == "d2"'
	tar -C "$SPOOL" -cf "$TMP/after.tar" .
	cmp "$TMP/before.tar" "$TMP/after.tar"
}

@test "temporary files, other names and envelopes that are not JSON are left alone" {
	spooled good
	echo '{"kwh":1,"delivery":"tmp"}' >"$SPOOL/.tmp.json.AbC123"
	echo '{}' >"$SPOOL/notes.txt"
	echo 'garbage' >"$SPOOL/bad.json"
	run --separate-stderr kwh-replay --spool "$SPOOL" "tee -a \"\$TMP/in\" | $OK"
	assert_failure 1
	[ "$(jq -r .delivery "$TMP/in")" = good ]
	[ "$(ls -A "$SPOOL" | tr '\n' ' ')" = ".tmp.json.AbC123 bad.json notes.txt " ]
	[ "$(cat "$SPOOL/bad.json")" = garbage ]
	[[ "$stderr" == *"'$SPOOL/bad.json' is not an envelope: left alone"* ]]
}

@test "a file another process holds locked is skipped and left as it is" {
	spooled held
	spooled free
	cp "$SPOOL/held.json" "$TMP/orig"
	# flock(1) holds the lock while kwh-replay runs
	run --separate-stderr flock "$SPOOL/held.json" kwh-replay --spool "$SPOOL" "tee -a \"\$TMP/in\" | $OK"
	assert_success
	[ "$(jq -r .delivery "$TMP/in")" = free ]
	cmp "$SPOOL/held.json" "$TMP/orig"
	[ "$(ls -A "$SPOOL")" = held.json ]
}

@test "two replays at once: each delivery goes through the chain once" {
	for i in $(seq 1 16); do spooled "c$i"; done
	# each chain records the delivery it read; both runs start together
	chain="jq -c . | tee -a \"\$TMP/ran.json\" | { sleep 0.01; $OK; }"
	kwh-replay --spool "$SPOOL" --log none "$chain" >"$TMP/out1" &
	p1=$!
	kwh-replay --spool "$SPOOL" --log none "$chain" >"$TMP/out2" &
	p2=$!
	wait "$p1"
	wait "$p2"
	[ -z "$(ls -A "$SPOOL")" ]
	[ "$(jq -r .delivery "$TMP/ran.json" | wc -l)" -eq 16 ]
	[ "$(jq -r .delivery "$TMP/ran.json" | sort -u | wc -l)" -eq 16 ]
	[ "$(cat "$TMP/out1" "$TMP/out2" | wc -l)" -eq 16 ]
}

@test "usage: a chain is needed (one argument), --help, a spool that cannot be read" {
	run --separate-stderr kwh-replay --spool "$SPOOL"
	assert_failure 100
	[[ "$stderr" == *"no chain to replay through"* ]]
	run --separate-stderr kwh-replay --spool "$SPOOL" kwh-fetch kwh-apply
	assert_failure 100
	run --separate-stderr kwh-replay --spool "$SPOOL" ''
	assert_failure 100
	run --separate-stderr kwh-replay --budget 0 --spool "$SPOOL" cat
	assert_failure 100
	run --separate-stderr kwh-replay --help
	assert_success
	[[ "$output" == "usage: kwh-replay "* ]]
	run --separate-stderr kwh-replay --spool "$TMP/missing" cat
	assert_failure 111
	[[ "$stderr" == *"cannot read the spool '$TMP/missing'"* ]]
	run --separate-stderr kwh-replay --spool "$SPOOL" cat
	assert_success
	assert_output ''
}
