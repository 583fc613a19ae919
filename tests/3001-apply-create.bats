#!/usr/bin/env bats
# kwh-apply against the test API server: create, server-side apply,
# namespaces, discovery and its cache, dedupe, dry-run=server, partial
# failure.

load test_helper
load "$FIXTURES/apply/apply"

setup() {
	setup_tmp
	export HOME=$TMP
	A=$FIXTURES/apply
	apiserver_start --crd example.com/v1/Gadget/gadgets/Namespaced
}

teardown() {
	apiserver_stop
}

@test "generateName under --no-dedupe: created with POST, the server's name and uid in results" {
	apply_envelope "$A/workflow.json" >"$TMP/in"
	run --separate-stderr kwh_apply --no-dedupe --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -e '.results | length == 1'
	echo "$output" | jq -e '.results[0] | .action == "created" and .namespace == "ci" and (.name | test("^hello-[a-z0-9]{5}$")) and (.uid | length > 0)'
	name=$(echo "$output" | jq -r '.results[0].name')
	uid=$(echo "$output" | jq -r '.results[0].uid')
	apiserver_objects | jq -e --arg n "$name" --arg u "$uid" 'map(select(.kind == "Workflow")) |
		length == 1 and .[0].metadata.name == $n and .[0].metadata.uid == $u and
		.[0].metadata.annotations."k8s-webhook-handler.io/ref" == "refs/heads/main"'
	apiserver_requests | jq -e 'map(select(.method == "POST")) | length == 1 and .[0].path ==
		"/apis/argoproj.io/v1alpha1/namespaces/ci/workflows" and .[0].content_type == "application/json"'
	# the envelope's manifests are exactly what was sent
	apiserver_requests | jq -c '.[] | select(.method == "POST") | .body | fromjson' >"$TMP/sent"
	echo "$output" | jq -c '.manifests[0]' | jq -e --slurpfile s "$TMP/sent" '. == $s[0]'
	# a second delivery creates a second run
	run --separate-stderr kwh_apply --no-dedupe --log none <"$TMP/in"
	assert_success
	apiserver_objects | jq -e 'map(select(.kind == "Workflow")) | length == 2'
}

@test "server-side apply: created, then configured, then unchanged" {
	apply_envelope "$A/configmap.json" >"$TMP/in"
	run --separate-stderr kwh_apply --allow-kind /ConfigMap --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -e '.results[0] | .action == "created" and .name == "settings" and .namespace == "ci"'
	uid=$(echo "$output" | jq -r '.results[0].uid')
	apiserver_requests | jq -e 'map(select(.method == "PATCH")) | length == 1 and
		.[0].content_type == "application/apply-patch+yaml" and (.[0].query | test("fieldManager=kwh")) and
		.[0].path == "/api/v1/namespaces/ci/configmaps/settings"'
	jq -c '.data.greeting = "changed"' "$A/configmap.json" >"$TMP/changed.json"
	apply_envelope "$TMP/changed.json" >"$TMP/in2"
	run --separate-stderr kwh_apply --allow-kind /ConfigMap --log none <"$TMP/in2"
	assert_success
	echo "$output" | jq -e --arg u "$uid" '.results[0] | .action == "configured" and .uid == $u'
	apiserver_objects | jq -e 'map(select(.kind == "ConfigMap"))[0].data.greeting == "changed"'
	run --separate-stderr kwh_apply --allow-kind /ConfigMap --log none <"$TMP/in2"
	assert_success
	echo "$output" | jq -e '.results[0].action == "unchanged"'
}

@test "namespaces: own kept, --namespace, kubeconfig default; cluster-scoped at the cluster path" {
	jq -c '.metadata.namespace = "own"' "$A/configmap.json" >"$TMP/own.json"
	apply_envelope "$TMP/own.json" "$A/workflow.json" "$A/namespace.json" >"$TMP/in"
	run --separate-stderr kwh_apply --allow-kind /Namespace --allow-kind /ConfigMap \
		--allow-kind argoproj.io/Workflow --allow-namespace 'own|team' --namespace team --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -e '[.results[].namespace] == ["own", "team", ""]'
	echo "$output" | jq -e '.manifests[2].metadata | has("namespace") | not'
	run requests_summary
	assert_line 'PATCH /api/v1/namespaces/own/configmaps/settings'
	assert_line 'POST /apis/argoproj.io/v1alpha1/namespaces/team/workflows'
	assert_line 'PATCH /api/v1/namespaces/team-a'
	apiserver_objects | jq -e 'map(select(.kind == "Namespace" and .metadata.name == "team-a")) | length == 1'
}

@test "discovery: cached on disk, reused by the next run, refreshed for a new CRD" {
	K=(--allow-kind argoproj.io/Workflow --allow-kind 'example.com/*')
	apply_envelope "$A/workflow.json" >"$TMP/in"
	kwh_apply --no-dedupe --log none <"$TMP/in" >/dev/null
	apiserver_requests | jq -e 'map(select(.path == "/apis/argoproj.io/v1alpha1")) | length == 1'
	apiserver_clear_requests
	kwh_apply --no-dedupe --log none <"$TMP/in" >/dev/null
	run requests_summary
	assert_output 'POST /apis/argoproj.io/v1alpha1/namespaces/ci/workflows'
	# a kind the server does not know yet: 422, nothing created
	apply_envelope "$A/widget.json" >"$TMP/w"
	run --separate-stderr kwh_apply "${K[@]}" --log none <"$TMP/w"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 422'
	echo "$output" | jq -r .response.message | grep -F '"Widget"'
	# installed later: found without any configuration
	apiserver_control POST /_test/resources '{"group":"example.com","version":"v1","kind":"Widget","plural":"widgets"}' >/dev/null
	apiserver_clear_requests
	run --separate-stderr kwh_apply "${K[@]}" --log none <"$TMP/w"
	assert_success
	echo "$output" | jq -e '.results[0].action == "created"'
	run requests_summary
	assert_line --index 0 'GET /apis/example.com/v1'
	# a kind new to a cached group version refreshes that entry
	jq -c '.kind = "Gadget"' "$A/widget.json" >"$TMP/g.json"
	apply_envelope "$TMP/g.json" | kwh_apply "${K[@]}" --log none >/dev/null
	apiserver_control POST /_test/resources '{"group":"example.com","version":"v1","kind":"Sprocket"}' >/dev/null
	jq -c '.kind = "Sprocket"' "$A/widget.json" >"$TMP/s.json"
	apiserver_clear_requests
	run --separate-stderr kwh_apply "${K[@]}" --log none < <(apply_envelope "$TMP/s.json")
	assert_success
	run requests_summary
	assert_line --index 0 'GET /apis/example.com/v1'
	assert_line --index 1 'GET /apis/example.com/v1/namespaces/ci/sprockets/w1'
}

@test "dedupe (the default, --dedupe accepted): a redelivery finds its object (action exists), a new delivery creates" {
	DELIVERY=72d3162e apply_envelope "$A/workflow.json" >"$TMP/in"
	run --separate-stderr kwh_apply --dedupe --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -e '.results[0].action == "created"'
	first=$(echo "$output" | jq -c '.results[0]')
	run --separate-stderr kwh_apply --dedupe --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -e --argjson f "$first" '.results[0] == ($f | .action = "exists")'
	apiserver_objects | jq -e 'map(select(.kind == "Workflow")) | length == 1'
	DELIVERY=other apply_envelope "$A/workflow.json" | kwh_apply --dedupe --log none | jq -e '.results[0].action == "created"'
	apiserver_objects | jq -e 'map(select(.kind == "Workflow")) | length == 2'
}

@test "under --no-dedupe, a 409 on create is a refusal (422)" {
	apply_envelope "$A/workflow.json" >"$TMP/in"
	kwh_apply --no-dedupe --log none <"$TMP/in" >/dev/null
	apiserver_fault '{"count":1,"status":409,"method":"POST","message":"workflows.argoproj.io \"x\" already exists"}'
	run --separate-stderr kwh_apply --no-dedupe --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 422'
	echo "$output" | jq -r .response.message | grep -F 'already exists'
}

@test "--dry-run=server: sent with dryRun=All, nothing stored" {
	apply_envelope "$A/workflow.json" "$A/configmap.json" >"$TMP/in"
	run --separate-stderr kwh_apply --dry-run=server --allow-kind argoproj.io/Workflow --allow-kind /ConfigMap --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -e '[.results[].action] == ["dry-run", "dry-run"]'
	echo "$output" | jq -e '.results[0].name | test("^hello-")'
	apiserver_requests | jq -e 'map(select(.method == "POST" or .method == "PATCH")) | length == 2 and
		all(.query | test("dryRun=All"))'
	apiserver_objects | jq -e 'length == 0'
}

@test "the API refusing an object half-way: created N of M, results list what was created" {
	jq -c '.metadata.name = "Not_Valid"' "$A/configmap.json" >"$TMP/bad.json"
	apply_envelope "$A/workflow.json" "$TMP/bad.json" "$A/configmap.json" >"$TMP/in"
	run --separate-stderr kwh_apply --allow-kind argoproj.io/Workflow --allow-kind /ConfigMap --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 422'
	echo "$output" | jq -r .response.message | grep -F 'created 1 of 3'
	echo "$output" | jq -r .response.message | grep -F 'Not_Valid'
	echo "$output" | jq -e '.results | length == 1 and .[0].kind == "Workflow" and .[0].action == "created"'
	apiserver_objects | jq -e 'length == 1'
}

@test "policy refusal creates nothing and sends no object" {
	apply_envelope "$A/workflow.json" "$A/configmap.json" "$A/namespace.json" >"$TMP/in"
	run --separate-stderr kwh_apply --allow-kind argoproj.io/Workflow --allow-kind /ConfigMap --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 422'
	apiserver_requests | jq -e 'map(select(.method != "GET")) | length == 0'
	apiserver_objects | jq -e 'length == 0'
	run --separate-stderr kwh_apply --allow-namespace prod --log none <"$TMP/in"
	assert_failure 1
	apiserver_objects | jq -e 'length == 0'
}

@test "a stream of envelopes: each created, in order" {
	{ DELIVERY=a apply_envelope "$A/workflow.json"; DELIVERY=b apply_envelope "$A/workflow.json"
	  DELIVERY=c apply_envelope "$A/configmap.json"; } >"$TMP/in"
	run --separate-stderr kwh_apply --allow-kind argoproj.io/Workflow --allow-kind /ConfigMap --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -s -e 'map(.results[0].action) == ["created", "created", "created"]'
	apiserver_objects | jq -e 'length == 3'
}

@test "--dry-run=client with a cluster configured sends nothing at all" {
	apply_envelope "$A/workflow.json" "$A/configmap.json" >"$TMP/in"
	run --separate-stderr kwh_apply --dry-run=client --allow-kind argoproj.io/Workflow --allow-kind /ConfigMap --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -e '[.results[].action] == ["dry-run", "dry-run"] and [.results[].namespace] == ["ci", "ci"]'
	apiserver_requests | jq -e 'length == 0'
}
