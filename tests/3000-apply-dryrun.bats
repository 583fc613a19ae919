#!/usr/bin/env bats
# kwh-apply without a cluster: --dry-run=client, the objects, policy,
# envelopes passed through, usage.

load test_helper
load "$FIXTURES/apply/apply"

setup() {
	setup_tmp
	# no kubeconfig anywhere and not in a cluster: no network possible
	export HOME=$TMP KUBECONFIG= KUBERNETES_SERVICE_HOST=
	A=$FIXTURES/apply
}

@test "dry-run=client with no cluster: objects as they would be sent, action dry-run" {
	apply_envelope "$A/workflow.json" "$A/configmap.json" >"$TMP/in"
	run --separate-stderr kwh-apply --dry-run=client --allow-kind argoproj.io/Workflow --allow-kind /ConfigMap --no-dedupe --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -e '.results == [
		{apiVersion: "argoproj.io/v1alpha1", kind: "Workflow", namespace: "default", name: "", uid: "", action: "dry-run"},
		{apiVersion: "v1", kind: "ConfigMap", namespace: "default", name: "settings", uid: "", action: "dry-run"}]'
	echo "$output" | jq -e '.manifests[0].metadata == {generateName: "hello-", labels: {app: "ci"},
		namespace: "default", annotations: {"k8s-webhook-handler.io/ref": "refs/heads/main",
		"k8s-webhook-handler.io/revision": "0123456789abcdef"}}'
	echo "$output" | jq -e '.manifests[0].spec == input.spec' - "$A/workflow.json"
	echo "$output" | jq -e 'has("response") | not'
}

@test "annotations are merged: the object's own stay, ours win on a clash (as kubectl annotate --overwrite)" {
	apply_envelope "$A/configmap.json" >"$TMP/in"
	run --separate-stderr kwh-apply --dry-run --allow-kind /ConfigMap --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -c '.manifests[0].metadata.annotations' >"$TMP/ours"
	# kubectl's result, recorded by tests/record-kubectl (tests/fixtures/kubectl/apply)
	golden_current apply
	jq -c '.metadata.annotations' "$GOLDEN/apply/configmap.json" >"$TMP/kubectl"
	jq -e --slurpfile k "$TMP/kubectl" '. == $k[0]' "$TMP/ours"
	jq -e '.team == "platform" and ."k8s-webhook-handler.io/ref" == "refs/heads/main"' "$TMP/ours"
}

@test "live kubectl: kubectl annotate --overwrite still gives the recorded annotations" {
	need_kubectl
	kubectl annotate --local -f "$A/configmap.json" --overwrite -o json \
		k8s-webhook-handler.io/ref=refs/heads/main k8s-webhook-handler.io/revision=0123456789abcdef >"$TMP/live"
	jq -e --slurpfile g "$GOLDEN/apply/configmap.json" '. == $g[0]' "$TMP/live"
}

@test "every annotation key is applied, not only the eight" {
	apply_envelope "$A/workflow.json" | jq -c '.annotations.custom = "yes"' >"$TMP/in"
	run --separate-stderr kwh-apply --dry-run=client --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -e '.manifests[0].metadata.annotations.custom == "yes"'
}

@test "namespace: the object's own kept, else --namespace; cluster-scoped kinds get none" {
	jq -c '.metadata.namespace = "own"' "$A/configmap.json" >"$TMP/own.json"
	apply_envelope "$TMP/own.json" "$A/workflow.json" "$A/namespace.json" >"$TMP/in"
	run --separate-stderr kwh-apply --dry-run=client --namespace team --allow-kind /Namespace --allow-kind /ConfigMap --allow-kind argoproj.io/Workflow --allow-namespace 'own|team' --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -e '[.manifests[].metadata.namespace] == ["own", "team", null]'
	echo "$output" | jq -e '[.results[].namespace] == ["own", "team", ""]'
}

@test "namespace default comes from the kubeconfig context" {
	cat >"$TMP/kc" <<-EOC
	apiVersion: v1
	kind: Config
	clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
	users: [{name: u, user: {token: x}}]
	contexts: [{name: x, context: {cluster: c, user: u, namespace: from-context}}]
	current-context: x
	EOC
	apply_envelope "$A/workflow.json" >"$TMP/in"
	run --separate-stderr kwh-apply --dry-run=client --kubeconfig "$TMP/kc" --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -e '.results[0].namespace == "from-context"'
}

@test "an object with neither name nor generateName is still shown under dry-run=client" {
	jq -c 'del(.metadata.generateName)' "$A/workflow.json" >"$TMP/noname.json"
	apply_envelope "$TMP/noname.json" >"$TMP/in"
	run --separate-stderr kwh-apply --dry-run=client --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -e '.results[0].name == "" and .results[0].action == "dry-run"'
}

@test "dedupe names (the default; --dedupe is a no-op): generateName cut to 58, five [a-z0-9], stable per delivery and index" {
	long=$(printf 'x%.0s' $(seq 70))
	jq -c --arg g "$long-" '.metadata.generateName = $g' "$A/workflow.json" >"$TMP/long.json"
	DELIVERY=abc apply_envelope "$A/workflow.json" "$TMP/long.json" "$A/workflow.json" >"$TMP/in"
	run --separate-stderr kwh-apply --dry-run=client --dedupe --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -r '.results[].name' >"$TMP/names1"
	run cat "$TMP/names1"
	assert_line --index 0 --regexp '^hello-[a-z0-9]{5}$'
	assert_line --index 1 --regexp "^${long:0:58}[a-z0-9]{5}\$"
	assert_line --index 2 --regexp '^hello-[a-z0-9]{5}$'
	[ "$(sed -n 1p "$TMP/names1")" != "$(sed -n 3p "$TMP/names1")" ]
	kwh-apply --dry-run=client --dedupe --log none <"$TMP/in" | jq -r '.results[].name' >"$TMP/names2"
	cmp "$TMP/names1" "$TMP/names2"
	DELIVERY=other apply_envelope "$A/workflow.json" | kwh-apply --dry-run=client --dedupe --log none |
		jq -r '.results[0].name' >"$TMP/names3"
	[ "$(cat "$TMP/names3")" != "$(sed -n 1p "$TMP/names1")" ]
}

@test "policy: a kind not allowed refuses the whole delivery with 422" {
	apply_envelope "$A/workflow.json" "$A/configmap.json" >"$TMP/in"
	run --separate-stderr kwh-apply --dry-run=client --allow-kind argoproj.io/Workflow --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 422'
	echo "$output" | jq -r .response.message | grep -F 'ConfigMap'
	echo "$output" | jq -e 'has("results") | not'
	run --separate-stderr kwh-apply --dry-run=client --allow-kind argoproj.io/Workflow --allow-kind core/ConfigMap --log none <"$TMP/in"
	assert_success
}

@test "policy: cluster-scoped kinds are refused unless allowed by name" {
	apply_envelope "$A/namespace.json" >"$TMP/in"
	run --separate-stderr kwh-apply --dry-run=client --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 422'
	echo "$output" | jq -r .response.message | grep -F 'cluster-scoped'
	run --separate-stderr kwh-apply --dry-run=client --allow-kind '/*' --log none <"$TMP/in"
	assert_failure 1
	run --separate-stderr kwh-apply --dry-run=client --allow-kind /Namespace --log none <"$TMP/in"
	assert_success
}

@test "policy: --allow-namespace is a whole-string extended regex" {
	jq -c '.metadata.namespace = "team-b"' "$A/configmap.json" >"$TMP/b.json"
	apply_envelope "$A/workflow.json" "$TMP/b.json" >"$TMP/in"
	run --separate-stderr kwh-apply --dry-run=client --namespace team-a --allow-namespace 'team-a' --allow-kind argoproj.io/Workflow --allow-kind /ConfigMap --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 422'
	echo "$output" | jq -r .response.message | grep -F "team-b"
	run --separate-stderr kwh-apply --dry-run=client --namespace team-a --allow-namespace 'team-[ab]' --allow-kind argoproj.io/Workflow --allow-kind /ConfigMap --log none <"$TMP/in"
	assert_success
	run --separate-stderr kwh-apply --dry-run=client --namespace team-a --allow-namespace 'team' --allow-kind argoproj.io/Workflow --allow-kind /ConfigMap --log none <"$TMP/in"
	assert_failure 1
	run --separate-stderr kwh-apply --dry-run=client --allow-namespace '(' --log none <"$TMP/in"
	assert_failure 100
}

@test "a stream of several envelopes: one answer each, in order" {
	{ DELIVERY=one apply_envelope "$A/workflow.json"
	  DELIVERY=two apply_envelope "$A/configmap.json"
	  DELIVERY=three apply_envelope "$A/namespace.json"; } >"$TMP/in"
	run --separate-stderr kwh-apply --dry-run=client --allow-kind argoproj.io/Workflow --allow-kind /ConfigMap --log none <"$TMP/in"
	assert_failure 1
	[ "$(echo "$output" | wc -l)" -eq 3 ]
	echo "$output" | jq -s -e '[.[].delivery] == ["one", "two", "three"]'
	echo "$output" | jq -s -e '[.[].results[0].kind] == ["Workflow", "ConfigMap", null]'
	echo "$output" | jq -s -e '.[2].response.status == 422'
}

@test "an envelope that already has a response passes through untouched" {
	apply_envelope "$A/workflow.json" | jq -c '.response = {status: 202, message: "skipped"}' >"$TMP/in"
	run --separate-stderr kwh-apply --dry-run=client --log none <"$TMP/in"
	assert_success
	[ "$output" = "$(cat "$TMP/in")" ]
}

@test "missing manifests, bad annotations, objects without kind: responses, not crashes" {
	echo '{"kwh":1,"delivery":"x"}' | { run --separate-stderr kwh-apply --dry-run=client --log none
		assert_failure 1
		echo "$output" | jq -e '.response.status == 500 and .delivery == "x"'; }
	echo '{"kwh":1,"manifests":[]}' | { run --separate-stderr kwh-apply --dry-run=client --log none
		assert_failure 1; echo "$output" | jq -e '.response.status == 422'; }
	echo '{"kwh":1,"manifests":[{"kind":"X"}]}' | { run --separate-stderr kwh-apply --dry-run=client --log none
		assert_failure 1; echo "$output" | jq -e '.response.status == 422'; }
	echo '{"kwh":1,"manifests":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}],"annotations":{"a":1}}' |
		{ run --separate-stderr kwh-apply --dry-run=client --log none
		assert_failure 1; echo "$output" | jq -e '.response.status == 422'; }
	echo '{"kwh":1,"manifests":[{"apiVersion":"x/y/z?","kind":"K"}]}' | { run --separate-stderr kwh-apply --dry-run=client --log none
		assert_failure 1; echo "$output" | jq -e '.response.status == 422'; }
	echo '{"kwh":1,"manifests":[3, {"metadata": 4}]}' | { run --separate-stderr kwh-apply --dry-run=client --log none
		assert_failure 1; echo "$output" | jq -e '.response.status == 422'; }
	echo 'not json' | { run --separate-stderr kwh-apply --dry-run=client --log none
		assert_failure 1; echo "$output" | jq -e '.response.status == 500'; }
	run --separate-stderr kwh-apply --dry-run=client --log none </dev/null
	assert_failure 1
	echo "$output" | jq -e '.response.status == 500'
}

@test "usage: --help, bad options, no configuration without dry-run" {
	run kwh-apply --help
	assert_success
	assert_line --index 0 --partial 'usage: kwh-apply'
	run kwh-apply --dry-run=maybe
	assert_failure 100
	run kwh-apply --allow-kind ConfigMap
	assert_failure 100
	run kwh-apply --deadline 0
	assert_failure 100
	run --separate-stderr kwh-apply </dev/null
	assert_failure 111
	[[ $stderr == *"no kubeconfig"* ]]
}
