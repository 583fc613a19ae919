#!/usr/bin/env bats
# Fidelity of the test API server (tests/k8s-apiserver): the real kubectl
# talks to it.  If kubectl is satisfied, the server answers these calls as a
# real API server would.  Needs kubectl >= 1.30 (need_kubectl: skipped,
# with the reason, elsewhere); tests/3102-apiserver-golden.bats proves the
# same from kubectl's recorded requests and answers without it.

load test_helper
bats_require_minimum_version 1.5.0

FORBIDDEN_USER=system:serviceaccount:ci:kwh
GEN='[bcdfghjklmnpqrstvwxz2456789]{5}'

setup() {
	need_kubectl
	setup_tmp
	apiserver_start --forbid "$FORBIDDEN_USER:create:locked"
	cat >"$TMP/wf.yaml" <<-'Y'
	apiVersion: argoproj.io/v1alpha1
	kind: Workflow
	metadata:
	  generateName: hello-
	spec:
	  entrypoint: main
	  templates:
	  - name: main
	    container:
	      image: alpine
	Y
	cat >"$TMP/cm.yaml" <<-'Y'
	apiVersion: v1
	kind: ConfigMap
	metadata:
	  name: settings
	data:
	  colour: blue
	Y
}

teardown() {
	apiserver_stop
}

# objects_named NAME: how many stored objects carry that name
objects_named() {
	apiserver_objects | jq --arg n "$1" '[.[] | select(.metadata.name == $n)] | length'
}

@test "kubectl: the dispatcher reads /version and runs the 1.32 client" {
	run apiserver_kubectl version -o json
	assert_success
	run jq -r '.serverVersion.gitVersion' <<<"$output"
	assert_output v1.32.4
	run jq -r '[.[] | select(.path == "/version")] | length > 0' <<<"$(apiserver_requests)"
	assert_output true
}

@test "kubectl: create -f with generateName names the generated Workflow" {
	run apiserver_kubectl create -f "$TMP/wf.yaml"
	assert_success
	assert_output --regexp "^workflow\.argoproj\.io/hello-$GEN created\$"
	name=${output#workflow.argoproj.io/}
	name=${name% created}
	run jq -c '[.[] | select(.kind == "Workflow")] | map([.metadata.name, .metadata.namespace, .metadata.generation, (.metadata.uid | test("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")), (.metadata.creationTimestamp | test("^[0-9-]{10}T[0-9:]{8}Z$")), (.metadata.resourceVersion | test("^[0-9]+$"))])' <<<"$(apiserver_objects)"
	assert_output "[[\"$name\",\"ci\",1,true,true,true]]"
}

@test "kubectl: create -f of the same ConfigMap twice fails with AlreadyExists" {
	run apiserver_kubectl create -f "$TMP/cm.yaml"
	assert_success
	assert_output "configmap/settings created"
	run --separate-stderr apiserver_kubectl create -f "$TMP/cm.yaml"
	assert_failure
	[[ $stderr == *'Error from server (AlreadyExists): error when creating "'*'cm.yaml": configmaps "settings" already exists'* ]]
	run objects_named settings
	assert_output 1
}

@test "kubectl: apply --server-side creates, then updates the object" {
	run apiserver_kubectl apply --server-side -f "$TMP/cm.yaml"
	assert_success
	assert_output "configmap/settings serverside-applied"
	rv1=$(apiserver_kubectl get configmap settings -o jsonpath='{.metadata.resourceVersion}')

	sed -i 's/colour: blue/colour: green/' "$TMP/cm.yaml"
	run apiserver_kubectl apply --server-side -f "$TMP/cm.yaml"
	assert_success
	assert_output "configmap/settings serverside-applied"

	run apiserver_kubectl get configmap settings -o json
	assert_success
	run jq -r '.data.colour' <<<"$output"
	assert_output green
	rv2=$(apiserver_kubectl get configmap settings -o jsonpath='{.metadata.resourceVersion}')
	[ "$rv2" -gt "$rv1" ]

	# the same apply again changes nothing: resourceVersion stays
	run apiserver_kubectl apply --server-side -f "$TMP/cm.yaml"
	assert_success
	run apiserver_kubectl get configmap settings -o jsonpath='{.metadata.resourceVersion}'
	assert_output "$rv2"

	# first apply created (201), the next ones patched (200)
	run jq -c '[.[] | select(.method == "PATCH") | [.content_type, .query, .status]]' <<<"$(apiserver_requests)"
	assert_output '[["application/apply-patch+yaml","fieldManager=kubectl&fieldValidation=Strict&force=false",201],["application/apply-patch+yaml","fieldManager=kubectl&fieldValidation=Strict&force=false",200],["application/apply-patch+yaml","fieldManager=kubectl&fieldValidation=Strict&force=false",200]]'
	run objects_named settings
	assert_output 1
}

@test "kubectl: get -o json lists the workflows of a namespace" {
	apiserver_kubectl create -f "$TMP/wf.yaml"
	apiserver_kubectl create -f "$TMP/wf.yaml"
	apiserver_kubectl create -n other -f "$TMP/wf.yaml"
	run apiserver_kubectl get workflows -n ci -o json
	assert_success
	run jq -r '.kind, (.items | length), (.items | map(.kind + " " + .metadata.namespace) | unique[])' <<<"$output"
	assert_output "List
2
Workflow ci"
	# the server's own list
	run jq -r '.[] | select(.path == "/apis/argoproj.io/v1alpha1/namespaces/ci/workflows" and .method == "GET") | .status' <<<"$(apiserver_requests)"
	assert_output 200
	run curl -sS --cacert "$APISERVER_CA" -H "Authorization: Bearer $APISERVER_TOKEN" "$APISERVER_URL/apis/argoproj.io/v1alpha1/namespaces/ci/workflows"
	run jq -r '.kind, (.metadata.resourceVersion | test("^[0-9]+$")), (.items | length)' <<<"$output"
	assert_output "WorkflowList
true
2"
}

@test "kubectl: plain get prints a table" {
	apiserver_kubectl create -f "$TMP/cm.yaml"
	run apiserver_kubectl get configmaps
	assert_success
	assert_line --index 0 --regexp '^NAME +CREATED AT$'
	assert_line --index 1 --regexp '^settings +[0-9-]{10}T[0-9:]{8}Z$'
}

@test "kubectl: delete removes the object; deleting it again is NotFound" {
	run apiserver_kubectl create -f "$TMP/wf.yaml"
	assert_success
	name=$(jq -r '.[0].metadata.name' <<<"$(apiserver_objects)")
	run apiserver_kubectl delete workflow "$name"
	assert_success
	assert_output "workflow.argoproj.io \"$name\" deleted"
	run apiserver_objects
	assert_output '[]'
	run --separate-stderr apiserver_kubectl delete workflow "$name"
	assert_failure
	assert_equal "$stderr" "Error from server (NotFound): workflows.argoproj.io \"$name\" not found"
}

@test "kubectl: create --dry-run=server answers but stores nothing" {
	run apiserver_kubectl create --dry-run=server -f "$TMP/cm.yaml"
	assert_success
	assert_output "configmap/settings created (server dry run)"
	run apiserver_objects
	assert_output '[]'
	run jq -r '.[] | select(.method == "POST") | .query' <<<"$(apiserver_requests)"
	assert_output "dryRun=All&fieldManager=kubectl-create&fieldValidation=Strict"
	# and a real create afterwards still works: the dry run reserved nothing
	run apiserver_kubectl create -f "$TMP/cm.yaml"
	assert_success
}

@test "kubectl: a wrong token is Unauthorized" {
	sed "s/token: .*/token: not-the-token/" "$APISERVER_DIR/kubeconfig" >"$TMP/bad"
	KUBECONFIG_FILE=$TMP/bad run --separate-stderr apiserver_kubectl get configmaps
	assert_failure
	# kubectl's last line; the cause in parentheses depends on whether the
	# 401 came from discovery or from the request itself
	[[ ${stderr##*$'\n'} == "error: You must be logged in to the server ("*")" ]]
	KUBECONFIG_FILE=$TMP/bad run --separate-stderr apiserver_kubectl create -f "$TMP/cm.yaml"
	assert_failure
	[[ $stderr == *"the server has asked for the client to provide credentials"* ]]
	run apiserver_objects
	assert_output '[]'
	# the log has the scheme, never the token
	run apiserver_requests
	refute_output --partial not-the-token
	refute_output --partial "$APISERVER_TOKEN"
	run jq -c '[.[] | select(.status == 401) | .auth] | unique' <<<"$output"
	assert_output '["Bearer"]'
}

@test "kubectl: a forbidden user gets the API server's forbidden message" {
	run --separate-stderr apiserver_kubectl create -n locked -f "$TMP/wf.yaml"
	assert_failure
	[[ $stderr == *'Error from server (Forbidden): error when creating "'*'wf.yaml": workflows.argoproj.io is forbidden: User "system:serviceaccount:ci:kwh" cannot create resource "workflows" in API group "argoproj.io" in the namespace "locked"' ]]
	run apiserver_objects
	assert_output '[]'
	# other namespaces are not affected
	run apiserver_kubectl create -f "$TMP/wf.yaml"
	assert_success
}

@test "kubectl: cluster-scoped Namespace and ClusterRole beside a namespaced object" {
	cat >"$TMP/cluster.yaml" <<-'Y'
	apiVersion: v1
	kind: Namespace
	metadata:
	  name: team-a
	---
	apiVersion: rbac.authorization.k8s.io/v1
	kind: ClusterRole
	metadata:
	  name: wf-reader
	rules:
	- apiGroups: [argoproj.io]
	  resources: [workflows]
	  verbs: [get, list]
	---
	apiVersion: v1
	kind: ConfigMap
	metadata:
	  name: team-settings
	  namespace: team-a
	Y
	run apiserver_kubectl create -f "$TMP/cluster.yaml"
	assert_success
	assert_output "namespace/team-a created
clusterrole.rbac.authorization.k8s.io/wf-reader created
configmap/team-settings created"
	run jq -c 'map([.kind, .metadata.name, .metadata.namespace])' <<<"$(apiserver_objects)"
	assert_output '[["ConfigMap","team-settings","team-a"],["Namespace","team-a",null],["ClusterRole","wf-reader",null]]'
	run jq -c '[.[] | select(.method == "POST") | .path]' <<<"$(apiserver_requests)"
	assert_output '["/api/v1/namespaces","/apis/rbac.authorization.k8s.io/v1/clusterroles","/api/v1/namespaces/team-a/configmaps"]'
	run apiserver_kubectl get clusterrole wf-reader -o jsonpath='{.rules[0].resources[0]}'
	assert_output workflows
	run apiserver_kubectl delete -f "$TMP/cluster.yaml"
	assert_success
	run apiserver_objects
	assert_output '[]'
}

@test "kubectl: a client certificate from the CA authenticates as its CN" {
	KUBECONFIG_FILE=$APISERVER_DIR/kubeconfig-cert run apiserver_kubectl create -f "$TMP/cm.yaml"
	assert_success
	assert_output "configmap/settings created"
	run jq -c '[.[] | select(.method == "POST") | [.auth, .user, .status]]' <<<"$(apiserver_requests)"
	assert_output '[[null,"kwh-client",201]]'
}

@test "kubectl: a client certificate from another CA is refused in the handshake" {
	sed -e "s#/client.crt#/other-client.crt#" -e "s#/client.key#/other-client.key#" \
		"$APISERVER_DIR/kubeconfig-cert" >"$TMP/other"
	KUBECONFIG_FILE=$TMP/other run --separate-stderr apiserver_kubectl get configmaps
	assert_failure
	[[ $stderr == *"tls: "* ]]
	run jq 'map(select(.path != "/version")) | length' <<<"$(apiserver_requests)"
	assert_output 0
}

@test "kubectl: a kubeconfig trusting the wrong CA rejects the server" {
	sed "s#certificate-authority: .*#certificate-authority: $APISERVER_DIR/other-ca.crt#" \
		"$APISERVER_DIR/kubeconfig" >"$TMP/wrongca"
	KUBECONFIG_FILE=$TMP/wrongca run --separate-stderr apiserver_kubectl get configmaps
	assert_failure
	[[ $stderr == *"x509: certificate signed by unknown authority"* ]]
}

@test "kubectl: annotate and label use merge patches the server applies" {
	apiserver_kubectl create -f "$TMP/cm.yaml"
	run apiserver_kubectl annotate configmap settings kwh.example/delivery=abc
	assert_success
	run apiserver_kubectl label configmap settings team=ci
	assert_success
	run apiserver_kubectl get configmaps -l team=ci -o jsonpath='{.items[*].metadata.annotations.kwh\.example/delivery}'
	assert_output abc
	run apiserver_kubectl get configmaps -l team=other -o name
	assert_output ""
	run jq -c '[.[] | select(.method == "PATCH") | [.content_type, .query, .body]]' <<<"$(apiserver_requests)"
	assert_output '[["application/merge-patch+json","fieldManager=kubectl-annotate","{\"metadata\":{\"annotations\":{\"kwh.example/delivery\":\"abc\"}}}"],["application/merge-patch+json","fieldManager=kubectl-label","{\"metadata\":{\"labels\":{\"team\":\"ci\"}}}"]]'
}

@test "kubectl: the request log records kubectl's requests for comparison" {
	apiserver_clear_requests
	run apiserver_kubectl create -f "$TMP/wf.yaml"
	assert_success
	run jq -c '[.[] | select(.method == "POST")] | map({method, path, query, content_type, auth, user, status, response_type})' <<<"$(apiserver_requests)"
	assert_output '[{"method":"POST","path":"/apis/argoproj.io/v1alpha1/namespaces/ci/workflows","query":"fieldManager=kubectl-create&fieldValidation=Strict","content_type":"application/json","auth":"Bearer","user":"system:serviceaccount:ci:kwh","status":201,"response_type":"application/json"}]'
	# the body is the manifest as JSON, with the namespace filled in
	run jq -c '.[] | select(.method == "POST") | .body | fromjson | [.kind, .metadata]' <<<"$(apiserver_requests)"
	assert_output '["Workflow",{"generateName":"hello-","namespace":"ci"}]'
	# every entry has the same keys
	run jq -c 'map(keys) | unique' <<<"$(apiserver_requests)"
	assert_output '[["accept","auth","body","content_type","fault","method","path","query","response_type","status","user","user_agent"]]'
}

@test "kubectl: aggregated discovery lists the built-in and Argo resources" {
	run apiserver_kubectl api-resources --no-headers
	assert_success
	assert_line --regexp '^workflows +wf +argoproj\.io/v1alpha1 +true +Workflow$'
	assert_line --regexp '^cronworkflows +cwf,cronwf +argoproj\.io/v1alpha1 +true +CronWorkflow$'
	assert_line --regexp '^namespaces +ns +v1 +false +Namespace$'
	assert_line --regexp '^clusterroles +rbac\.authorization\.k8s\.io/v1 +false +ClusterRole$'
	assert_line --regexp '^deployments +deploy +apps/v1 +true +Deployment$'
	run jq -c '[.[] | select(.path == "/api" or .path == "/apis") | .response_type] | unique' <<<"$(apiserver_requests)"
	assert_output '["application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"]'
}

@test "kubectl: a resource type added at runtime is found after discovery refresh" {
	run --separate-stderr apiserver_kubectl get widgets
	assert_failure
	[[ $stderr == *'the server doesn'\''t have a resource type "widgets"'* ]]
	apiserver_control POST /_test/resources '{"group":"example.com","version":"v1","kind":"Widget","plural":"widgets","scope":"Namespaced"}' >/dev/null
	cat >"$TMP/widget.yaml" <<-'Y'
	apiVersion: example.com/v1
	kind: Widget
	metadata:
	  name: w1
	Y
	run apiserver_kubectl create -f "$TMP/widget.yaml"
	assert_success
	assert_output "widget.example.com/w1 created"
	run apiserver_kubectl get widgets -o name
	assert_output "widget.example.com/w1"
}
