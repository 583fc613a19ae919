#!/usr/bin/env bats
# share/kubernetes: every manifest converts with kubectl and is accepted by
# the test API server; the Deployment's security settings; the RBAC rules
# are exactly the requests kwh-apply makes, computed from the API server's
# request log after the chain ran in-cluster with the shipped settings.

load test_helper
load 4000-deploy-lib

K=$TOP_DIR/share/kubernetes

setup() {
	setup_tmp
	export HOME=$TMP
	unset KUBECONFIG CREDENTIALS_DIRECTORY CACHE_DIRECTORY
}

teardown() {
	apiserver_stop
}

# local_json FILE: kubectl's conversion of FILE, with no cluster (kubectl
# annotate --local ... kwh.test/converted=yes), as tests/record-kubectl
# recorded it; an error when share/kubernetes changed since.
local_json() {
	golden_current kubernetes || return 1
	cat "$GOLDEN/kubernetes/$(basename "$1" .yaml).json"
}

# live_json FILE: the same from the kubectl on PATH.
live_json() {
	kubectl annotate --local -f "$1" kwh.test/converted=yes -o json
}

# manifest KIND: the JSON object of that kind in share/kubernetes.
manifest() {
	local f
	golden_current kubernetes || return 1
	for f in "$K"/*.yaml; do
		[ "$(basename "$f")" = kustomization.yaml ] && continue
		local_json "$f" | jq -c --arg k "$1" 'if .kind == "List" then .items[] else . end | select(.kind == $k)'
	done
}

@test "every manifest converts with kubectl, locally, and kustomization.yaml lists them all" {
	local n=0 f
	golden_current kubernetes
	for f in "$K"/*.yaml; do
		[ "$(basename "$f")" = kustomization.yaml ] && continue
		local_json "$f" >"$TMP/out.json"
		jq -e '(.kind | length > 0) and (if .kind == "List" then (.items | length > 0) else (.metadata.name | length > 0) end)' "$TMP/out.json"
		# and lib/yaml reads it as kubectl did
		kwh-yaml2json "$f" | jq_norm '.metadata.annotations["kwh.test/converted"] = "yes"' >"$TMP/kwh.json"
		diff <(jq_norm . "$TMP/out.json") "$TMP/kwh.json"
		n=$((n + 1))
	done
	[ "$n" -ge 9 ]
	# one recording per manifest, no more
	[ "$(ls "$GOLDEN"/kubernetes/*.json | wc -l)" -eq "$n" ]
	# kustomize builds the same set of files
	diff <(cd "$K" && ls *.yaml | grep -vx kustomization.yaml) \
		<(sed -n 's/^- \(.*\.yaml\)$/\1/p' "$K/kustomization.yaml" | sort)
	[ "$(grep -c '^kind: ' "$GOLDEN/kubernetes/kustomize.yaml")" -eq 12 ]
	# the objects kustomize built are the manifests' own
	kwh-yaml2json "$GOLDEN/kubernetes/kustomize.yaml" | jq -s -c 'map([.kind, .metadata.namespace, .metadata.name]) | sort' >"$TMP/k"
	for f in "$K"/*.yaml; do
		[ "$(basename "$f")" = kustomization.yaml ] || kwh-yaml2json "$f"
	done | jq -s -c 'map([.kind, .metadata.namespace, .metadata.name]) | sort' >"$TMP/m"
	diff "$TMP/m" "$TMP/k"
}

@test "every manifest is accepted by the API server (kubectl's recorded create --dry-run=server, replayed)" {
	golden_current kubernetes
	golden_current apiserver
	apiserver_start
	golden_replay_matches kubernetes-dry-run
	# every manifest and -k were answered 201, as dry runs
	jq -e '[.steps[] | .exit] | length == 12 and all(. == 0)' "$GOLDEN/apiserver/kubernetes-dry-run.json"
	jq -e '[.steps[].exchanges[] | select(.request.method == "POST")] | length >= 20 and
		all(.request.query | test("dryRun=All")) and all(.response.status == 201)' "$TMP/kubernetes-dry-run.replayed"
	# a dry run stores nothing
	apiserver_objects | jq -e 'length == 0'
}

@test "live kubectl: every manifest converts as recorded, and kustomize builds as recorded" {
	need_kubectl
	local f
	for f in "$K"/*.yaml; do
		[ "$(basename "$f")" = kustomization.yaml ] && continue
		live_json "$f" | cmp - "$GOLDEN/kubernetes/$(basename "$f" .yaml).json"
	done
	kubectl kustomize "$K" | cmp - "$GOLDEN/kubernetes/kustomize.yaml"
}

@test "live kubectl: every manifest is accepted by the API server (kubectl create --dry-run=server)" {
	need_kubectl
	apiserver_start
	local f
	for f in "$K"/*.yaml; do
		[ "$(basename "$f")" = kustomization.yaml ] && continue
		run apiserver_kubectl create --dry-run=server -f "$f" -o name
		assert_success
		[ -n "$output" ]
	done
	run apiserver_kubectl create --dry-run=server -k "$K" -o name
	assert_success
	assert_equal "$(printf '%s\n' "$output" | sort | tr '\n' ' ')" \
		"configmap/kwh deployment.apps/kwh horizontalpodautoscaler.autoscaling/kwh ingress.networking.k8s.io/kwh namespace/ci namespace/kwh persistentvolumeclaim/kwh-spool role.rbac.authorization.k8s.io/kwh-create-workflows rolebinding.rbac.authorization.k8s.io/kwh-create-workflows secret/kwh service/kwh serviceaccount/kwh "
	# a dry run stores nothing
	apiserver_objects | jq -e 'length == 0'
	# and the server did see them
	apiserver_requests | jq -e '[.[] | select(.method == "POST" and (.query // "" | test("dryRun=All")))] | length >= 12'
}

@test "the Deployment: replicas, non-root, read-only, no privileges, probes, limits, cache, secret files" {
	manifest Deployment >"$TMP/d.json"
	jq -e '.spec.replicas >= 2' "$TMP/d.json"
	jq -e '.spec.template.spec as $p | $p.serviceAccountName == "kwh" and
		$p.securityContext.runAsNonRoot == true and $p.securityContext.runAsUser == 65532 and
		$p.securityContext.seccompProfile.type == "RuntimeDefault"' "$TMP/d.json"
	jq -e '.spec.template.spec.containers | length == 1' "$TMP/d.json"
	jq -e '.spec.template.spec.containers[0] as $c | $c.securityContext as $s |
		$s.readOnlyRootFilesystem == true and $s.runAsNonRoot == true and $s.runAsUser == 65532 and
		$s.allowPrivilegeEscalation == false and $s.capabilities.drop == ["ALL"] and
		($s.capabilities.add // [] | length == 0) and ($s.privileged // false) == false and
		$s.seccompProfile.type == "RuntimeDefault"' "$TMP/d.json"
	jq -e '.spec.template.spec.containers[0] as $c |
		$c.livenessProbe.httpGet.path == "/-/alive" and $c.readinessProbe.httpGet.path == "/-/ready" and
		([$c.livenessProbe, $c.readinessProbe] | all(.httpGet.port == "http")) and
		($c.ports | map(select(.name == "http")) | .[0].containerPort == 8080)' "$TMP/d.json"
	jq -e '.spec.template.spec.containers[0].resources as $r |
		($r.requests.cpu and $r.requests.memory and $r.limits.cpu and $r.limits.memory) != null' "$TMP/d.json"
	# the resident server, its options from the ConfigMap's file
	jq -e '.spec.template.spec.containers[0].command as $c | $c[0] == "kwh-handle" and
		($c | index("--listen")) as $i | $c[$i + 1] == "0.0.0.0:8080" and
		($c | index("--config")) as $j | $c[$j + 1] == "/etc/kwh/config/kwh-handle.conf"' "$TMP/d.json"
	manifest ConfigMap | jq -r '.data["kwh-handle.conf"]' >"$TMP/conf"
	# the git cache is an emptyDir at the ConfigMap's cache, the spool the
	# shared claim at its spool, the secret mounted as files read-only at the
	# directory the ConfigMap names; nothing else is writable
	cache=$(sed -n 's/^cache //p' "$TMP/conf")
	spool=$(sed -n 's/^spool //p' "$TMP/conf")
	secret=$(sed -n 's/^secret-file //p' "$TMP/conf")
	manifest PersistentVolumeClaim | jq -e '.metadata.name == "kwh-spool" and .spec.accessModes == ["ReadWriteMany"]'
	jq -e --arg cache "$cache" --arg spool "$spool" --arg sdir "$(dirname "$secret")" '.spec.template.spec as $p |
		($p.containers[0].volumeMounts | map({(.mountPath): .}) | add) as $m |
		($p.volumes | map({(.name): .}) | add) as $v |
		$v[$m[$cache].name].emptyDir != null and
		$v[$m[$spool].name].persistentVolumeClaim.claimName == "kwh-spool" and
		$v[$m[$sdir].name].secret.secretName == "kwh" and $m[$sdir].readOnly == true and
		($m | to_entries | map(select(.value.readOnly != true and .key != $spool)) | all($v[.value.name].emptyDir != null))' "$TMP/d.json"
	# the secret holds the key the ConfigMap names
	manifest Secret | jq -e --arg k "$(basename "$secret")" '.stringData[$k] | test("REPLACE-ME")'
	# the ConfigMap is mounted as a directory (subPath would never change)
	jq -e '.spec.template.spec.containers[0].volumeMounts | map(select(.mountPath == "/etc/kwh/config")) |
		length == 1 and (.[0].subPath == null)' "$TMP/d.json"
	# and kwh-handle reads the file: its options all parse
	sed -e "s|^secret-file .*|secret-file $TMP/s|" -e '/^ssh-key /d' -e '/^known-hosts /d' \
		-e "s|^log .*|log $TMP/log|" "$TMP/conf" >"$TMP/conf.local"
	printf 'x\n' >"$TMP/s"; chmod 600 "$TMP/s"
	printf 'GET /-/alive HTTP/1.1\r\nHost: x\r\n\r\n' | kwh-handle --config "$TMP/conf.local" --cache "$TMP/c" \
		--spool "$TMP/spool" >"$TMP/out"
	assert_equal "$(http_status "$TMP/out")" 200
}

@test "horizontal scaling: an autoscaling/v2 HPA on the Deployment, by CPU, at least as many replicas as it has" {
	manifest HorizontalPodAutoscaler >"$TMP/hpa.json"
	manifest Deployment >"$TMP/d.json"
	jq -e --slurpfile d "$TMP/d.json" '.apiVersion == "autoscaling/v2" and
		.metadata.namespace == $d[0].metadata.namespace and
		.spec.scaleTargetRef == {"apiVersion":"apps/v1","kind":"Deployment","name":$d[0].metadata.name} and
		.spec.minReplicas >= $d[0].spec.replicas and .spec.maxReplicas > .spec.minReplicas and
		(.spec.metrics[0].resource | .name == "cpu" and .target.type == "Utilization")' "$TMP/hpa.json"
	# utilization needs a CPU request
	jq -e '.spec.template.spec.containers[0].resources.requests.cpu != null' "$TMP/d.json"
}

@test "RBAC: one Role in the CI namespace, create/get/patch on Argo workflows, nothing cluster-wide, no wildcards" {
	manifest Role >"$TMP/role.json"
	jq -e '.metadata.namespace == "ci"' "$TMP/role.json"
	assert_equal "$(jq -c '.rules' "$TMP/role.json")" \
		'[{"apiGroups":["argoproj.io"],"resources":["workflows"],"verbs":["create","get","patch"]}]'
	[ -z "$(manifest ClusterRole)" ]
	[ -z "$(manifest ClusterRoleBinding)" ]
	run grep -n '"\*"' "$K/role.yaml" "$K/rolebinding.yaml"
	assert_failure
	# the binding: the Role, to the ServiceAccount the Deployment runs as
	manifest RoleBinding >"$TMP/rb.json"
	manifest ServiceAccount >"$TMP/sa.json"
	jq -e --slurpfile sa "$TMP/sa.json" --slurpfile role "$TMP/role.json" '
		.metadata.namespace == $role[0].metadata.namespace and
		.roleRef == {"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":$role[0].metadata.name} and
		.subjects == [{"kind":"ServiceAccount","name":$sa[0].metadata.name,"namespace":$sa[0].metadata.namespace}]' "$TMP/rb.json"
	# the objects go where the Role is
	manifest ConfigMap | jq -r '.data["kwh-handle.conf"]' >"$TMP/conf"
	grep -qx 'namespace ci' "$TMP/conf"
	grep -qx 'allow-namespace ci' "$TMP/conf"
	grep -qx 'allow-kind argoproj.io/Workflow' "$TMP/conf"
}

@test "RBAC: the Role grants exactly what kwh-apply asked for, in-cluster, with the shipped settings" {
	need_chain
	# the token authenticates as the Deployment's service account
	manifest ServiceAccount >"$TMP/sa.json"
	sa_user=system:serviceaccount:$(jq -r '.metadata.namespace + ":" + .metadata.name' "$TMP/sa.json")
	apiserver_start --token-user "$sa_user"
	deploy_repo; deploy_payload
	printf '%s\n' "$SECRET_VALUE" >"$TMP/secret"
	# the pod's service account files and environment
	mkdir "$TMP/sa"
	cp "$APISERVER_DIR/token" "$TMP/sa/token"
	cp "$APISERVER_CA" "$TMP/sa/ca.crt"
	printf kwh >"$TMP/sa/namespace"
	export KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=$APISERVER_PORT
	# the ConfigMap's options; the pod's paths replaced by this test's
	manifest ConfigMap | jq -r '.data["kwh-handle.conf"]' |
		sed -e "s|^secret-file .*|secret-file $TMP/secret|" -e '/^ssh-key /d' -e '/^known-hosts /d' \
			-e "s|^log .*|log $TMP/log|" -e "s|^cache .*|cache $TMP/cache|" \
			-e "s|^spool .*|spool $TMP/spool|" >"$TMP/kwh-handle.conf"
	export KUBERNETES_SERVICE_HOST KUBERNETES_SERVICE_PORT
	KWH_CMD=(kwh-handle --config "$TMP/kwh-handle.conf" --service-account-dir "$TMP/sa"
		--remote "file://$TMP/srv/{full_name}.git" --allow-remote-host file://)
	# a push (generateName, --dedupe: POST), its redelivery (POST 409, GET)
	signed_request d-rbac
	"${KWH_CMD[@]}" <"$TMP/req" >"$TMP/out"
	assert_equal "$(http_status "$TMP/out")" 201
	"${KWH_CMD[@]}" <"$TMP/req" >"$TMP/out"
	assert_equal "$(http_status "$TMP/out")" 200
	http_body "$TMP/out" | jq -e '.results[0].action == "exists"'
	# a named Workflow (server-side apply: GET, PATCH), twice
	sed -i 's/^  generateName: ci-hello-$/  name: ci-named/' "$TMP/work/.ci/workflow.yaml"
	git_quiet -C "$TMP/work" commit -q -am named
	git_quiet -C "$TMP/work" push -q "$TMP/srv/octo/repo.git" main
	REV=$(git_quiet -C "$TMP/work" rev-parse HEAD); deploy_payload
	signed_request d-named
	"${KWH_CMD[@]}" <"$TMP/req" >"$TMP/out"
	assert_equal "$(http_status "$TMP/out")" 201
	signed_request d-named-2
	"${KWH_CMD[@]}" <"$TMP/req" >"$TMP/out"
	assert_equal "$(http_status "$TMP/out")" 200
	apiserver_objects | jq -e 'map(select(.kind == "Workflow" and .metadata.namespace == "ci")) | length == 2'
	# every request came with the service account's token
	apiserver_requests >"$TMP/requests.json"
	jq -e --arg u "$sa_user" 'length > 0 and all(.auth == "Bearer" and .user == $u)' "$TMP/requests.json"
	# method + path → what RBAC checks; discovery (/api, /apis, /apis/G/V) is
	# open to every authenticated user (system:discovery) and needs no rule
	jq -c '[.[] | .path as $p |
		($p | capture("^/apis?/((?<group>[^/]+)/)?(?<version>v[^/]+)/namespaces/(?<ns>[^/]+)/(?<resource>[^/]+)(/(?<name>[^/]+))?$")) as $m
		| {group: ($m.group // ""), resource: $m.resource, ns: $m.ns,
		   verb: ({"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[.method]
		          // (if $m.name then "get" else "list" end))}] | unique' "$TMP/requests.json" >"$TMP/needed.json"
	jq -e '[.[] | .path | select(test("^/apis?/([^/]+/)?v[^/]+/namespaces/") | not)] |
		all(test("^/api(s)?(/[^/]+)?(/[^/]+)?$"))' "$TMP/requests.json"
	cat "$TMP/needed.json"
	manifest Role | jq -c '.metadata.namespace as $ns | [.rules[] | .apiGroups[] as $g | .resources[] as $r |
		.verbs[] as $v | {group: $g, resource: $r, ns: $ns, verb: $v}] | unique' >"$TMP/granted.json"
	assert_equal "$(cat "$TMP/needed.json")" "$(cat "$TMP/granted.json")"
}
