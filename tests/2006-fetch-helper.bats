#!/usr/bin/env bats
# kwh-fetch is linked statically; its network side runs in the fetch helper,
# kwh-fetch-net, linked dynamically (lib/git.c, "The fetch helper").  Where
# the helper is found, what happens without it, and that the token reaches
# it through a pipe, not its arguments or environment.

load test_helper

TOKEN=s3cr3t-t0ken-4-helper

setup() {
	setup_tmp
	make_test_repo
	URL=file://$BARE
	CACHE=$TMP/cache
	HELPER=$KWH_BIN/../libexec/kwh/kwh-fetch-net
	unset KWH_LIBEXEC
}

teardown() {
	[ -z "${BG:-}" ] || { kill -9 $BG 2>/dev/null || true; wait $BG 2>/dev/null || true; }
	rm -f "$TMP/stall"
	stop_git_servers
}

@test "kwh-fetch has no dynamic loader; the helper is a dynamic program" {
	[ -n "${KWH_SANITIZED:-}" ] && skip "the sanitizer build links kwh-fetch dynamically"
	run file -L "$KWH_BIN/kwh-fetch"
	assert_output --partial "static-pie linked"
	run ldd "$HELPER"
	assert_output --partial "libc.so.6"
}

@test "a cached read needs no helper; a fetch without one is 500 naming where it looked" {
	envelope "$REV1" refs/heads/main "$URL" > "$TMP/in1"
	run -0 --separate-stderr kwh-fetch --cache "$CACHE" < "$TMP/in1"
	mkdir "$TMP/empty"
	export KWH_LIBEXEC=$TMP/empty
	run -0 --separate-stderr kwh-fetch --cache "$CACHE" < "$TMP/in1"
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" one
	# a new commit is not in the cache yet: that needs the helper
	new=$(commit_file "$TMP/work" .ci/workflow.yaml "$(cm wf four)" four)
	git_quiet -C "$TMP/work" push -q "$BARE" main
	envelope "$new" refs/heads/main "$URL" > "$TMP/in2"
	run -1 --separate-stderr kwh-fetch --cache "$CACHE" < "$TMP/in2"
	assert_equal "$(jq -r .response.status <<< "$output")" 500
	assert_equal "$(jq -r .response.message <<< "$output")" \
	    "cannot run the fetch helper '$TMP/empty/kwh-fetch-net': No such file or directory (set KWH_LIBEXEC to the directory that holds kwh-fetch-net)"
	# nothing was changed: no rebuild is pending, and with the helper it works
	dir=$(ls -d "$CACHE"/*.git)
	assert [ ! -e "$dir/kwh-incomplete" ]
	unset KWH_LIBEXEC
	run -0 --separate-stderr kwh-fetch --cache "$CACHE" < "$TMP/in2"
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" four
}

@test "installed layout: kwh-fetch finds the helper in ../libexec/kwh from its own directory" {
	mkdir -p "$TMP/p/bin" "$TMP/p/libexec/kwh"
	cp "$KWH_BIN/kwh-fetch" "$TMP/p/bin/"
	cp "$HELPER" "$TMP/p/libexec/kwh/"
	envelope "$REV2" refs/heads/main "$URL" > "$TMP/in"
	run -0 --separate-stderr "$TMP/p/bin/kwh-fetch" --cache "$CACHE" < "$TMP/in"
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" two
	# it used that copy: without it, the fetch cannot run
	rm "$TMP/p/libexec/kwh/kwh-fetch-net"
	run -1 --separate-stderr "$TMP/p/bin/kwh-fetch" --cache "$TMP/cache2" < "$TMP/in"
	assert_output --partial "cannot run the fetch helper '$TMP/p/bin/../libexec/kwh/kwh-fetch-net'"
}

@test "the helper run by hand refuses, and reports missing parameters" {
	run -100 --separate-stderr "$HELPER" 3>&- 4>&-
	assert_equal "$stderr" "kwh-fetch: fatal: kwh-fetch-net is run by kwh-fetch and kwh-handle, not by hand"
	run -100 --separate-stderr "$HELPER" 3</dev/null 4>"$TMP/report"
	assert_equal "$(cat "$TMP/report")" "Lthe fetch helper got no parameters"
}

@test "the token reaches the helper through a pipe: not in its arguments nor its environment" {
	start_http_git "$TOKEN"
	printf '%s\n' "$TOKEN" > "$TMP/token"
	touch "$TMP/stall"
	envelope "$REV2" refs/heads/main "http://127.0.0.1:$HTTP_GIT_PORT/octo/repo.git" \
	    octo/repo main $(( $(now_ms) + 60000 )) > "$TMP/in"
	kwh-fetch --cache "$CACHE" --token-file "$TMP/token" < "$TMP/in" > /dev/null 2>&1 3>&- &
	BG=$!
	pid=
	# wait until the helper runs and its request reached the server
	for _ in $(seq 200); do
		pid=$(pgrep -P "$BG" -x kwh-fetch-net || true)
		[ -n "$pid" ] && [ -s "$TMP/http.log" ] && break
		sleep 0.05
	done
	[ -n "$pid" ]
	run tr '\0' ' ' < "/proc/$pid/cmdline"
	assert_output "kwh-fetch-net "
	! tr '\0' '\n' < "/proc/$pid/environ" | grep -q "$TOKEN"
	! tr '\0' '\n' < "/proc/$BG/environ" | grep -q "$TOKEN"
	! tr '\0' ' ' < "/proc/$BG/cmdline" | grep -q "$TOKEN"
}
