#!/usr/bin/env bash
# tests/load/load.sh — the bounded load test behind `make load`.
#
# The whole handler (share/kwh/kwh-handler) behind socat on 127.0.0.1, the
# test API server (tests/k8s-apiserver), a local git repository; signed
# pushes sent with ab(1) at concurrency 1, 8 and 32.  Checks: no failed or
# non-2xx request, exactly one Workflow per request that was answered 201
# (KWH_DEDUPE=no: each request is its own run) and exactly one for a
# delivery sent many times at once under KWH_DEDUPE=yes, no process of the
# chain and no file descriptor of socat left afterwards.  Prints p50/p99
# latency per phase (tests/load/README.md keeps the last figures).
#
# Bounded: a fixed number of requests per phase (LOAD_N1, LOAD_N8, LOAD_N32,
# LOAD_NDEDUPE; 2,000 + 200 by default) and each ab run under `timeout`
# (LOAD_TIMEOUT seconds, default 900).  Exit 0 when every check held.
#
# Environment: KWH_BIN (default: the tree's bin/), LOAD_KEEP=1 keeps the
# scratch directory.
set -euo pipefail

TOP_DIR=$(cd "$(dirname "$0")/../.." && pwd)
TESTS_DIR=$TOP_DIR/tests
FIXTURES=$TESTS_DIR/fixtures
KWH_BIN=${KWH_BIN:-$TOP_DIR/bin}
PATH=$KWH_BIN:$PATH
export KWH_BIN PATH TESTS_DIR FIXTURES TOP_DIR

N1=${LOAD_N1:-200}
N8=${LOAD_N8:-800}
N32=${LOAD_N32:-1000}
NDEDUPE=${LOAD_NDEDUPE:-200}
LIMIT=${LOAD_TIMEOUT:-900}

for t in kwh-verify kwh-annotate kwh-fetch kwh-apply kwh-respond kwh-sign; do
	[ -x "$KWH_BIN/$t" ] || { echo "load: $t is not built in $KWH_BIN" >&2; exit 111; }
done
for t in ab socat curl jq git python3; do
	command -v "$t" >/dev/null || { echo "load: $t is needed (ab: apt-get install apache2-utils)" >&2; exit 111; }
done

# --- what tests/test_helper.bash gives the bats files -----------------------
free_port() {
	local p _
	for _ in $(seq 1 100); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}
wait_port() {
	local n=$((${2:-10} * 20))
	while [ "$n" -gt 0 ]; do
		ss -Hltn "( sport = :$1 )" 2>/dev/null | grep -q . && return 0
		sleep 0.05; n=$((n - 1))
	done
	echo "load: nothing listens on 127.0.0.1:$1" >&2
	return 1
}
# shellcheck source=/dev/null
for f in "$TESTS_DIR"/lib/*.bash "$TESTS_DIR/4000-deploy-lib.bash"; do . "$f"; done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/kwh-load.XXXXXX")
export TMP HOME=$TMP BATS_TEST_TMPDIR=$TMP
SOCAT_PID=
cleanup() {
	if [ -n "$SOCAT_PID" ]; then kill "$SOCAT_PID" 2>/dev/null || true; wait "$SOCAT_PID" 2>/dev/null || true; fi
	apiserver_stop
	[ -n "${LOAD_KEEP:-}" ] || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fails=0
check() { # check DESCRIPTION COMMAND...: one check, said on stdout
	if "${@:2}"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi
}

apiserver_start
deploy_repo
deploy_payload
deploy_env KWH_BUDGET=30 KWH_DEDUPE=no
SIG=$(sig_of "$TMP/push.json" "$TMP/secret")

PORT=$(free_port)
env -u APISERVER_TOKEN socat -t 30 TCP-LISTEN:"$PORT",bind=127.0.0.1,reuseaddr,fork,backlog=128,max-children=64 \
	EXEC:"$HANDLER" 2>"$TMP/socat.err" &
SOCAT_PID=$!
wait_port "$PORT"

# the socat tree: every process below socat (recursively)
tree() {
	local p c
	for p in $(pgrep -P "$1" || true); do
		echo "$p"
		tree "$p"
	done
}
fds() { find "/proc/$SOCAT_PID/fd" -mindepth 1 -maxdepth 1 | wc -l; }

# one warm-up delivery (the git cache and discovery cache are filled)
post_push "$PORT" d-warm-up
[ "$CODE" = 201 ] || { echo "load: the warm-up delivery was answered $CODE: $BODY" >&2; exit 1; }
FD0=$(fds)
workflows() { apiserver_objects | jq 'map(select(.kind == "Workflow")) | length'; }
W=$(workflows)

printf '%-26s %6s %5s %8s %8s %8s %9s %9s\n' phase requests conc 2xx failed req/s p50_ms p99_ms >"$TMP/table"

# run_ab NAME N C DELIVERY: ab, then its figures into the table; sets OK2XX.
run_ab() {
	local name=$1 n=$2 c=$3 d=$4 out=$TMP/ab-$1.txt failed non2xx rps p50 p99
	timeout "$LIMIT" ab -q -n "$n" -c "$c" -s 60 -p "$TMP/push.json" -T application/json \
		-H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: $d" -H "X-Hub-Signature-256: $SIG" \
		"http://127.0.0.1:$PORT/" >"$out" 2>&1 || { cat "$out" >&2; echo "load: ab failed" >&2; fails=$((fails + 1)); }
	# (ab counts a body whose length differs from the first one's as a
	# "Length" failure: a 200 "exists" next to a 201 is one; only
	# connect, receive and exception failures are errors)
	failed=$(sed -n 's/^ *(Connect: \([0-9]*\), Receive: \([0-9]*\), Length: [0-9]*, Exceptions: \([0-9]*\))/\1 \2 \3/p' "$out" |
		awk '{ print $1 + $2 + $3 }')
	grep -q '^Failed requests: *[0-9]' "$out" && failed=${failed:-0}
	non2xx=$(sed -n 's/^Non-2xx responses: *//p' "$out")
	rps=$(sed -n 's/^Requests per second: *\([0-9.]*\).*/\1/p' "$out")
	p50=$(awk '$1 == "50%" { print $2 }' "$out")
	p99=$(awk '$1 == "99%" { print $2 }' "$out")
	OK2XX=$((n - ${failed:-$n} - ${non2xx:-0}))
	printf '%-26s %6s %5s %8s %8s %8s %9s %9s\n' "$name" "$n" "$c" "$OK2XX" "${failed:-?}" "${rps:-?}" "${p50:-?}" "${p99:-?}" >>"$TMP/table"
	check "$name: $n requests, no failed request" [ "${failed:-x}" = 0 ]
	check "$name: no non-2xx response" [ -z "$non2xx" ]
}

t0=$SECONDS
total=0
for phase in "1 $N1" "8 $N8" "32 $N32"; do
	# shellcheck disable=SC2086 # two words: concurrency and count
	set -- $phase
	run_ab "no-dedupe-c$1" "$2" "$1" "d-load-c$1"
	total=$((total + $2))
	W2=$(workflows)
	check "no-dedupe-c$1: one Workflow per 2xx ($OK2XX), $((W2 - W)) created" [ $((W2 - W)) -eq "$OK2XX" ]
	W=$W2
done

# one delivery id sent $NDEDUPE times, 32 at once, under KWH_DEDUPE=yes:
# exactly one Workflow
sed -i 's/^KWH_DEDUPE=no$/KWH_DEDUPE=yes/' "$TMP/kwh.env"
run_ab dedupe-same-delivery-c32 "$NDEDUPE" 32 d-load-dedupe
total=$((total + NDEDUPE))
W2=$(workflows)
check "dedupe-same-delivery-c32: exactly one Workflow for the delivery ($((W2 - W)) created)" [ $((W2 - W)) -eq 1 ]
elapsed=$((SECONDS - t0))

# nothing left behind: no process under socat once the last answer is out
# (give the last chains a moment to exit), socat holds the fds it held
# before, and no chain process of this run is alive
for _ in $(seq 1 100); do
	[ -z "$(tree "$SOCAT_PID")" ] && break
	sleep 0.1
done
left=$(tree "$SOCAT_PID" | wc -l)
check "no process left under socat ($left)" [ "$left" -eq 0 ]
FD1=$(fds)
check "socat's file descriptors: $FD0 before, $FD1 after" [ "$FD0" -eq "$FD1" ]
stray=$(pgrep -f -- "--log $TMP/log" | wc -l || true)
check "no kwh-* process of this run alive ($stray)" [ "$stray" -eq 0 ]
errors=$(grep -c 'level=error' "$TMP/log" || true)
check "no error in the chain's log ($errors)" [ "$errors" -eq 0 ]
check "nothing on socat's stderr" [ ! -s "$TMP/socat.err" ]

echo
echo "kwh load: $total signed pushes in ${elapsed} s through $HANDLER ($(date -u +%Y-%m-%d), $(nproc) CPUs)"
cat "$TMP/table"
echo "Workflows in the API server: $(workflows)"
[ "$fails" -eq 0 ] && echo "load: all checks passed" || echo "load: $fails check(s) failed"
[ "$fails" -eq 0 ]
