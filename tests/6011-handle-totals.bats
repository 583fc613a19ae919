#!/usr/bin/env bats
# Bounds on a delivery's manifests over all its files: objects
# (--max-objects, 100 by default), bytes (--max-manifest-bytes) and YAML
# nodes (--max-yaml-nodes), refused by kwh-fetch with 422 before kwh-apply
# sends anything, through the chain and through kwh-handle; and the
# deadline, looked at while the YAML is read (504).

load test_helper

setup() {
	setup_tmp
	handler_setup totals-secret
}

teardown() {
	stop_git_servers
	apiserver_stop
}

# wf N: an Argo Workflow document named wf-N.
wf() {
	printf -- '---\napiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: wf-%s\nspec:\n  entrypoint: main\n' "$1"
}

# commit_ci: commits $TMP/repo's work tree; REV and $TMP/push.json follow it.
commit_ci() {
	git -C "$TMP/repo" add -A .ci
	git -C "$TMP/repo" -c user.name=t -c user.email=t@example.com commit -q -m more
	REV=$(git -C "$TMP/repo" rev-parse HEAD)
	push_payload refs/heads/main "file://$TMP/repo" >"$TMP/push.json"
	kwh-sign --event push --delivery d-totals --secret-file "$TMP/secret" "$TMP/push.json" >"$TMP/req"
}

# refused_by_fetch WHAT [OPTIONS]: the request through the chain (OPTIONS
# given to kwh-fetch) and through kwh-handle (OPTIONS too) is answered 422
# by kwh-fetch with a message matching WHAT, and the API server saw no
# request that writes and holds no new object.
refused_by_fetch() {
	local what=$1 before rc
	shift
	before=$(apiserver_objects | jq length)
	apiserver_clear_requests
	{ kwh-verify "${VOPTS[@]}" <"$TMP/req" | kwh-annotate |
		kwh-fetch "${FOPTS[@]}" "$@" | kwh-apply "${POPTS[@]}" |
		kwh-respond >"$TMP/chain.resp"; } 2>"$TMP/chain.err" || true
	assert_equal "$(http_status "$TMP/chain.resp")" 422
	http_body "$TMP/chain.resp" | jq -e --arg w "$what" '.status == 422 and (.message | test($w))'
	grep -q 'prog=kwh-fetch .*status=422' "$TMP/chain.err"
	kwh-handle "${VOPTS[@]}" "${FOPTS[@]}" "${POPTS[@]}" "$@" <"$TMP/req" \
		>"$TMP/handle.resp" 2>"$TMP/handle.err" && rc=0 || rc=$?
	assert_equal "$rc" 1
	assert_equal "$(http_status "$TMP/handle.resp")" 422
	http_body "$TMP/handle.resp" | jq -e --arg w "$what" '.status == 422 and (.message | test($w))'
	grep -q 'prog=kwh-fetch .*status=422' "$TMP/handle.err"
	run -0 apiserver_requests
	assert_equal "$(jq '[.[] | select(.method != "GET")] | length' <<<"$output")" 0
	assert_equal "$(apiserver_objects | jq length)" "$before"
}

@test "101 Workflows in one file: 422 from kwh-fetch, nothing created" {
	for i in $(seq 1 101); do wf "$i"; done >"$TMP/repo/.ci/workflow.yaml"
	commit_ci
	refused_by_fetch 'more than 100 objects in all the files.*--max-objects'
}

@test "100 Workflows in one file pass; --max-objects 99 refuses them" {
	for i in $(seq 1 100); do wf "$i"; done >"$TMP/repo/.ci/workflow.yaml"
	commit_ci
	refused_by_fetch 'more than 99 objects' --max-objects 99
	before=$(apiserver_objects | jq length)
	run -0 --separate-stderr kwh-handle "${VOPTS[@]}" "${FOPTS[@]}" "${POPTS[@]}" <"$TMP/req"
	assert_equal "$(http_status <(printf '%s\n' "$output"))" 201
	assert_equal "$(apiserver_objects | jq length)" $((before + 100))
}

@test "3 files of 40 objects each: 422, the total counts, not each file" {
	rm "$TMP/repo/.ci/workflow.yaml"
	for f in a b c; do
		for i in $(seq 1 40); do wf "$f$i"; done >"$TMP/repo/.ci/$f.yaml"
	done
	commit_ci
	refused_by_fetch 'refused .ci/c.yaml .*more than 100 objects in all the files' --path .ci
}

@test "YAML nodes over the total across files: 422, though each file is under its own limit" {
	rm "$TMP/repo/.ci/workflow.yaml"
	# 3 ConfigMaps of 80,000 keys: 160,000 nodes and 1.2 MB each (a file may
	# have 1,000,000 and 4 MiB), 480,000 in all (the default is 250,000)
	for f in a b c; do
		{ printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n' "$f"
		  seq -f '  k%06g: "1"' 1 80000; } >"$TMP/repo/.ci/$f.yaml"
	done
	commit_ci
	[ "$(cat "$TMP/repo/.ci/"*.yaml | wc -c)" -lt 4000000 ]
	refused_by_fetch 'refused .ci/b.yaml .*more than 250000 nodes in all the files.*--max-yaml-nodes' --path .ci
	# the bound is an option; bytes have their own
	refused_by_fetch 'refused .ci/a.yaml .*more than 1000 nodes' --path .ci --max-yaml-nodes 1000
	refused_by_fetch 'refused .ci/b.yaml at [0-9a-f]*: the manifests are more than 1500000 bytes in all.*--max-manifest-bytes' \
		--path .ci --max-manifest-bytes 1500000
}

@test "the deadline passes while a large YAML is read: 504 at once, not after reading it all" {
	rm "$TMP/repo/.ci/workflow.yaml"
	# 30 files of one ConfigMap of 250,000 keys (500,000 nodes, 3.8 MB): a
	# second or so each to read
	{ printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n'
	  seq -f '  k%06g: "1"' 1 250000; } >"$TMP/big.yaml"
	for i in $(seq -w 1 30); do cp "$TMP/big.yaml" "$TMP/repo/.ci/f$i.yaml"; done
	commit_ci
	ann() {
		kwh-verify "${VOPTS[@]}" <"$TMP/req" | kwh-annotate |
			jq -c --argjson d "$1" '.deadline = $d'
	}
	# the revision in the cache first, refused by the totals
	ann $(( $(now_ms) + 60000 )) >"$TMP/env"
	run -1 --separate-stderr kwh-fetch "${FOPTS[@]}" --path .ci <"$TMP/env"
	jq -e '.response.status == 422' <<<"$output"
	# then read with the totals lifted and 1.5 s left
	ann $(( $(now_ms) + 1500 )) >"$TMP/env"
	start=$(now_ms)
	run -1 --separate-stderr kwh-fetch "${FOPTS[@]}" --path .ci --max-manifest-bytes 0 --max-yaml-nodes 0 <"$TMP/env"
	took=$(( $(now_ms) - start ))
	echo "took $took ms"
	jq -e '.response.status == 504 and .response.stage == "kwh-fetch" and
		(.response.message | test("deadline passed while reading .ci/f0[0-9].yaml"))' <<<"$output"
	[ "$took" -lt 5000 ]
}
