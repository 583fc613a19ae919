#!/usr/bin/env bats
# kwh-apply's default policy (issue 15): whoever holds the webhook secret
# chooses the manifests, so without --allow-kind and --allow-namespace only
# an argoproj.io/Workflow in the target namespace is created; everything
# else is refused with 422 before anything is sent.  And deduplication is
# on by default, keyed on the envelope's digest, not on the delivery id.

load test_helper
load "$FIXTURES/apply/apply"

setup() {
	setup_tmp
	export HOME=$TMP
	A=$FIXTURES/apply
	P=$FIXTURES/policy
	apiserver_start
}

teardown() {
	apiserver_stop
}

# refused FILE... : kwh-apply with no policy option answers 422 for an
# envelope of the manifests in FILE..., and nothing is created or sent.
refused() {
	apply_envelope "$@" >"$TMP/in"
	run --separate-stderr kwh_apply --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 422'
	echo "$output" | jq -r .response.message | grep -F 'policy:'
	echo "$output" | jq -r .response.message | grep -F 'nothing was created'
	apiserver_requests | jq -e 'map(select(.method != "GET")) | length == 0'
	apiserver_objects | jq -e 'length == 0'
}

@test "default policy: a Secret in kube-system is refused (422), nothing created" {
	refused "$P/secret-kube-system.json"
	echo "$output" | jq -r .response.message | grep -F 'kind /Secret is not allowed'
}

@test "default policy: a RoleBinding to cluster-admin is refused (422)" {
	refused "$P/rolebinding-cluster-admin.json"
	echo "$output" | jq -r .response.message | grep -F 'kind rbac.authorization.k8s.io/RoleBinding'
}

@test "default policy: a cluster-scoped ClusterRoleBinding is refused (422)" {
	refused "$P/clusterrolebinding-cluster-admin.json"
	echo "$output" | jq -r .response.message | grep -F 'cluster-scoped'
}

@test "default policy: a privileged hostPID Pod is refused (422)" {
	refused "$P/pod-privileged.json"
}

@test "default policy: a Workflow whose metadata.namespace is kube-system is refused (422)" {
	refused "$P/workflow-kube-system.json"
	echo "$output" | jq -r .response.message | grep -F "namespace 'kube-system'"
	echo "$output" | jq -r .response.message | grep -F "target namespace 'ci'"
}

@test "default policy: one refused object among Workflows: none of the delivery is created" {
	refused "$A/workflow.json" "$P/secret-kube-system.json" "$A/workflow.json"
}

@test "default policy: a Workflow in the target namespace is created (201 from kwh-respond)" {
	apply_envelope "$A/workflow.json" >"$TMP/in"
	run --separate-stderr kwh_apply --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -e '.results[0] | .action == "created" and .namespace == "ci"'
	echo "$output" | kwh-respond >"$TMP/resp" 2>/dev/null || true
	assert_equal "$(http_status "$TMP/resp")" 201
	apiserver_objects | jq -e 'length == 1 and .[0].kind == "Workflow" and .[0].metadata.namespace == "ci"'
	# --namespace moves the target: the kubeconfig's ci is then refused
	jq -c '.metadata.namespace = "ci"' "$A/workflow.json" >"$TMP/ci.json"
	apply_envelope "$TMP/ci.json" >"$TMP/in"
	run --separate-stderr kwh_apply --namespace team --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 422'
	apply_envelope "$A/workflow.json" >"$TMP/in"
	run --separate-stderr kwh_apply --namespace team --log none <"$TMP/in"
	assert_success
	echo "$output" | jq -e '.results[0].namespace == "team"'
}

@test "widening: --allow-kind and --allow-namespace open exactly what they name" {
	apply_envelope "$P/secret-kube-system.json" >"$TMP/in"
	# the kind alone is not enough: kube-system is not the target namespace
	run --separate-stderr kwh_apply --allow-kind /Secret --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -r .response.message | grep -F "namespace 'kube-system'"
	run --separate-stderr kwh_apply --allow-kind /Secret --allow-namespace kube-system --log none <"$TMP/in"
	assert_success
	apiserver_objects | jq -e 'length == 1 and .[0].kind == "Secret"'
	# */* is every namespaced kind, never a cluster-scoped one
	apply_envelope "$P/pod-privileged.json" >"$TMP/in"
	run --separate-stderr kwh_apply --allow-kind '*/*' --log none <"$TMP/in"
	assert_success
	apply_envelope "$P/clusterrolebinding-cluster-admin.json" >"$TMP/in"
	run --separate-stderr kwh_apply --allow-kind '*/*' --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 422'
	run --separate-stderr kwh_apply --allow-kind rbac.authorization.k8s.io/ClusterRoleBinding --log none <"$TMP/in"
	assert_success
	# a group wildcard only as */*: */Secret would be a kind by any group
	run --separate-stderr kwh_apply --allow-kind '*/Secret' --log none <"$TMP/in"
	assert_failure 100
	# an --allow-kind list replaces the default: Workflows are then refused
	apply_envelope "$A/workflow.json" >"$TMP/in"
	run --separate-stderr kwh_apply --allow-kind /ConfigMap --log none <"$TMP/in"
	assert_failure 1
	echo "$output" | jq -e '.response.status == 422'
}

@test "dedupe by default: the same digest under 3 delivery ids creates one Workflow" {
	for d in d-1 d-2 d-3; do
		DELIVERY=$d apply_envelope "$A/workflow.json" | jq -c '.digest = "'"$(printf %064d 7)"'"'
	done >"$TMP/in"
	run --separate-stderr kwh_apply --log none <"$TMP/in"
	assert_success
	[ "$(echo "$output" | jq -s length)" = 3 ]
	echo "$output" | jq -s -e '[.[].results[0].action] == ["created", "exists", "exists"]'
	echo "$output" | jq -s -e '[.[].results[0].name] | unique | length == 1'
	apiserver_objects | jq -e 'map(select(.kind == "Workflow")) | length == 1'
	# another digest is another object; --no-dedupe creates every time
	DELIVERY=d-1 apply_envelope "$A/workflow.json" | jq -c '.digest = "'"$(printf %064d 8)"'"' >"$TMP/other"
	kwh_apply --log none <"$TMP/other" | jq -e '.results[0].action == "created"'
	kwh_apply --log none --no-dedupe <"$TMP/other" | jq -e '.results[0].action == "created"'
	# --dedupe is accepted, and changes nothing
	kwh_apply --log none --dedupe <"$TMP/other" | jq -e '.results[0].action == "exists"'
	apiserver_objects | jq -e 'map(select(.kind == "Workflow")) | length == 3'
}

# suffix TEXT: the five characters kwh-apply derives from SHA-256 of TEXT:
# [a-z0-9][byte % 36] of its first five bytes.
suffix() {
	local hex alnum=abcdefghijklmnopqrstuvwxyz0123456789 i out=
	hex=$(printf %s "$1" | sha256sum)
	for i in 0 1 2 3 4; do
		out+=${alnum:$((16#${hex:$((2 * i)):2} % 36)):1}
	done
	printf '%s\n' "$out"
}

@test "dedupe names: SHA-256 of DIGEST/INDEX, else DELIVERY/INDEX without a digest" {
	DELIVERY=d-9 apply_envelope "$A/workflow.json" "$A/workflow.json" | jq -c '.digest = "abc"' >"$TMP/in"
	run --separate-stderr kwh-apply --dry-run=client --log none <"$TMP/in"
	assert_success
	assert_equal "$(echo "$output" | jq -r '.manifests[0].metadata.name')" "hello-$(suffix abc/0)"
	assert_equal "$(echo "$output" | jq -r '.manifests[1].metadata.name')" "hello-$(suffix abc/1)"
	DELIVERY=d-9 apply_envelope "$A/workflow.json" >"$TMP/in"
	run --separate-stderr kwh-apply --dry-run=client --log none <"$TMP/in"
	assert_success
	assert_equal "$(echo "$output" | jq -r '.manifests[0].metadata.name')" "hello-$(suffix d-9/0)"
}
