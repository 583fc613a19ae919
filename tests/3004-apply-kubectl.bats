#!/usr/bin/env bats
# kwh-apply sends what kubectl sends for the same manifests: method, path,
# content type and body, from the test API server's request log.  kubectl's
# side is what it sent when tests/record-kubectl recorded it
# (tests/fixtures/kubectl/apiserver/kwh-*.json); the "live kubectl" tests
# compare with the installed kubectl >= 1.30 when there is one.

load test_helper
load "$FIXTURES/apply/apply"

setup() {
	setup_tmp
	export HOME=$TMP
	A=$FIXTURES/apply
	apiserver_start
}

teardown() {
	apiserver_stop
}

# writes: the create/patch requests of the log as {method, path, content_type, body}
writes() {
	apiserver_requests | jq -c '[.[] | select(.method == "POST" or .method == "PATCH") |
		{method, path, content_type, body: (.body | fromjson)}]'
}

# recorded_writes SESSION: the create/patch requests kubectl sent in the
# recorded session, as writes prints them
recorded_writes() {
	jq -c '[.steps[].exchanges[] | .request | select(.method == "POST" or .method == "PATCH") |
		{method, path, content_type, body: (if .body != null then .body else .body_text | fromjson end)}]' \
		"$GOLDEN/apiserver/$1.json"
}

# recorded_get ARGS-JSON NAME: sends the GET kubectl sent for the first
# `kubectl ARGS...` of the recorded session "get" (its path's last segment,
# the object's name, replaced by NAME),
# with kubectl's headers and the test token; prints the answer.
recorded_get() {
	local req path accept ua
	req=$(jq -c --argjson a "$1" '[.steps[] | select(.args[0:($a | length)] == $a) | .exchanges[] | .request |
		select(.method == "GET" and (.path | test("/namespaces/ci/")))] | .[0] // error("no such request")' \
		"$GOLDEN/apiserver/get.json") || return 1
	path=$(jq -r .path <<<"$req")
	accept=$(jq -r .accept <<<"$req")
	ua=$(jq -r .user_agent <<<"$req")
	curl -sS --fail --cacert "$APISERVER_CA" -H "Authorization: Bearer $APISERVER_TOKEN" \
		-H "Accept: $accept" -A "$ua" "$APISERVER_URL${path%/*}/$2"
}

# annotated FILE: FILE with the envelope's annotations, as kubectl sets them
annotated() {
	kubectl annotate --local --overwrite -f "$1" -o json \
		k8s-webhook-handler.io/ref=refs/heads/main k8s-webhook-handler.io/revision=0123456789abcdef
}

@test "generateName: the same POST as kubectl create -f (recorded)" {
	golden_current apiserver
	# --no-dedupe: kubectl create sends no name, the server makes one
	apply_envelope "$A/workflow.json" | kwh_apply --no-dedupe --log none >/dev/null
	writes >"$TMP/kwh"
	recorded_writes kwh-create >"$TMP/kubectl"
	jq -e 'length == 1' "$TMP/kwh"
	jq -e --slurpfile k "$TMP/kubectl" '. == $k[0]' "$TMP/kwh" || { diff <(jq -S . "$TMP/kwh") <(jq -S . "$TMP/kubectl"); false; }
}

@test "named objects: the same PATCH as kubectl apply --server-side --field-manager=kwh (recorded)" {
	golden_current apiserver
	apply_envelope "$A/configmap.json" "$A/namespace.json" |
		kwh_apply --allow-kind /ConfigMap --allow-kind /Namespace --log none >/dev/null
	writes >"$TMP/kwh"
	recorded_writes kwh-apply >"$TMP/kubectl"
	jq -e 'length == 2' "$TMP/kwh"
	jq -e --slurpfile k "$TMP/kubectl" '. == $k[0]' "$TMP/kwh" || { diff <(jq -S . "$TMP/kwh") <(jq -S . "$TMP/kubectl"); false; }
}

@test "what kwh-apply created, kubectl's recorded get requests read back" {
	apply_envelope "$A/workflow.json" "$A/configmap.json" |
		kwh_apply --allow-kind argoproj.io/Workflow --allow-kind /ConfigMap --log none >"$TMP/out"
	name=$(jq -r '.results[0].name' "$TMP/out")
	[ -n "$name" ]
	run recorded_get '["get","workflow"]' "$name"
	assert_success
	echo "$output" | jq -e --arg u "$(jq -r '.results[0].uid' "$TMP/out")" --arg n "$name" \
		'.metadata.uid == $u and .metadata.name == $n and .kind == "Workflow"'
	run recorded_get '["get","configmap","settings"]' settings
	assert_success
	echo "$output" | jq -e '.metadata.annotations.team == "platform"'
}

@test "live kubectl: generateName: the same POST as kubectl create -f" {
	need_kubectl
	# --no-dedupe: kubectl create sends no name, the server makes one
	apply_envelope "$A/workflow.json" | kwh_apply --no-dedupe --log none >/dev/null
	writes >"$TMP/kwh"
	apiserver_clear_requests
	annotated "$A/workflow.json" >"$TMP/wf.json"
	apiserver_kubectl create -f "$TMP/wf.json"
	writes >"$TMP/kubectl"
	jq -e 'length == 1' "$TMP/kwh"
	jq -e --slurpfile k "$TMP/kubectl" '. == $k[0]' "$TMP/kwh" || { diff <(jq -S . "$TMP/kwh") <(jq -S . "$TMP/kubectl"); false; }
}

@test "live kubectl: named objects: the same PATCH as kubectl apply --server-side --field-manager=kwh" {
	need_kubectl
	apply_envelope "$A/configmap.json" "$A/namespace.json" |
		kwh_apply --allow-kind /ConfigMap --allow-kind /Namespace --log none >/dev/null
	writes >"$TMP/kwh"
	apiserver_control DELETE /_test/objects >/dev/null
	apiserver_clear_requests
	annotated "$A/configmap.json" >"$TMP/cm.json"
	annotated "$A/namespace.json" >"$TMP/ns.json"
	apiserver_kubectl apply --server-side --field-manager=kwh -f "$TMP/cm.json"
	apiserver_kubectl apply --server-side --field-manager=kwh -f "$TMP/ns.json"
	writes >"$TMP/kubectl"
	jq -e 'length == 2' "$TMP/kwh"
	jq -e --slurpfile k "$TMP/kubectl" '. == $k[0]' "$TMP/kwh" || { diff <(jq -S . "$TMP/kwh") <(jq -S . "$TMP/kubectl"); false; }
}

@test "live kubectl: what kwh-apply created, kubectl reads back" {
	need_kubectl
	apply_envelope "$A/workflow.json" "$A/configmap.json" |
		kwh_apply --allow-kind argoproj.io/Workflow --allow-kind /ConfigMap --log none >"$TMP/out"
	name=$(jq -r '.results[0].name' "$TMP/out")
	run apiserver_kubectl get workflow "$name" -o json
	assert_success
	echo "$output" | jq -e --arg u "$(jq -r '.results[0].uid' "$TMP/out")" '.metadata.uid == $u'
	run apiserver_kubectl get configmap settings -o jsonpath='{.metadata.annotations.team}'
	assert_output platform
}
