#!/usr/bin/env bats
# --statsd HOST:PORT: the per-connection chain (separate processes) and
# the one-shot kwh-handle send their counts as statsd lines over UDP; a
# python3 listener on 127.0.0.1 receives them.  statsd being away never
# fails a delivery.

load test_helper

setup() {
	setup_tmp
	handler_setup statsd-secret
	unset UDP_PID
}

teardown() {
	[ -z "${UDP_PID:-}" ] || stop_pid "$UDP_PID"
	apiserver_stop
}

# udp_listen: a statsd stand-in on 127.0.0.1 (an unused port): each
# datagram one line of $TMP/statsd; sets STATSD (HOST:PORT).  It stops
# by itself after 60 s.
udp_listen() {
	: >"$TMP/statsd"
	python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
s.settimeout(0.5)
end = time.time() + 60
with open(sys.argv[1], "ab", buffering=0) as f:
    while time.time() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        f.write(d + b"\n")
' "$TMP/statsd" >"$TMP/udp.port" &
	UDP_PID=$!
	local n=100
	until [ -s "$TMP/udp.port" ]; do
		n=$((n - 1)); [ "$n" -gt 0 ] || return 1
		sleep 0.05
	done
	STATSD=127.0.0.1:$(cat "$TMP/udp.port")
}

# received N: waits (5 s at most) until the listener holds N lines.
received() {
	local n=100
	until [ "$(wc -l <"$TMP/statsd")" -ge "$1" ]; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || { echo "got $(wc -l <"$TMP/statsd") lines, not $1:" >&2; cat "$TMP/statsd" >&2; return 1; }
		sleep 0.05
	done
}

# chain: the five stages on $TMP/req, each with --statsd; the response in
# $TMP/resp.
chain() {
	kwh-verify "${VOPTS[@]}" --statsd "$STATSD" --log "$TMP/log" <"$TMP/req" |
		kwh-annotate --statsd "$STATSD" --log "$TMP/log" |
		kwh-fetch "${FOPTS[@]}" --statsd "$STATSD" --log "$TMP/log" |
		kwh-apply "${POPTS[@]}" --statsd "$STATSD" --log "$TMP/log" |
		kwh-respond --statsd "$STATSD" --log "$TMP/log" >"$TMP/resp" || true
}

@test "the chain: a delivery counter from kwh-respond, a timer from each stage, fetch and API counts" {
	udp_listen
	kwh-sign --event push --delivery s-1 --secret-file "$TMP/secret" "$TMP/push.json" >"$TMP/req"
	chain
	assert_equal "$(http_status "$TMP/resp")" 201
	# 1 delivery + 5 stage timers + 2 fetch lines + the API requests
	received 9
	grep -qx 'kwh.deliveries.push.201:1|c' "$TMP/statsd"
	for s in verify annotate fetch apply respond; do
		[ "$(grep -cE "^kwh\.stage\.$s:[0-9]+\.[0-9]{3}\|ms$" "$TMP/statsd")" = 1 ]
	done
	grep -qx 'kwh.git.fetches.ok:1|c' "$TMP/statsd"
	grep -qE '^kwh\.git\.fetch_bytes:[1-9][0-9]*\|c$' "$TMP/statsd"
	grep -qx 'kwh.kube.requests.201:1|c' "$TMP/statsd"
	# nothing but statsd lines
	run ! grep -vE '^kwh\.[a-z_.0-9]+:[0-9.]+\|(c|ms)$' "$TMP/statsd"
}

@test "the chain: a refused delivery counts once, under a bounded event name" {
	udp_listen
	kwh-sign --event 'x.y' --delivery s-2 --secret-file "$TMP/other" "$TMP/push.json" >"$TMP/req"
	chain
	assert_equal "$(http_status "$TMP/resp")" 401
	received 3
	# the stages after kwh-verify pass the envelope through: no timer
	grep -qx 'kwh.deliveries.other.401:1|c' "$TMP/statsd"
	grep -qE '^kwh\.stage\.verify:' "$TMP/statsd"
	grep -qE '^kwh\.stage\.respond:' "$TMP/statsd"
	run ! grep -qE '^kwh\.stage\.(annotate|fetch|apply):' "$TMP/statsd"
}

@test "kwh-handle one-shot sends the same counts" {
	udp_listen
	kwh-sign --event push --delivery s-3 --secret-file "$TMP/secret" "$TMP/push.json" >"$TMP/req"
	kwh-handle "${VOPTS[@]}" "${FOPTS[@]}" "${POPTS[@]}" --statsd "$STATSD" \
		--log "$TMP/log" <"$TMP/req" >"$TMP/resp"
	assert_equal "$(http_status "$TMP/resp")" 201
	received 9
	grep -qx 'kwh.deliveries.push.201:1|c' "$TMP/statsd"
	[ "$(grep -cE '^kwh\.stage\.[a-z]+:[0-9.]+\|ms$' "$TMP/statsd")" = 5 ]
}

@test "no statsd listening: the delivery is handled as without --statsd" {
	local port
	port=$(free_port)
	STATSD=127.0.0.1:$port
	kwh-sign --event push --delivery s-4 --secret-file "$TMP/secret" "$TMP/push.json" >"$TMP/req"
	chain
	assert_equal "$(http_status "$TMP/resp")" 201
	run ! grep -q 'level=error' "$TMP/log"
}

@test "--statsd: a bad address is a usage error" {
	run -100 kwh-respond --statsd nocolon
	assert_output --partial "--statsd: 'nocolon' is not HOST:PORT"
	run -100 kwh-verify --statsd 127.0.0.1: --insecure
	assert_output --partial "is not HOST:PORT"
	run -100 kwh-fetch --statsd host.invalid:8125
	assert_output --partial "--statsd host.invalid:8125"
}
