#!/usr/bin/env bats
# The Dockerfile, as written (tests/4004-deploy-image.bats builds it with
# buildah and runs the image): the runtime stage installs the package of
# every library the tools link, its command is the Deployment's; and
# kwh.env.example documents exactly the handler's variables.

load test_helper
load 4000-deploy-lib

setup() {
	setup_tmp
}

@test "Dockerfile: the runtime stage installs the package of every library the tools link" {
	need_chain
	local d=$TOP_DIR/Dockerfile t so path pkg
	# the build stage lists the packages; the runtime stage installs them
	grep -q 'sh share/kwh/runtime-packages /out/usr/bin/kwh-\* > /runtime-packages' "$d"
	grep -q 'COPY --from=build /runtime-packages /tmp/runtime-packages' "$d"
	grep -q '$(cat /tmp/runtime-packages) ca-certificates' "$d"
	# and what runtime-packages prints covers every library each tool needs
	run -0 sh "$TOP_DIR/share/kwh/runtime-packages" "$KWH_BIN"/kwh-verify "$KWH_BIN"/kwh-annotate \
	    "$KWH_BIN"/kwh-fetch "$KWH_BIN"/kwh-apply "$KWH_BIN"/kwh-respond "$KWH_BIN"/kwh-sign \
	    "$KWH_BIN"/kwh-handle "$KWH_BIN"/kwh-replay
	echo "$output" >"$TMP/pkgs"
	for t in kwh-verify kwh-annotate kwh-fetch kwh-apply kwh-respond kwh-sign kwh-handle kwh-replay; do
		[ -x "$KWH_BIN/$t" ]
		for so in $(readelf -d "$KWH_BIN/$t" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
			case $so in libasan* | libubsan*) continue ;; esac
			path=$(ldd "$KWH_BIN/$t" | awk -v so="$so" '$1 == so { print $3 }')
			[ -n "$path" ] || fail "$t: ldd does not resolve $so"
			pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null || dpkg -S "$path")
			pkg=${pkg%%:*}
			grep -qx "$pkg" "$TMP/pkgs" || fail "$pkg (for $so of $t) is not in runtime-packages' list"
		done
	done
	# a program that is not there is an error, not an empty list
	run ! sh "$TOP_DIR/share/kwh/runtime-packages" "$TMP/none"
}

@test "Dockerfile: non-root, port 8080, its command is the Deployment's, the tools installed where it runs them" {
	local d=$TOP_DIR/Dockerfile
	# both stages FROM one base, Debian 12 unless told (--build-arg BASE)
	grep -qx 'ARG BASE=debian:12-slim' "$d"
	grep -qx 'FROM ${BASE} AS build' "$d"
	[ "$(grep -c '^FROM ' "$d")" -eq 2 ]
	grep -qx 'FROM ${BASE}' "$d"
	grep -qx 'USER 65532:65532' "$d"
	grep -qx 'EXPOSE 8080' "$d"
	grep -q 'KWH_DEPS=build sh share/kwh/install-deps' "$d"
	grep -q 'make install DESTDIR=/out PREFIX=/usr' "$d"
	# make install puts the handler where the image's command runs it.
	make -s -C "$TOP_DIR" install DESTDIR="$TMP/root" PREFIX=/usr >/dev/null
	[ -x "$TMP/root/usr/share/kwh/kwh-handler" ]
	[ -f "$TMP/root/usr/share/kwh/systemd/kwh@.service" ]
	sed -n 's/^CMD //p' "$d" | jq -c . >"$TMP/cmd"
	# the Deployment as kubectl reads it (recorded by tests/record-kubectl)
	golden_current kubernetes
	jq -c '.spec.template.spec.containers[0].command' "$GOLDEN/kubernetes/deployment.json" >"$TMP/deploy-cmd"
	assert_equal "$(cat "$TMP/cmd")" "$(cat "$TMP/deploy-cmd")"
	jq -e '.[0] == "kwh-handle" and index("--listen") != null' "$TMP/cmd"
	[ -x "$TMP/root/usr/bin/kwh-handle" ]
	# .dockerignore keeps host-built programs out, not the sources
	grep -qx 'bin/kwh-\*' "$TOP_DIR/.dockerignore"
	grep -qx '!bin/kwh-\*.c' "$TOP_DIR/.dockerignore"
}

@test "kwh.env.example documents exactly the variables the handler knows, and they all parse" {
	# the handler's list of known names
	sed -n '/^\t\tKWH_ALLOW_KINDS | /,/) ;;$/p' "$HANDLER" | tr -c 'A-Z_0-9\n' ' ' | tr ' ' '\n' |
		grep '^KWH_' | sort -u >"$TMP/known"
	[ "$(wc -l <"$TMP/known")" -ge 20 ]
	# KWH_ENV_FILE is read before the file, so it is not in the file
	sed -n 's/^#\{0,1\}\(KWH_[A-Z_0-9]*\)=.*/\1/p' "$TOP_DIR/share/kwh/kwh.env.example" | sort -u >"$TMP/documented"
	diff "$TMP/known" "$TMP/documented"
	# every example line, uncommented, is accepted by the handler
	need_chain
	sed -n 's/^#\(KWH_[A-Z_0-9]*=.*\)/\1/p' "$TOP_DIR/share/kwh/kwh.env.example" >"$TMP/kwh.env"
	printf 'GET /-/alive HTTP/1.1\r\nHost: x\r\n\r\n' >"$TMP/req"
	printf 'x\n' >"$TMP/s"
	# (the environment wins over the file: paths of this machine)
	KWH_LOG=$TMP/log KWH_DRY_RUN=client KWH_BIN=$KWH_BIN \
	KWH_ENV_FILE=$TMP/kwh.env KWH_SECRET_FILE=$TMP/s KWH_CACHE=$TMP/cache KWH_KUBECONFIG= \
		KWH_SSH_KEY= KWH_KNOWN_HOSTS= KWH_TOKEN_FILE= KWH_CA_FILE= "$HANDLER" <"$TMP/req" >"$TMP/out" || true
	one_http_response "$TMP/out"
	assert_equal "$(http_status "$TMP/out")" 200
	run grep 'prog=kwh-handler' "$TMP/log"
	assert_failure
}
