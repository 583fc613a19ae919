#!/usr/bin/env bats
# kwh-replay: what kwh-replay(1) promises about a chain's 3xx answer, which
# no other test pinned (issue 14, point 7).  The chain is a stand-in
# written with jq, as in tests/5101: the subject is kwh-replay.  Each test
# here was seen to fail on a build broken on purpose; the commit that
# added it names the breakage.

load test_helper

setup() {
	setup_tmp
	SPOOL=$TMP/spool
	mkdir "$SPOOL"
}

# spooled DELIVERY: a delivery spooled at kwh-apply, as kwh-respond writes it.
spooled() {
	jq -nc --arg d "$1" '{kwh: 1, delivery: $d, verified: "sha256",
		deadline: 1000, payload: {ref: "refs/heads/main"}, annotations: {a: "b"}, manifests: [],
		spool: {stage: "kwh-apply", status: 503, message: "down", time: 1000, attempts: 0}}' >"$SPOOL/$1.json"
}

# answering STATUS: a chain that answers STATUS and exits 0.
answering() {
	printf 'jq -c ".response = {\\"status\\": %d, \\"message\\": \\"answered %d\\"}"' "$1" "$1"
}

@test "a delivery whose chain answers 3xx stays in the spool" {
	for st in 300 302 307 308; do
		spooled "r$st"
		run --separate-stderr kwh-replay --spool "$SPOOL" "$(answering "$st")"
		assert_failure 1
		# the chain did answer (the result is on stdout), and exited 0
		echo "$output" | jq -e --argjson s "$st" '.delivery == "r\($s)" and .response.status == $s'
		[ -f "$SPOOL/r$st.json" ]
		jq -e --argjson s "$st" '.spool.attempts == 1 and .spool.last.status == $s and
			.spool.last.message == "answered \($s)"' "$SPOOL/r$st.json"
		rm "$SPOOL/r$st.json"
	done
	# Control: the same chain answering 2xx removes the file.
	for st in 200 202 204; do
		spooled "r$st"
		run --separate-stderr kwh-replay --spool "$SPOOL" "$(answering "$st")"
		assert_success
		[ ! -e "$SPOOL/r$st.json" ]
	done
	[ -z "$(ls -A "$SPOOL")" ]
}
