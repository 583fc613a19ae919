#!/usr/bin/env bats
# share/systemd (kwh.socket + kwh@.service), share/inetd, share/socat: the
# units pass systemd-analyze, and the handler answers a signed push 201
# under systemd-socket-activate (per-connection, inetd style, as
# Accept=yes runs it) and under share/socat/kwh-socat.

load test_helper
load 4000-deploy-lib

setup() {
	deploy_setup
}

teardown() {
	deploy_teardown
}

# units: copies of the units into $TMP/units, ExecStart= pointing at this
# tree's handler (systemd-analyze wants the program to exist).
units() {
	mkdir -p "$TMP/units"
	cp "$TOP_DIR"/share/systemd/kwh.socket "$TOP_DIR"/share/systemd/kwh@.service "$TMP/units/"
	sed -i "s|^ExecStart=/usr/share/kwh/kwh-handler\$|ExecStart=$HANDLER|" "$TMP/units/kwh@.service"
	grep -q "^ExecStart=$HANDLER\$" "$TMP/units/kwh@.service"
}

@test "systemd-analyze verify: both units load without a warning" {
	command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
	units
	cd "$TMP/units"
	run systemd-analyze verify --man=no ./kwh.socket ./kwh@.service
	assert_success
	assert_output ''
	# (and it does warn about a key it does not know)
	echo 'NoSuchSetting=yes' >>kwh@.service
	run systemd-analyze verify --man=no ./kwh.socket ./kwh@.service
	assert_output --partial "Unknown key 'NoSuchSetting'"
}

@test "systemd-analyze security: the service's exposure is low (below 2.0 of 10)" {
	command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
	units
	cd "$TMP/units"
	run systemd-analyze security --offline=yes --no-pager ./kwh@.service
	assert_success
	level=$(printf '%s\n' "$output" | sed -n 's/.*Overall exposure level for kwh@[^:]*: \([0-9.]*\).*/\1/p')
	[ -n "$level" ]
	echo "exposure $level"
	awk -v l="$level" 'BEGIN { exit !(l < 2.0) }'
}

@test "the units say what the documentation says" {
	s=$TOP_DIR/share/systemd/kwh.socket u=$TOP_DIR/share/systemd/kwh@.service
	grep -qx 'Accept=yes' "$s"
	grep -qx 'ListenStream=8080' "$s"
	grep -qx 'StandardInput=socket' "$u"
	grep -qx 'StandardOutput=socket' "$u"
	grep -qx 'StandardError=journal' "$u"
	grep -qx 'DynamicUser=yes' "$u"
	grep -qx 'ProtectSystem=strict' "$u"
	grep -qx 'NoNewPrivileges=yes' "$u"
	grep -qx 'PrivateTmp=yes' "$u"
	grep -qx 'CacheDirectory=kwh' "$u"
	grep -qx 'LoadCredential=webhook-secret:/etc/kwh/webhook-secret' "$u"
	grep -qx 'ExecStart=/usr/share/kwh/kwh-handler' "$u"
	grep -Eqx 'RuntimeMaxSec=[0-9]+' "$u"
	# no secret or setting on the command line
	[ "$(grep -c '^ExecStart=' "$u")" = 1 ]
}

@test "systemd-socket-activate --inetd: a signed push is answered 201, credentials and cache as systemd sets them" {
	command -v systemd-socket-activate >/dev/null || skip "systemd-socket-activate is not installed"
	need_chain
	apiserver_start
	deploy_repo; deploy_payload; deploy_env
	# as kwh@.service runs it: the secret as a credential, the cache in
	# CACHE_DIRECTORY, the log on stderr (the journal there, a file here)
	sed -i '/^KWH_SECRET_FILE=/d; /^KWH_CACHE=/d; /^KWH_LOG=/d' "$TMP/kwh.env"
	mkdir "$TMP/creds" "$TMP/sdcache"
	cp "$TMP/secret" "$TMP/creds/webhook-secret"
	PORT=$(free_port)
	CREDENTIALS_DIRECTORY=$TMP/creds CACHE_DIRECTORY=$TMP/sdcache \
		systemd-socket-activate -l 127.0.0.1:"$PORT" --accept --inetd \
		-E PATH -E HOME -E KWH_BIN -E KWH_ENV_FILE -E CREDENTIALS_DIRECTORY -E CACHE_DIRECTORY \
		"$HANDLER" 2>"$TMP/journal" &
	SOCAT_PID=$!
	wait_port "$PORT"
	post_push "$PORT" d-ssa
	assert_equal "$CODE" 201
	echo "$BODY" | jq -e '.results[0].action == "created" and .results[0].namespace == "ci"'
	apiserver_objects | jq -e --arg rev "$REV" 'map(select(.kind == "Workflow")) | length == 1 and
		.[0].metadata.annotations["k8s-webhook-handler.io/revision"] == $rev'
	grep -q 'prog=kwh-verify .*delivery=d-ssa' "$TMP/journal"
	grep -q 'prog=kwh-apply .*delivery=d-ssa' "$TMP/journal"
	ls -d "$TMP"/sdcache/git/*-octo-repo.git
	# a second connection: another instance, the cache reused; the same
	# signed push under another delivery id finds its Workflow (dedupe)
	post_push "$PORT" d-ssa-2
	assert_equal "$CODE" 200
	echo "$BODY" | jq -e '.results[0].action == "exists"'
	apiserver_objects | jq -e 'map(select(.kind == "Workflow")) | length == 1'
}

@test "systemd-socket-activate --inetd: GET /-/alive answers 200, and the response is all that is sent" {
	command -v systemd-socket-activate >/dev/null || skip "systemd-socket-activate is not installed"
	need_chain
	deploy_env KWH_DRY_RUN=client
	PORT=$(free_port)
	systemd-socket-activate -l 127.0.0.1:"$PORT" --accept --inetd \
		-E PATH -E HOME -E KWH_BIN -E KWH_ENV_FILE "$HANDLER" 2>"$TMP/journal" &
	SOCAT_PID=$!
	wait_port "$PORT"
	printf 'GET /-/alive HTTP/1.1\r\nHost: x\r\n\r\n' |
		socat -t 10 - TCP:127.0.0.1:"$PORT" >"$TMP/resp"
	one_http_response "$TMP/resp"
	assert_equal "$(http_status "$TMP/resp")" 200
}

@test "share/socat/kwh-socat: a signed push is answered 201" {
	need_chain
	apiserver_start
	deploy_repo; deploy_payload; deploy_env
	PORT=$(free_port)
	env -u APISERVER_TOKEN "$TOP_DIR/share/socat/kwh-socat" "$PORT" 127.0.0.1 2>"$TMP/socat.err" &
	SOCAT_PID=$!
	wait_port "$PORT"
	post_push "$PORT" d-kwh-socat
	assert_equal "$CODE" 201
	apiserver_objects | jq -e 'map(select(.kind == "Workflow")) | length == 1'
}

@test "share/inetd/kwh.inetd.conf: one service line naming the handler" {
	run grep -v -e '^#' -e '^$' "$TOP_DIR/share/inetd/kwh.inetd.conf"
	assert_success
	assert_equal "${#lines[@]}" 1
	read -r service type proto wait user program argv0 rest <<<"${lines[0]}"
	assert_equal "$type $proto" "stream tcp"
	[[ $wait == nowait* ]]
	assert_equal "$program" /usr/share/kwh/kwh-handler
	assert_equal "$argv0" kwh-handler
	assert_equal "$rest" ''
	[ "$user" != root ]
}
