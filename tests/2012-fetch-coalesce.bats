#!/usr/bin/env bats
# Coalesced fetches (issue 16, point 4): while one fetch holds an entry,
# the deliveries that miss their revision record what they want (the
# entry's NAME.wants) and whoever fetches next fetches it all at once.
# The remote is slow: every upload-pack goes through a hook that counts
# it and sleeps a second.

load test_helper

setup() {
	setup_tmp
	ALLOW=(--allow-remote-host git://127.0.0.1)
	make_test_repo
	cat > "$TMP/slow-pack" <<EOF
#!/bin/sh
echo x >> "$TMP/packs"
sleep 1
exec "\$@"
EOF
	start_hooked_git_daemon "$TMP/slow-pack"
	URL=git://127.0.0.1:$GIT_DAEMON_PORT/octo/repo.git
	CACHE=$TMP/cache
}

teardown() {
	stop_git_servers
}

packs() {
	[ -f "$TMP/packs" ] || { echo 0; return; }
	wc -l < "$TMP/packs"
}

# new_branches N: pushes branches b1..bN, each with a commit of its own on
# REV3 (v = bI); branch I's commit is in $TMP/rev.I.
new_branches() {
	local w=$TMP/work i
	for i in $(seq 1 "$1"); do
		git_quiet -C "$w" checkout -q -B "b$i" "$REV3"
		commit_file "$w" .ci/workflow.yaml "$(cm wf "b$i")" "b$i" > "$TMP/rev.$i"
	done
	git_quiet -C "$w" checkout -q main
	git_quiet -C "$w" push -q "$BARE" $(for i in $(seq 1 "$1"); do echo "b$i"; done)
}

# deliver_all N: N concurrent kwh-fetch, delivery I for branch bI's commit;
# each one's output in $TMP/out.I, its log in $TMP/err.I.
deliver_all() {
	local i pids=()
	for i in $(seq 1 "$1"); do
		envelope "$(cat "$TMP/rev.$i")" "refs/heads/b$i" "$URL" > "$TMP/in.$i"
	done
	for i in $(seq 1 "$1"); do
		kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --timeout 40 < "$TMP/in.$i" \
		    > "$TMP/out.$i" 2> "$TMP/err.$i" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || true
	done
}

@test "30 deliveries of 30 new branches at once share a handful of fetches" {
	envelope "$REV3" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --timeout 40 < "$TMP/in"
	assert_success
	assert_equal "$(packs)" 1
	new_branches 30
	deliver_all 30
	for i in $(seq 1 30); do
		assert_equal "$(jq -r '.manifests[0].data.v, .source.revision' < "$TMP/out.$i")" "b$i
$(cat "$TMP/rev.$i")"
	done
	# one for main, then the first delivery's own, then the rest together
	# (each fetch takes over a second: one without coalescing each)
	n=$(packs)
	echo "# 30 new branches: $((n - 1)) fetches after the warm-up" >&3
	[ "$n" -le 6 ]
	grep -q "revisions wanted meanwhile, fetched together" "$TMP"/err.*
	# what was wanted was fetched and is forgotten
	run ls "$CACHE"
	refute_output --partial .wants
}

@test "more wanted refs than one fetch names: every branch at once" {
	envelope "$REV3" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	new_branches 40
	# 39 deliveries are waiting (recorded) while one fetch is in flight
	name=$(basename "$(ls -d "$CACHE"/*.git)" .git)
	deadline=$(( $(now_ms) + 60000 ))
	for i in $(seq 2 40); do
		echo "$deadline $(cat "$TMP/rev.$i") refs/heads/b$i"
	done > "$CACHE/$name.wants"
	envelope "$(cat "$TMP/rev.1")" refs/heads/b1 "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	assert_log_has "39 revisions wanted meanwhile, fetched together (2 refspecs)"
	assert_equal "$(packs)" 2
	# every branch came: the waiting deliveries find theirs without a fetch
	for b in 2 20 40; do
		envelope "$(cat "$TMP/rev.$b")" "refs/heads/b$b" "$URL" > "$TMP/in"
		run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
		assert_success
		assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" "b$b"
	done
	assert_equal "$(packs)" 2
	[ ! -e "$CACHE/$name.wants" ]
}

@test "a stale or damaged wants file does no harm and stays bounded" {
	envelope "$REV3" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	name=$(basename "$(ls -d "$CACHE"/*.git)" .git)
	wants=$CACHE/$name.wants
	new_branches 2
	{
		# left by processes killed while they waited: deadlines passed
		echo "1000 $(cat "$TMP/rev.2") refs/heads/b2"
		# malformed: no deadline, a short id, a ref that is no ref, a refspec
		echo "$(cat "$TMP/rev.2") refs/heads/b2"
		echo "$(( $(now_ms) + 60000 )) abc refs/heads/b2"
		echo "$(( $(now_ms) + 60000 )) $(cat "$TMP/rev.2") main"
		echo "$(( $(now_ms) + 60000 )) $(cat "$TMP/rev.2") +refs/heads/*:refs/heads/*"
		head -c 3000 /dev/urandom | base64 -w 0
		echo
		# filler up to the bound, deadlines passed
		for i in $(seq 1 1200); do echo "2000 $(printf '%040d' "$i") refs/heads/x$i"; done
	} > "$wants"
	[ "$(stat -c %s "$wants")" -ge 65536 ]
	envelope "$(cat "$TMP/rev.1")" refs/heads/b1 "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" b1
	# nothing was fetched for the dead or damaged lines: only b1's own ref
	[[ "$stderr" != *"wanted meanwhile"* ]]
	# and they are gone (the file was full: b1's own want not added either)
	[ ! -e "$wants" ]
	# b2 was not fetched with it, and is fetched on its own
	envelope "$(cat "$TMP/rev.2")" refs/heads/b2 "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" b2
	assert_equal "$(packs)" 3
}
