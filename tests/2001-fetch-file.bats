#!/usr/bin/env bats
# kwh-fetch over file:// remotes: revisions, branches, paths, YAML errors,
# the cache.

load test_helper

setup() {
	setup_tmp
	ALLOW=(--allow-remote-host file://)
	make_test_repo
	URL=file://$BARE
	CACHE=$TMP/cache
}

teardown() {
	stop_git_servers
}

# fetch ENVELOPE-ARGS... [-- OPTIONS...]: runs kwh-fetch on an envelope.
fetch() {
	local args=() opts=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do args+=("$1"); shift; done
	[ "${1:-}" != -- ] || { shift; opts=("$@"); }
	envelope "${args[@]}" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" "${opts[@]}" < "$TMP/in"
}

@test "an exact revision that is not the branch tip gives that revision's file" {
	fetch "$REV2" refs/heads/main "$URL"
	assert_success
	assert_equal "$(jq -c '.manifests' <<< "$output")" \
	    '[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"wf"},"data":{"v":"two"}}]'
	assert_equal "$(jq -c '.source' <<< "$output")" \
	    "{\"url\":\"$URL\",\"revision\":\"$REV2\",\"path\":\".ci/workflow.yaml\"}"
	assert_equal "$(jq -r '.delivery + " " + .annotations["k8s-webhook-handler.io/revision"]' <<< "$output")" "d-1 $REV2"
}

@test "an abbreviated revision is refused with 422, even one the cache has" {
	fetch "$REV1" "" "$URL"
	assert_success
	fetch "${REV1:0:10}" "" "$URL"
	assert_failure 1
	assert_equal "$(jq -r '.response | "\(.status) \(.message)"' <<< "$output")" \
	    "422 revision '${REV1:0:10}' is not a full commit id (40 hexadecimal digits)"
}

@test "a revision on another branch than the ref named is still found" {
	fetch "$FEAT" refs/heads/main "$URL"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" feature
}

@test "no revision (a delete event) reads the remote's default branch" {
	git_quiet -C "$BARE" branch trunk "$REV1"
	git_quiet -C "$BARE" symbolic-ref HEAD refs/heads/trunk
	fetch "" refs/heads/feature "$URL" octo/repo main
	assert_success
	assert_equal "$(jq -r '.source.revision, .manifests[0].data.v' <<< "$output")" "$REV1
one"
}

@test "an all-zero revision (a push deleting a branch) reads the default branch" {
	fetch 0000000000000000000000000000000000000000 refs/heads/feature "$URL"
	assert_success
	assert_equal "$(jq -r '.source.revision' <<< "$output")" "$REV3"
}

@test "without a remote HEAD, payload.repository.default_branch is used" {
	git_quiet -C "$BARE" symbolic-ref HEAD refs/heads/gone
	fetch "" "" "$URL" octo/repo feature
	assert_success
	assert_equal "$(jq -r '.source.revision' <<< "$output")" "$FEAT"
}

@test "the default branch follows the remote: a new commit there is fetched" {
	fetch "" "" "$URL"
	assert_success
	assert_equal "$(jq -r '.source.revision' <<< "$output")" "$REV3"
	REV4=$(commit_file "$TMP/work" .ci/workflow.yaml "$(cm wf four)" four)
	git_quiet -C "$TMP/work" push -q "$BARE" main
	fetch "" "" "$URL"
	assert_success
	assert_equal "$(jq -r '.source.revision, .manifests[0].data.v' <<< "$output")" "$REV4
four"
}

@test "an unknown revision is 404 naming the revision and the remote" {
	fetch 1234567890123456789012345678901234567890 refs/heads/main "$URL"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 404
	assert_equal "$(jq -r '.response.message' <<< "$output")" \
	    "revision 1234567890123456789012345678901234567890 not found in $URL"
	assert_equal "$(jq 'has("manifests")' <<< "$output")" false
}

@test "a revision that is not hexadecimal is refused with 422" {
	fetch "main; rm -rf /" "" "$URL"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 422
	assert_output --partial "is not a full commit id"
}

@test "a missing path is 404 'no PATH at R'" {
	fetch "$REV3" refs/heads/main "$URL" -- --path deploy/nothing.yaml
	assert_failure 1
	assert_equal "$(jq -r '.response | "\(.status) \(.message)"' <<< "$output")" \
	    "404 no deploy/nothing.yaml at $REV3"
}

@test "a path missing only at an older revision is 404" {
	fetch "$REV1" refs/heads/main "$URL" -- --path .ci/dir
	assert_failure 1
	assert_equal "$(jq -r '.response | "\(.status) \(.message)"' <<< "$output")" \
	    "404 no .ci/dir at $REV1"
}

@test "a directory gives every *.yaml and *.yml file in name order" {
	fetch "$REV3" refs/heads/main "$URL" -- --path .ci/dir/
	assert_success
	assert_equal "$(jq -r '.manifests[].metadata.name' <<< "$output" | tr '\n' ' ')" "a1 a2 b "
	assert_equal "$(jq -r '.source.path' <<< "$output")" .ci/dir/
}

@test "invalid YAML is 422 with the file, line and column" {
	fetch "$REV3" "" "$URL" -- --path .ci/bad.yaml
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 422
	assert_regex "$(jq -r '.response.message' <<< "$output")" \
	    "^invalid YAML in .ci/bad.yaml at $REV3: line [0-9]+, column [0-9]+: "
}

@test "a file with no objects is 422" {
	fetch "$REV3" "" "$URL" -- --path .ci/empty.yaml
	assert_failure 1
	assert_equal "$(jq -r '.response | "\(.status) \(.message)"' <<< "$output")" \
	    "422 no objects in .ci/empty.yaml at $REV3"
}

@test "a force-pushed branch: the old revision stays readable from the cache, the new one is fetched" {
	fetch "$FEAT" refs/heads/feature "$URL"
	assert_success
	NEW=$(force_push_feature forced)
	git_quiet -C "$BARE" gc -q --prune=now
	fetch "$FEAT" refs/heads/feature "$URL"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" feature
	fetch "$NEW" refs/heads/feature "$URL"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" forced
}

@test "a commit only on a deleted branch is 404 for a fresh cache" {
	NEW=$(force_push_feature lost)
	git_quiet -C "$BARE" branch -D feature >/dev/null
	git_quiet -C "$BARE" gc -q --prune=now
	fetch "$NEW" refs/heads/feature "$URL"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 404
}

@test "the cache holds one bare repository per remote, named by the URL" {
	fetch "$REV1" "" "$URL"
	assert_success
	fetch "$REV1" "" "$URL"
	assert_success
	assert_equal "$(ls "$CACHE" | grep -c '\.git$')" 1
	assert_regex "$(ls "$CACHE" | grep '\.git$')" '^[0-9a-f]{16}-octo-repo\.git$'
	dir=$(ls -d "$CACHE"/*.git)
	assert_equal "$(git --git-dir="$dir" rev-parse --is-bare-repository)" true
	assert_equal "$(git --git-dir="$dir" cat-file -t "$REV1")" commit
	assert [ ! -e "$dir/index" ]
}

@test "a corrupt cache entry is rebuilt" {
	fetch "$REV1" "" "$URL"
	assert_success
	dir=$(ls -d "$CACHE"/*.git)
	rm -rf "$dir/objects" "$dir/refs"
	echo garbage > "$dir/HEAD"
	fetch "$REV2" "" "$URL"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" two
	assert_equal "$(git --git-dir="$dir" cat-file -t "$REV2")" commit
}

@test "a warm entry marked incomplete (a fetch that died) is checked and kept, not rebuilt" {
	fetch "$REV1" "" "$URL"
	assert_success
	dir=$(ls -d "$CACHE"/*.git)
	touch "$dir/kwh-incomplete" "$dir/stale-file"
	fetch "$REV1" "" "$URL"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" one
	# the same entry (a rebuild would have removed the stray file), healthy
	assert [ -e "$dir/stale-file" ]
	assert [ ! -e "$dir/kwh-incomplete" ]
	[[ $stderr == *"did not finish: the entry is kept"* ]] || fail "log: $stderr"
}

@test "--remote expands {full_name}, {owner} and {name}" {
	fetch "$REV2" "" "file:///nowhere" octo/repo -- --remote "file://$SRV/{owner}/{name}.git"
	assert_success
	assert_equal "$(jq -r '.source.url' <<< "$output")" "file://$SRV/octo/repo.git"
	fetch "$REV2" "" "file:///nowhere" octo/repo -- --remote "file://$SRV/{full_name}.git"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output")" two
}

@test "--remote refuses a full_name that would escape the template (400)" {
	fetch "$REV2" "" "$URL" ../../etc -- --remote "file://$SRV/{full_name}.git"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 400
}

@test "a payload without repository is 400" {
	echo '{"kwh":1,"delivery":"x","payload":{}}' > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 400
}

@test "a payload without the URL chosen is 400 naming the field" {
	jq -nc --arg r "$REV1" '{kwh:1, annotations:{"k8s-webhook-handler.io/revision":$r},
	    payload:{repository:{full_name:"octo/repo"}}}' > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --use-git-url < "$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r '.response.message' <<< "$output")" "the payload has no repository.git_url"
}

@test "several envelopes in one stream are handled in order" {
	{ envelope "$REV1" "" "$URL"; envelope "$REV2" "" "$URL"; envelope "$REV3" "" "$URL"; } > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v' <<< "$output" | tr '\n' ' ')" "one two three "
}

@test "an envelope that already has a response passes through untouched" {
	envelope "$REV1" "" "$URL" | jq -c '.response = {status: 401, message: "no"}' > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" < "$TMP/in"
	assert_success
	assert_equal "$output" "$(cat "$TMP/in")"
	assert [ ! -e "$CACHE" ]
}

@test "a deadline already passed is 504" {
	fetch "$REV1" "" "$URL" octo/repo main 1000
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 504
}
