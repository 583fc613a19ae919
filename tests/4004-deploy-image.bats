#!/usr/bin/env bats
# The Dockerfile is built and its image run (issue 16, point 7): buildah
# builds it with chroot isolation FROM a minimal root of the Debian release
# this runs on (debootstrap, imported under the name FROM takes), then runs
# the image's own command, as the Deployment does, with the settings and
# secrets mounted where the Deployment mounts them, on the host network:
# a signed push of a local repository creates its Workflow in the test API
# server.  Skips, saying why, where buildah cannot work (not root, not
# installed); `make check` as root (.ci/run) installs it and runs it.
# Bounded: debootstrap and the build under timeouts, the .deb files and the
# base root cached in $KWH_IMAGE_CACHE (tests/lib/image.bash).

load test_helper

setup() {
	image_need
	setup_tmp
	export HOME=$TMP
	LISTENER=
}

teardown() {
	local pid
	if [ -n "${PORT:-}" ]; then
		# the server inside the image (buildah run's child): by its socket
		for pid in $(ss -Hltnp "( sport = :$PORT )" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
			kill "$pid" 2>/dev/null || true
		done
	fi
	if [ -n "$LISTENER" ]; then
		kill "$LISTENER" 2>/dev/null || true
		wait "$LISTENER" 2>/dev/null || true
	fi
	apiserver_stop
	image_clean
}

@test "the image builds FROM this release's root, and its command, as the Deployment runs it, creates a signed push's Workflow" {
	run image_base
	[ "$status" -eq 0 ] || fail "the base image: $(tail -n 20 <<<"$output")"
	SECONDS=0
	run image_build localhost/kwh:test
	[ "$status" -eq 0 ] || fail "the build: $(tail -n 30 <<<"$output")"
	echo "# built in $SECONDS s" >&3
	# what the image runs: the Deployment's command, as uid 65532
	image_buildah inspect --type image localhost/kwh:test >"$TMP/inspect.json"
	cmd=$(jq -c .OCIv1.config.Cmd "$TMP/inspect.json")
	jq -e '.[0] == "kwh-handle" and index("--listen") != null and index("--config") != null' <<<"$cmd"
	jq -e '.OCIv1.config.User == "65532:65532"' "$TMP/inspect.json"
	config=$(jq -r '.[index("--config") + 1]' <<<"$cmd")

	# what the Deployment mounts: the ConfigMap's options at $config, the
	# Secret's files under /etc/kwh/secret, read by uid 65532
	apiserver_start
	mkdir -p "$TMP/etc/config" "$TMP/etc/secret"
	ci_repo "$TMP/repo"
	ci_push file:///srv/repo >"$TMP/push.json"
	printf 'image-secret\n' >"$TMP/etc/secret/webhook-secret"
	cp "$APISERVER_CA" "$TMP/etc/secret/ca.crt"
	APISERVER_CA=/etc/kwh/secret/ca.crt write_kubeconfig "$TMP/etc/secret/kubeconfig" "    token: $APISERVER_TOKEN"
	cat >"$TMP/etc/config/$(basename "$config")" <<-EOF
	# as share/kubernetes/configmap.yaml, with a kubeconfig for the test API server
	secret-file /etc/kwh/secret/webhook-secret
	kubeconfig /etc/kwh/secret/kubeconfig
	cache /var/cache/kwh
	spool /var/spool/kwh
	allow-remote-host file://
	workers 2
	log stderr
	EOF
	chmod 600 "$TMP/etc/secret/"*
	chown -R 65532:65532 "$TMP/etc" "$TMP/repo"
	# the image's command on a free port of the host network
	PORT=$(free_port)
	mapfile -t argv < <(jq -r --arg l "127.0.0.1:$PORT" '.[index("--listen") + 1] = $l | .[]' <<<"$cmd")
	c=$(image_buildah from --pull=never $(image_ulimits) localhost/kwh:test)
	image_buildah run --isolation chroot --network host \
		-v "$TMP/etc/config:$(dirname "$config"):ro" -v "$TMP/etc/secret:/etc/kwh/secret:ro" \
		-v "$TMP/repo:/srv/repo:ro" "$c" -- "${argv[@]}" >"$TMP/image.log" 2>&1 3>&- &
	LISTENER=$!
	wait_port "$PORT" 30 || fail "the image's kwh-handle did not listen: $(cat "$TMP/image.log")"

	run -0 curl -sS --max-time 10 "http://127.0.0.1:$PORT/-/alive"
	run -0 curl -sS --max-time 10 -o "$TMP/ready" -w '%{http_code}' "http://127.0.0.1:$PORT/-/ready"
	assert_output 200
	run -0 curl -sS --max-time 30 -o "$TMP/resp" -w '%{http_code}' \
		-H 'Content-Type: application/json' -H 'X-GitHub-Event: push' -H 'X-GitHub-Delivery: d-image' \
		-H "X-Hub-Signature-256: $(sig_of "$TMP/push.json" "$TMP/etc/secret/webhook-secret")" \
		--data-binary @"$TMP/push.json" "http://127.0.0.1:$PORT/"
	assert_output 201 || fail "answer: $(cat "$TMP/resp"); log: $(cat "$TMP/image.log")"
	run -0 apiserver_objects
	jq -e --arg rev "$REV" 'map(select(.kind == "Workflow")) | length == 1 and
		(.[0].metadata.annotations."k8s-webhook-handler.io/revision" == $rev)' <<<"$output"
	jq -e '.results[0].name | length > 0' "$TMP/resp"
	# the server inside the image logged it, to stderr as configured
	grep -q 'listening on 127.0.0.1' "$TMP/image.log"
	grep -q 'd-image' "$TMP/image.log"
}
