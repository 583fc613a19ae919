#!/usr/bin/env bats
# The test API server (tests/k8s-apiserver) at the HTTP level, with curl:
# error bodies as a real API server writes them, server-side apply details,
# fault injection, the request log and the server's own options.

load test_helper
bats_require_minimum_version 1.5.0

WF=/apis/argoproj.io/v1alpha1/namespaces/ci/workflows

setup() {
	setup_tmp
}

teardown() {
	apiserver_stop
}

# k METHOD PATH [BODY [CONTENT-TYPE]]: prints the status; the body goes to $TMP/body
k() {
	local args=(-sS --cacert "$APISERVER_CA" -H "Authorization: Bearer $APISERVER_TOKEN"
		-o "$TMP/body" -w '%{http_code}' -X "$1")
	[ $# -ge 3 ] && args+=(-H "Content-Type: ${4:-application/json}" --data-binary "$3")
	curl "${args[@]}" "$APISERVER_URL$2"
}
body() { jq -c "${1:-.}" "$TMP/body"; }

@test "api: no or wrong credentials give the real Unauthorized Status; /version is public" {
	apiserver_start
	run curl -sS --cacert "$APISERVER_CA" -w ' %{http_code}' "$APISERVER_URL$WF"
	assert_output '{"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401} 401'
	run curl -sS --cacert "$APISERVER_CA" -H 'Authorization: Bearer nope' -o /dev/null -w '%{http_code}' "$APISERVER_URL/api"
	assert_output 401
	run curl -sS --cacert "$APISERVER_CA" "$APISERVER_URL/version"
	run jq -r '.major + "." + .minor + " " + .gitVersion' <<<"$output"
	assert_output "1.32 v1.32.4"
	run curl -sS --cacert "$APISERVER_CA" "$APISERVER_URL/healthz"
	assert_output ok
}

@test "api: generateName gets 5 characters from the server's alphabet, the base cut to 58" {
	apiserver_start
	run k POST "$WF" '{"apiVersion":"argoproj.io/v1alpha1","kind":"Workflow","metadata":{"generateName":"ci-"}}'
	assert_output 201
	run body '.metadata.name'
	assert_output --regexp '^"ci-[bcdfghjklmnpqrstvwxz2456789]{5}"$'
	long=$(printf 'a%.0s' {1..70})
	run k POST "$WF" "{\"apiVersion\":\"argoproj.io/v1alpha1\",\"kind\":\"Workflow\",\"metadata\":{\"generateName\":\"$long\"}}"
	assert_output 201
	run body '.metadata.name | length'
	assert_output 63
}

@test "api: invalid creates: no name 422, wrong kind 400, wrong namespace 400, cluster path 405" {
	apiserver_start
	run k POST "$WF" '{"apiVersion":"argoproj.io/v1alpha1","kind":"Workflow","metadata":{}}'
	assert_output 422
	run body
	assert_output '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Workflow.argoproj.io \"\" is invalid: metadata.name: Required value: name or generateName is required","reason":"Invalid","details":{"group":"argoproj.io","kind":"Workflow","causes":[{"reason":"FieldValueRequired","message":"Required value: name or generateName is required","field":"metadata.name"}]},"code":422}'
	run k POST "$WF" '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}'
	assert_output 400
	run body '.reason'
	assert_output '"BadRequest"'
	run k POST "$WF" '{"apiVersion":"argoproj.io/v1alpha1","kind":"Workflow","metadata":{"name":"x","namespace":"prod"}}'
	assert_output 400
	run body '.message'
	assert_output '"the namespace of the provided object does not match the namespace sent on the request"'
	run k POST /apis/argoproj.io/v1alpha1/workflows '{"apiVersion":"argoproj.io/v1alpha1","kind":"Workflow","metadata":{"name":"x"}}'
	assert_output 405
	run k GET /apis/argoproj.io/v1alpha1/workflows/x
	assert_output 404
	run k GET /apis/nothing.example/v1
	assert_output 404
	run body '.message'
	assert_output '"the server could not find the requested resource"'
	run apiserver_objects
	assert_output '[]'
}

@test "api: AlreadyExists and NotFound Status bodies" {
	apiserver_start
	wf='{"apiVersion":"argoproj.io/v1alpha1","kind":"Workflow","metadata":{"name":"x"}}'
	run k POST "$WF" "$wf"
	assert_output 201
	run k POST "$WF" "$wf"
	assert_output 409
	run body
	assert_output '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"workflows.argoproj.io \"x\" already exists","reason":"AlreadyExists","details":{"name":"x","group":"argoproj.io","kind":"workflows"},"code":409}'
	run k GET "$WF/y"
	assert_output 404
	run body
	assert_output '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"workflows.argoproj.io \"y\" not found","reason":"NotFound","details":{"name":"y","group":"argoproj.io","kind":"workflows"},"code":404}'
	run k DELETE "$WF/x"
	assert_output 200
	run body '.kind'
	assert_output '"Workflow"'
}

@test "api: server-side apply: fieldManager required, create 201, unchanged keeps resourceVersion, change bumps it" {
	apiserver_start
	ap=application/apply-patch+yaml
	v1='{"apiVersion":"argoproj.io/v1alpha1","kind":"Workflow","metadata":{"name":"w"},"spec":{"entrypoint":"a"}}'
	v2='{"apiVersion":"argoproj.io/v1alpha1","kind":"Workflow","metadata":{"name":"w"},"spec":{"entrypoint":"b"}}'
	run k PATCH "$WF/w" "$v1" $ap
	assert_output 422
	run body '.message'
	assert_output '"PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"'
	run k PATCH "$WF/w?fieldManager=kwh&dryRun=All" "$v1" $ap
	assert_output 201
	run apiserver_objects
	assert_output '[]'
	run k PATCH "$WF/w?fieldManager=kwh" "$v1" $ap
	assert_output 201
	run body '[.metadata.generation, .metadata.namespace, (.metadata.uid | length)]'
	assert_output '[1,"ci",36]'
	rv=$(body '.metadata.resourceVersion')
	run k PATCH "$WF/w?fieldManager=kwh" "$v1" $ap
	assert_output 200
	run body '.metadata.resourceVersion'
	assert_output "$rv"
	run k PATCH "$WF/w?fieldManager=kwh" "$v2" $ap
	assert_output 200
	run body '[.spec.entrypoint, .metadata.generation, (.metadata.resourceVersion != '"$rv"')]'
	assert_output '["b",2,true]'
	run k PATCH "$WF/w?fieldManager=kwh" '{"x":1}' application/json
	assert_output 415
	run jq 'length' <<<"$(apiserver_objects)"
	assert_output 1
}

@test "api: dryRun=All on delete keeps the object" {
	apiserver_start
	k POST /api/v1/namespaces/ci/configmaps '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}'
	run k DELETE "/api/v1/namespaces/ci/configmaps/c?dryRun=All"
	assert_output 200
	run body '[.kind, .status, .details.name]'
	assert_output '["Status","Success","c"]'
	run jq -r '.[].metadata.name' <<<"$(apiserver_objects)"
	assert_output c
}

@test "api: faults: N answers with a status and Retry-After, matched by method and path prefix" {
	apiserver_start
	apiserver_fault '{"count":2,"status":503,"retry_after":1,"method":"POST","path":"/apis/argoproj.io/"}'
	run k GET "$WF"
	assert_output 200
	cm='{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}'
	run k POST /api/v1/namespaces/ci/configmaps "$cm"
	assert_output 201
	wf='{"apiVersion":"argoproj.io/v1alpha1","kind":"Workflow","metadata":{"generateName":"x-"}}'
	run curl -sS --cacert "$APISERVER_CA" -H "Authorization: Bearer $APISERVER_TOKEN" -D - -o /dev/null \
		-H 'Content-Type: application/json' --data-binary "$wf" "$APISERVER_URL$WF"
	assert_line --partial "HTTP/1.1 503"
	assert_line --regexp '^Retry-After: 1'
	run k POST "$WF" "$wf"
	assert_output 503
	run body '[.reason, .code, .details.retryAfterSeconds]'
	assert_output '["ServiceUnavailable",503,1]'
	run k POST "$WF" "$wf"
	assert_output 201
	run jq -c '[.[] | select(.method == "POST") | [.status, (.fault | if . then .status else null end)]]' <<<"$(apiserver_requests)"
	assert_output '[[201,null],[503,503],[503,503],[201,null]]'
	run jq '[.[] | select(.kind == "Workflow")] | length' <<<"$(apiserver_objects)"
	assert_output 1
}

@test "api: a reset fault closes the connection without an answer" {
	apiserver_start
	apiserver_fault '{"count":1,"reset":true}'
	run k GET "$WF"
	assert_failure 56
	assert_output --partial "reset by peer"
	run k GET "$WF"
	assert_output 200
	run jq -c 'map([.status, .fault.reset])' <<<"$(apiserver_requests)"
	assert_output '[[null,true],[200,null]]'
}

@test "api: a delay fault answers late" {
	apiserver_start
	apiserver_fault '{"count":1,"delay":3}'
	run curl -sS --max-time 0.5 --cacert "$APISERVER_CA" -H "Authorization: Bearer $APISERVER_TOKEN" "$APISERVER_URL$WF"
	assert_failure 28
	apiserver_fault '{"count":1,"delay":0.4}'
	run curl -sS --cacert "$APISERVER_CA" -H "Authorization: Bearer $APISERVER_TOKEN" -o /dev/null \
		-w '%{http_code} %{time_total}' "$APISERVER_URL$WF"
	assert_output --regexp '^200 '
	awk -v t="${output#* }" 'BEGIN { exit !(t >= 0.4) }'
	apiserver_control DELETE /_test/faults >/dev/null
	run apiserver_control GET /_test/faults
	assert_output '[]'
}

@test "api: keep-alive: two requests on one connection" {
	apiserver_start
	# (curl's count of the connections each transfer opened: 0 is a reuse)
	run curl -sS --cacert "$APISERVER_CA" -H "Authorization: Bearer $APISERVER_TOKEN" \
		-o /dev/null -o /dev/null -w '%{http_code} %{num_connects}\n' "$APISERVER_URL/api" "$APISERVER_URL$WF"
	assert_success
	assert_output "200 1
200 0"
}

@test "api: control calls are not logged; DELETE /_test/requests clears the log" {
	apiserver_start
	k GET /api >/dev/null
	apiserver_objects >/dev/null
	run jq -c 'map(.path)' <<<"$(apiserver_requests)"
	assert_output '["/api"]'
	apiserver_clear_requests
	run apiserver_requests
	assert_output '[]'
}

@test "api: discovery: legacy JSON, aggregated v2 and v2beta1, and --crd" {
	apiserver_start --crd example.com/v1/Gadget/gadgets/Cluster
	run k GET /api
	assert_output 200
	run body '[.kind, .versions]'
	assert_output '["APIVersions",["v1"]]'
	run k GET /apis/argoproj.io/v1alpha1
	run body '.resources[] | select(.name == "workflows") | [.kind, .namespaced, .singularName, (.verbs | index("create") != null)]'
	assert_output '["Workflow",true,"workflow",true]'
	run k GET /apis/example.com/v1
	run body '.resources[0] | [.name, .kind, .namespaced]'
	assert_output '["gadgets","Gadget",false]'
	run curl -sS --cacert "$APISERVER_CA" -H "Authorization: Bearer $APISERVER_TOKEN" -D "$TMP/h" -o "$TMP/body" \
		-H 'Accept: application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json' "$APISERVER_URL/apis"
	run grep -i '^content-type:' "$TMP/h"
	assert_output --partial 'application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList'
	run body '[.kind, .apiVersion, (.items[] | select(.metadata.name == "example.com") | .versions[0].resources[0] | .scope)]'
	assert_output '["APIGroupDiscoveryList","apidiscovery.k8s.io/v2beta1","Cluster"]'
	# the new kind works like any other: cluster scoped
	run k POST /apis/example.com/v1/gadgets '{"apiVersion":"example.com/v1","kind":"Gadget","metadata":{"name":"g"}}'
	assert_output 201
	run body '.metadata | has("namespace")'
	assert_output false
}

@test "api: forbidden via the control endpoint names the user, verb, resource and namespace" {
	apiserver_start
	apiserver_control POST /_test/forbid '{"user":"system:serviceaccount:ci:kwh","verb":"create","namespace":"ci"}' >/dev/null
	run k POST /api/v1/namespaces/ci/configmaps '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}'
	assert_output 403
	run body
	assert_output '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps is forbidden: User \"system:serviceaccount:ci:kwh\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"ci\"","reason":"Forbidden","details":{"kind":"configmaps"},"code":403}'
	run k GET /api/v1/namespaces/ci/configmaps
	assert_output 200
}

@test "api: plain HTTP, --port-file, the listening line, and a clean exit on SIGTERM" {
	printf 'tok\n' >"$TMP/token"
	"$APISERVER_PYTHON" -S "$TESTS_DIR/k8s-apiserver" --plain-http --port 0 --port-file "$TMP/port" \
		--token-file "$TMP/token" >"$TMP/out" 2>&1 3>&- &
	pid=$!
	APISERVER_PID=$pid   # so teardown stops it if this test fails
	while [ ! -s "$TMP/port" ]; do kill -0 "$pid" || break; sleep 0.05; done
	port=$(cat "$TMP/port")
	wait_port "$port"
	run curl -sS -H 'Authorization: Bearer tok' -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/v1/namespaces/ci/pods"
	assert_output 200
	run cat "$TMP/out"
	assert_output "listening on http://127.0.0.1:$port"
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	unset APISERVER_PID
	assert_equal "$rc" 0
}

@test "api: DELETE with dryRun in the DeleteOptions body (kubectl delete --dry-run=server) keeps the object" {
	apiserver_start
	curl -sS --fail --cacert "$APISERVER_CA" -H "Authorization: Bearer $(cat "$APISERVER_DIR/token")" \
		-H 'Content-Type: application/json' --data-binary '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"keep"}}' \
		"$APISERVER_URL/api/v1/namespaces/default/configmaps" >/dev/null
	run -0 curl -sS --fail --cacert "$APISERVER_CA" -H "Authorization: Bearer $(cat "$APISERVER_DIR/token")" \
		-X DELETE -H 'Content-Type: application/json' --data-binary '{"propagationPolicy":"Background","dryRun":["All"]}' \
		"$APISERVER_URL/api/v1/namespaces/default/configmaps/keep"
	run -0 apiserver_objects
	jq -e 'map(select(.metadata.name == "keep")) | length == 1' <<<"$output"
	# without it, the object goes
	run -0 curl -sS --fail --cacert "$APISERVER_CA" -H "Authorization: Bearer $(cat "$APISERVER_DIR/token")" \
		-X DELETE "$APISERVER_URL/api/v1/namespaces/default/configmaps/keep"
	run -0 apiserver_objects
	jq -e 'map(select(.metadata.name == "keep")) | length == 0' <<<"$output"
}
