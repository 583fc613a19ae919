#!/usr/bin/env bats
# kwh-fetch's cache stays bounded: packs consolidated after fetches, the
# least recently used entries evicted past --cache-max-bytes.  kwh-fetch
# does both once its envelopes are out, in a detached process holding the
# entry's exclusive lock: the tests wait for that lock (upkept), and read
# what it did in the log.

load test_helper

setup() {
	setup_tmp
	ALLOW=(--allow-remote-host git://127.0.0.1)
	make_test_repo
	start_git_daemon
	URL=git://127.0.0.1:$GIT_DAEMON_PORT/octo/repo.git
	CACHE=$TMP/cache
	LOG=$TMP/fetch.log
}

# upkept LOCK: waits (60 s at most) until the upkeep after a fetch has let
# go of the entry's lock file LOCK.
upkept() {
	flock -w 60 -x "$1" true
}

teardown() {
	[ -z "${LISTEN_PID:-}" ] || stop_pid "$LISTEN_PID"
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
	kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --log "$LOG" < "$TMP/in" > "$TMP/out" &
	pid=$!
	wait "$pid"
	assert_equal "$(jq -r '.manifests[0].data.v' < "$TMP/out" | tr '\n' ' ')" \
	    "$(for i in $(seq 1 40); do printf 'v%s ' "$i"; done)"
	assert_equal "$(upload_packs)" 40
	upkept "$(ls "$CACHE"/*.lock)"
	# each fetch wrote a pack: without consolidation there would be 40
	n=$(packs)
	[ "$n" -ge 1 ] && [ "$n" -le 32 ] || fail "$n packs in the entry"
	grep -F "packs consolidated into one" "$LOG" || fail "no consolidation logged: $(cat "$LOG")"
	# once, after the 40 answers, by another process than kwh-fetch
	assert_equal "$(grep -c "packs consolidated into one" "$LOG")" 1
	run ! grep -F "process $pid)" "$LOG"
	# the entry is whole: every revision read again, the server stopped
	stop_git_servers
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output" | tr '\n' ' ')" \
	    "$(for i in $(seq 1 40); do printf 'v%s ' "$i"; done)"
	run git -C "$(echo "$CACHE"/*.git)" fsck --no-dangling
	assert_success
}

# three_remotes: copies of $BARE at $SRV/octo/{a,b,c}.git, fetched over
# file:// (ENV: URLA URLB URLC).
three_remotes() {
	local r
	for r in a b c; do cp -r "$BARE" "$SRV/octo/$r.git"; done
	URLA=file://$SRV/octo/a.git URLB=file://$SRV/octo/b.git URLC=file://$SRV/octo/c.git
}

# fetch_url URL [OPTIONS...]: kwh-fetch of main's tip REV3 from URL.
fetch_url() {
	local url=$1
	shift
	envelope "$REV3" refs/heads/main "$url" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" --allow-remote-host file:// --log "$LOG" \
	    "$@" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" three
	upkept "$(entry "$url").lock"
}

# entry URL: the cache entry's path (without .git or .lock).
entry() {
	local n
	n=$(ls -d "$CACHE"/*-octo-"${1##*/}" 2>/dev/null) || return 0
	echo "${n%.git}"
}

# a and b fetched; a used last (its lock stamped by a read), though b was
# fetched after it; LIMIT lets two entries stay, not three.
two_entries_a_used_last() {
	three_remotes
	fetch_url "$URLA" --cache-max-bytes 0
	fetch_url "$URLB" --cache-max-bytes 0
	A=$(entry "$URLA") B=$(entry "$URLB")
	[ -d "$A.git" ] && [ -d "$B.git" ] || fail "entries missing: $(ls "$CACHE")"
	touch -d '-2 min' "$A.lock"
	touch -d '-1 min' "$B.lock"
	fetch_url "$URLA" --cache-max-bytes 0	# a read, from the cache
	size=$(du -s --block-size=1 "$A.git" | cut -f1)
	LIMIT=$(( size * 5 / 2 ))
}

@test "--cache-max-bytes: the least recently used entry is evicted, lock file too; the others stay" {
	two_entries_a_used_last
	fetch_url "$URLC" --cache-max-bytes "$LIMIT"
	C=$(entry "$URLC")
	[ -d "$C.git" ] || fail "c not cached"
	[ -d "$A.git" ] && [ -f "$A.lock" ] || fail "a, used last, was evicted"
	[ ! -e "$B.git" ] && [ ! -e "$B.lock" ] || fail "b, the least recently used, stayed: $LIMIT $(du -s --block-size=1 "$CACHE"/*) $stderr"
	grep -F "cache entry '$B.git' evicted" "$LOG" || fail "eviction not logged: $(cat "$LOG")"
	# b comes back on demand
	fetch_url "$URLB" --cache-max-bytes 0
}

@test "--cache-max-bytes: an entry in use (its lock held) is not evicted, the next one is" {
	two_entries_a_used_last
	flock -s "$B.lock" sleep 30 3>&- &
	holder=$!
	# wait until the lock is held
	for _ in $(seq 1 100); do
		flock -n -x "$B.lock" true || break
		sleep 0.05
	done
	run flock -n -x "$B.lock" true
	assert_failure
	fetch_url "$URLC" --cache-max-bytes "$LIMIT"
	kill "$holder"
	wait "$holder" || true
	[ -d "$B.git" ] && [ -f "$B.lock" ] || fail "b, in use, was evicted"
	[ ! -e "$A.git" ] && [ ! -e "$A.lock" ] || fail "a was not evicted"
	[ -d "$(entry "$URLC").git" ] || fail "c not cached"
	grep -F "cache entry '$B.git' not evicted: in use" "$LOG" || fail "$(cat "$LOG")"
}

@test "--cache-max-bytes 0: no bound" {
	three_remotes
	fetch_url "$URLA" --cache-max-bytes 0
	fetch_url "$URLB" --cache-max-bytes 0
	fetch_url "$URLC" --cache-max-bytes 0
	assert_equal "$(ls -d "$CACHE"/*.git | wc -l)" 3
	fetch_url "$URLC" --cache-max-bytes 1k	# a read: no fetch, no eviction
	assert_equal "$(ls -d "$CACHE"/*.git | wc -l)" 3
}

@test "kwh-handle --cache-max-bytes: after its fetch, an unused entry past the bound is evicted" {
	secret_file secret s3cret
	REV=$REV3
	push_payload refs/heads/main "file://$BARE" > "$TMP/push.json"
	kwh-sign --event push --delivery d-h --secret-file "$TMP/secret" "$TMP/push.json" > "$TMP/req"
	mkdir -p "$CACHE/0123456789abcdef-octo-old.git"
	head -c 65536 /dev/zero > "$CACHE/0123456789abcdef-octo-old.git/data"
	touch -d '-1 hour' "$CACHE/0123456789abcdef-octo-old.lock"
	run --separate-stderr kwh-handle --secret-file "$TMP/secret" --cache "$CACHE" \
	    --allow-remote-host file:// --allow-kind /ConfigMap --dry-run=client --cache-max-bytes 1k \
	    --log "$LOG" < "$TMP/req"
	assert_success
	# once the answer is written (its standard output closed), here
	grep -F "the least recently used, by process " "$LOG"
	[[ $output == *"HTTP/1.1 200"* ]] || fail "$output $stderr"
	[ ! -e "$CACHE/0123456789abcdef-octo-old.git" ] && [ ! -e "$CACHE/0123456789abcdef-octo-old.lock" ] ||
	    fail "the old entry stayed: $stderr"
	ls -d "$CACHE"/*-octo-repo.git
}

@test "kwh-handle --listen: the upkeep after the answer runs in a detached process, not in the worker" {
	secret_file secret s3cret
	REV=$REV3
	push_payload refs/heads/main "file://$BARE" > "$TMP/push.json"
	kwh-sign --event push --delivery d-l --secret-file "$TMP/secret" "$TMP/push.json" > "$TMP/req"
	mkdir -p "$CACHE/0123456789abcdef-octo-old.git"
	head -c 65536 /dev/zero > "$CACHE/0123456789abcdef-octo-old.git/data"
	touch -d '-1 hour' "$CACHE/0123456789abcdef-octo-old.lock"
	PORT=$(free_port)
	kwh-handle --listen "127.0.0.1:$PORT" --workers 1 --secret-file "$TMP/secret" \
	    --cache "$CACHE" --allow-remote-host file:// --allow-kind /ConfigMap --dry-run=client \
	    --cache-max-bytes 1k --log "$LOG" 2>"$TMP/listen.err" 3>&- &
	LISTEN_PID=$!
	wait_port "$PORT"
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	cat "$TMP/req" >&$fd
	timeout 20 cat <&$fd > "$TMP/resp"
	exec {fd}>&-
	[[ $(head -n1 "$TMP/resp") == "HTTP/1.1 200 "* ]] || fail "$(cat "$TMP/resp")"
	# the client may be let go before the upkeep takes the lock: wait
	# for its work
	for _ in $(seq 200); do
		grep -qF "the least recently used, by process " "$LOG" && break
		sleep 0.1
	done
	[ ! -e "$CACHE/0123456789abcdef-octo-old.git" ] || fail "the old entry stayed: $(cat "$LOG")"
	worker=$(pgrep -P "$LISTEN_PID")
	[ -n "$worker" ]
	grep -F "the least recently used, by process " "$LOG"
	run ! grep -F "by process $worker)" "$LOG"
	run ! grep -F "by process $LISTEN_PID)" "$LOG"
}

@test "--cache-max-bytes: not a size is a usage error (100), for kwh-fetch and kwh-handle" {
	run kwh-fetch --cache-max-bytes 2T
	assert_failure 100
	assert_output --partial "--cache-max-bytes: '2T' is not a number"
	run kwh-handle --cache-max-bytes -1
	assert_failure 100
	assert_output --partial "--cache-max-bytes: '-1' is not a number"
}
