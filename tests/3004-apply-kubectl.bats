#!/usr/bin/env bats
# kwh-apply sends what kubectl sends for the same manifests: method, path,
# content type and body, from the test API server's request log.

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

# annotated FILE: FILE with the envelope's annotations, as kubectl sets them
annotated() {
	kubectl annotate --local --overwrite -f "$1" -o json \
		k8s-webhook-handler.io/ref=refs/heads/main k8s-webhook-handler.io/revision=0123456789abcdef
}

@test "generateName: the same POST as kubectl create -f" {
	apply_envelope "$A/workflow.json" | kwh_apply --log none >/dev/null
	writes >"$TMP/kwh"
	apiserver_clear_requests
	annotated "$A/workflow.json" >"$TMP/wf.json"
	apiserver_kubectl create -f "$TMP/wf.json"
	writes >"$TMP/kubectl"
	jq -e 'length == 1' "$TMP/kwh"
	jq -e --slurpfile k "$TMP/kubectl" '. == $k[0]' "$TMP/kwh" || { diff <(jq -S . "$TMP/kwh") <(jq -S . "$TMP/kubectl"); false; }
}

@test "named objects: the same PATCH as kubectl apply --server-side --field-manager=kwh" {
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

@test "what kwh-apply created, kubectl reads back" {
	apply_envelope "$A/workflow.json" "$A/configmap.json" | kwh_apply --log none >"$TMP/out"
	name=$(jq -r '.results[0].name' "$TMP/out")
	run apiserver_kubectl get workflow "$name" -o json
	assert_success
	echo "$output" | jq -e --arg u "$(jq -r '.results[0].uid' "$TMP/out")" '.metadata.uid == $u'
	run apiserver_kubectl get configmap settings -o jsonpath='{.metadata.annotations.team}'
	assert_output platform
}
