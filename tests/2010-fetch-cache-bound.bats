#!/usr/bin/env bats
# kwh-fetch's cache stays bounded: packs consolidated after fetches.

load test_helper

setup() {
	setup_tmp
	ALLOW=(--allow-remote-host git://127.0.0.1)
	make_test_repo
	start_git_daemon
	URL=git://127.0.0.1:$GIT_DAEMON_PORT/octo/repo.git
	CACHE=$TMP/cache
}

teardown() {
	stop_git_servers
}

# branches N: N branches b1..bN, each one commit on main's tip, pushed to
# $BARE; their commit ids in REVS[1..N].
branches() {
	local i w=$TMP/work
	REVS=()
	for i in $(seq 1 "$1"); do
		git_quiet -C "$w" checkout -q -B "b$i" "$REV3"
		REVS[i]=$(commit_file "$w" .ci/workflow.yaml "$(cm wf "v$i")" "v$i")
	done
	git_quiet -C "$w" checkout -q main
	git_quiet -C "$w" push -q "$BARE" $(for i in $(seq 1 "$1"); do echo "b$i:b$i"; done)
}

# packs: the number of packs in the cache's entry.
packs() {
	find "$CACHE" -path '*.git/objects/pack/*.pack' | wc -l
}

@test "40 fetches, one pack each: the entry's packs are consolidated, every revision readable" {
	branches 40
	for i in $(seq 1 40); do
		envelope "${REVS[i]}" "refs/heads/b$i" "$URL"
	done > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output" | tr '\n' ' ')" \
	    "$(for i in $(seq 1 40); do printf 'v%s ' "$i"; done)"
	assert_equal "$(upload_packs)" 40
	# each fetch wrote a pack: without consolidation there would be 40
	n=$(packs)
	[ "$n" -ge 1 ] && [ "$n" -le 32 ] || fail "$n packs in the entry"
	[[ $stderr == *"packs consolidated into one"* ]] || fail "no consolidation logged: $stderr"
	# the entry is whole: every revision read again, the server stopped
	stop_git_servers
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output" | tr '\n' ' ')" \
	    "$(for i in $(seq 1 40); do printf 'v%s ' "$i"; done)"
	run git -C "$(echo "$CACHE"/*.git)" fsck --no-dangling
	assert_success
}
