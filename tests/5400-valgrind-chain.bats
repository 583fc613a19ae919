#!/usr/bin/env bats
# Each tool handles a normal delivery under valgrind with no error and no
# leak: kwh-sign | kwh-verify | kwh-annotate | kwh-fetch | kwh-apply |
# kwh-respond, creating a Workflow in the test API server from a local git
# repository, each stage run under valgrind in turn.

load test_helper

setup() {
	[ -z "${KWH_SANITIZED:-}" ] || skip "valgrind does not run sanitizer builds; make check runs this"
	setup_tmp
	export HOME=$TMP
	apiserver_start
	ci_repo "$TMP/repo"
	printf 'vg-secret\n' > "$TMP/secret"
	ci_push "file://$TMP/repo" > "$TMP/push.json"
	# Each stage's input, made once by the plain tools.
	kwh-sign --event push --delivery vg-1 --secret-file "$TMP/secret" "$TMP/push.json" > "$TMP/0"
	kwh-verify --secret-file "$TMP/secret" --log none < "$TMP/0" > "$TMP/1"
	kwh-annotate --log none < "$TMP/1" > "$TMP/2"
	kwh-fetch --cache "$TMP/git-cache" --allow-remote-host file:// --log none < "$TMP/2" > "$TMP/3"
	kwh-apply --kubeconfig "$APISERVER_DIR/kubeconfig" --cache "$TMP/kc" --log none < "$TMP/3" > "$TMP/4"
	jq -e '.results[0].action == "created"' "$TMP/4"
}

teardown() {
	apiserver_stop 2>/dev/null || true
}

vg() { # INPUT TOOL ARGS...
	local in=$1; shift
	valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
		--error-exitcode=42 --log-file="$TMP/vg.%p" "$@" < "$in" > "$TMP/out"
}

vg_clean() {
	local rc=$1
	if [ "$rc" -eq 42 ] || grep -qs 'ERROR SUMMARY: [1-9]' "$TMP"/vg.* || [ -s "$(ls "$TMP"/vg.* 2>/dev/null | head -1)" ]; then
		cat "$TMP"/vg.*; return 1
	fi
}

@test "kwh-sign under valgrind" {
	rc=0; vg "$TMP/push.json" kwh-sign --event push --delivery vg-1 --secret-file "$TMP/secret" || rc=$?
	vg_clean "$rc"
	grep -q '^X-Hub-Signature-256: sha256=' "$TMP/out"
}

@test "kwh-verify under valgrind" {
	rc=0; vg "$TMP/0" kwh-verify --secret-file "$TMP/secret" --log none || rc=$?
	vg_clean "$rc"
	[ "$rc" -eq 0 ]
	jq -e '.verified == "sha256"' "$TMP/out"
}

@test "kwh-annotate under valgrind" {
	rc=0; vg "$TMP/1" kwh-annotate --log none --set 'example.com/x=.delivery' || rc=$?
	vg_clean "$rc"
	[ "$rc" -eq 0 ]
	jq -e '.annotations["example.com/x"] == "vg-1"' "$TMP/out"
}

@test "kwh-fetch under valgrind, from an empty cache and from the cache" {
	# valgrind is slow: a minute of budget rather than the chain's 9 s.
	jq -c '.deadline = (now * 1000 + 60000 | floor)' "$TMP/2" > "$TMP/2b"
	# The fetch runs in a forked child, which valgrind follows too.
	rc=0; vg "$TMP/2b" kwh-fetch --cache "$TMP/vg-cache" --allow-remote-host file:// --log none || rc=$?
	vg_clean "$rc"
	[ "$rc" -eq 0 ] || { cat "$TMP/out"; return 1; }
	jq -e '.manifests[0].kind == "Workflow"' "$TMP/out"
	rm -f "$TMP"/vg.*
	rc=0; vg "$TMP/2b" kwh-fetch --cache "$TMP/vg-cache" --allow-remote-host file:// --log none || rc=$?
	vg_clean "$rc"
	[ "$rc" -eq 0 ]
}

@test "kwh-apply under valgrind" {
	jq -c '.deadline = (now * 1000 + 60000 | floor)' "$TMP/3" > "$TMP/3b"
	rc=0; vg "$TMP/3b" kwh-apply --kubeconfig "$APISERVER_DIR/kubeconfig" --cache "$TMP/kc" --log none || rc=$?
	vg_clean "$rc"
	[ "$rc" -eq 0 ]
	# setup created it from the same envelope: deduplication finds it
	# (POST 409, then GET), the path a redelivery takes
	jq -e '.results[0].action == "exists"' "$TMP/out"
	rc=0; vg "$TMP/3b" kwh-apply --kubeconfig "$APISERVER_DIR/kubeconfig" --cache "$TMP/kc" --log none --no-dedupe || rc=$?
	vg_clean "$rc"
	[ "$rc" -eq 0 ]
	jq -e '.results[0].action == "created"' "$TMP/out"
}

@test "kwh-respond under valgrind" {
	rc=0; vg "$TMP/4" kwh-respond --log none || rc=$?
	vg_clean "$rc"
	[ "$rc" -eq 0 ]
	head -n 1 "$TMP/out" | grep -q '^HTTP/1.1 201 Created'
}
