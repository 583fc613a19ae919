#!/usr/bin/env bats
# Fidelity of the test API server without kubectl: the requests kubectl sent
# when tests/record-kubectl recorded it (tests/fixtures/kubectl/apiserver)
# are sent again with curl, in order, to a fresh server, and its answers must
# be the ones kubectl got — and accepted, or reported as the recorded
# outcome — then (names the server generated, uids and times normalised;
# resourceVersions compared as they are).  With a kubectl >= 1.30 the
# golden files themselves are checked against it, so they cannot drift.

load test_helper

setup() {
	setup_tmp
}

teardown() {
	apiserver_stop
}

# replays NAME: a server started with the session's arguments, the replay
# compared with the recording.
replays() {
	local args
	mapfile -t args < <(jq -r '.server_args[]' "$GOLDEN/apiserver/$1.json")
	apiserver_start "${args[@]}"
	golden_replay_matches "$1"
}

@test "golden: every set was recorded by kubectl >= 1.30, from the current inputs" {
	local set v
	for set in yaml apply kubernetes apiserver; do
		v=$(cat "$GOLDEN/$set/VERSION")
		kubectl_version_ok "$v" || fail "$set recorded by kubectl '$v'"
		golden_current "$set" || fail "$set is stale"
	done
	# each session names the kubectl that recorded it, the set's
	run jq -r .kubectl "$GOLDEN"/apiserver/*.json
	assert_success
	[ "$(printf '%s\n' "$output" | sort -u)" = "$(cat "$GOLDEN/apiserver/VERSION")" ]
	# a 1.20 does not count, nor garbage
	run kubectl_version_ok v1.20.15
	assert_failure
	run kubectl_version_ok "version.Info{Major:1}"
	assert_failure
	kubectl_version_ok v1.32.4-dispatcher
	kubectl_version_ok 2.0.1
}

@test "golden: the sessions cover create, server-side apply, get, list, delete, dry-run and errors" {
	cat "$GOLDEN"/apiserver/*.json | jq -s -c '[.[].steps[].exchanges[] |
		[.request.method, (.request.content_type // ""), (.request.query // "" | test("dryRun=All")), .response.status]] | unique' >"$TMP/kinds"
	jq -e 'any(.[0] == "POST" and .[3] == 201)' "$TMP/kinds"
	jq -e 'any(.[0] == "POST" and .[2] and .[3] == 201)' "$TMP/kinds"
	jq -e 'any(.[0] == "PATCH" and .[1] == "application/apply-patch+yaml" and .[3] == 201)' "$TMP/kinds"
	jq -e 'any(.[0] == "PATCH" and .[1] == "application/apply-patch+yaml" and .[3] == 200)' "$TMP/kinds"
	jq -e 'any(.[0] == "PATCH" and .[1] == "application/merge-patch+json")' "$TMP/kinds"
	jq -e 'any(.[0] == "DELETE" and .[3] == 200)' "$TMP/kinds"
	jq -e 'any(.[3] == 409) and any(.[3] == 404) and any(.[3] == 401) and any(.[3] == 403)' "$TMP/kinds"
	# aggregated discovery (v2) and OpenAPI v3, as kubectl 1.32 asks for them
	cat "$GOLDEN"/apiserver/*.json | jq -s -e '[.[].steps[].exchanges[] | select(.request.method == "GET")] |
		any(.response.content_type == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList") and
		any(.request.path | startswith("/openapi/v3/"))'
	# and kubectl was satisfied with what it got (or reported the error)
	jq -e -s '[.[].steps[] | .exit] | any(. == 0) and any(. != 0)' "$GOLDEN"/apiserver/*.json
}

@test "golden replay: version and discovery (kubectl version, api-resources)" {
	replays version
}

@test "golden replay: create -f with generateName, in two namespaces" {
	replays create-generatename
}

@test "golden replay: create -f twice, AlreadyExists" {
	replays create-twice
}

@test "golden replay: apply --server-side creates, updates, changes nothing" {
	replays apply-server-side
}

@test "golden replay: get one, get -o json lists, get prints a table, label selector" {
	replays get
}

@test "golden replay: delete, delete again (NotFound), delete -f" {
	replays delete
}

@test "golden replay: create and apply --dry-run=server store nothing" {
	replays dry-run
}

@test "golden replay: cluster-scoped Namespace and ClusterRole beside a namespaced object" {
	replays cluster-scoped
}

@test "golden replay: annotate and label (merge patches)" {
	replays annotate-label
}

@test "golden replay: a wrong token is Unauthorized" {
	replays unauthorized
}

@test "golden replay: a forbidden namespace" {
	replays forbidden
}

@test "golden replay: kwh's manifests, create and apply --server-side --field-manager=kwh" {
	replays kwh-create
	apiserver_stop
	replays kwh-apply
}

@test "golden replay: share/kubernetes, create --dry-run=server of each file and -k" {
	replays kubernetes-dry-run
}

@test "golden replay: a changed answer is noticed" {
	# the replay is not vacuous: a recording whose answer differs fails
	jq '.steps[0].exchanges |= map(if .request.method == "POST" then .response.body.data.colour = "red" else . end)' \
		"$GOLDEN/apiserver/create-twice.json" >"$TMP/changed.json"
	apiserver_start
	GOLDEN=$TMP/golden
	mkdir -p "$GOLDEN/apiserver"
	cp "$TMP/changed.json" "$GOLDEN/apiserver/create-twice.json"
	run golden_replay_matches create-twice
	assert_failure
	assert_output --partial '"red"'
}

@test "live kubectl: the golden files are what this kubectl records now" {
	need_kubectl
	"$TESTS_DIR/record-kubectl" --out "$TMP/rec" 2>"$TMP/rec.log" || { cat "$TMP/rec.log"; false; }
	local v
	v=$(cat "$TMP/rec/yaml/VERSION")
	# the local conversions: byte for byte (VERSION may differ: another
	# kubectl >= 1.30 must record the same)
	diff -r -x VERSION "$GOLDEN/yaml" "$TMP/rec/yaml" ||
		fail "kubectl $v converts YAML differently from the golden files ($(cat "$GOLDEN/yaml/VERSION")): re-record with tests/record-kubectl"
	diff -r -x VERSION "$GOLDEN/apply" "$TMP/rec/apply" || fail "apply set differs from kubectl $v"
	diff -r -x VERSION "$GOLDEN/kubernetes" "$TMP/rec/kubernetes" || fail "kubernetes set differs from kubectl $v"
	# the sessions, normalised; same files
	diff <(cd "$GOLDEN/apiserver" && ls) <(cd "$TMP/rec/apiserver" && ls)
	local s bad=
	for s in "$GOLDEN"/apiserver/*.json; do
		golden_normalise --sort "$s" >"$TMP/a"
		golden_normalise --sort "$TMP/rec/apiserver/${s##*/}" >"$TMP/b"
		if ! cmp -s "$TMP/a" "$TMP/b"; then
			bad="$bad ${s##*/}"
			diff <(jq -S . "$TMP/a") <(jq -S . "$TMP/b") | head -n 40 >&2
		fi
	done
	[ -z "$bad" ] || fail "kubectl $v talks to the server differently:$bad (re-record with tests/record-kubectl)"
}
