#!/bin/bash
# bench/apply.sh [RUNS] — creating one generateName Workflow against the
# test API server (tests/k8s-apiserver): kwh-apply with its discovery cache
# warm versus `kubectl create -f` of the same manifest with its cache warm
# (KUBECTL, default the kubectl on PATH: Debian 13's kubernetes-client).
# Prints the median wall time of each and the ratio.  KWH_BIN selects the kwh-apply build.
set -eu
runs=${1:-21}
top=$(cd "$(dirname "$0")/.." && pwd)
KWH_BIN=${KWH_BIN:-$top/bin}
KUBECTL=${KUBECTL:-$(command -v kubectl || echo kubectl)}
export TESTS_DIR=$top/tests BATS_TEST_TMPDIR
BATS_TEST_TMPDIR=$(mktemp -d /tmp/kwh-bench.XXXXXX)
wait_port() {
	local port=$1 n=200
	while [ "$n" -gt 0 ]; do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
		sleep 0.05; n=$((n - 1))
	done
	return 1
}
. "$top/tests/lib/apiserver.bash"
apiserver_start
trap 'apiserver_stop; rm -rf "$BATS_TEST_TMPDIR"' EXIT
dir=$BATS_TEST_TMPDIR
manifest=$top/tests/fixtures/apply/workflow.json
jq -c -n --slurpfile m "$manifest" '{kwh: 1, delivery: "bench", manifests: $m}' >"$dir/env.json"
# --no-dedupe: one envelope, a create every run, as kubectl create -f
kwh() { "$KWH_BIN/kwh-apply" --kubeconfig "$APISERVER_DIR/kubeconfig" --cache "$dir/kwh-cache" --no-dedupe --log none <"$dir/env.json" >/dev/null; }
kctl() { "$KUBECTL" --kubeconfig "$APISERVER_DIR/kubeconfig" --cache-dir "$dir/kube-cache" create -f "$manifest" >/dev/null; }
# The floor for any libcurl program: curl(1) itself POSTing the same
# manifest to the same URL over TLS (no kubeconfig, no discovery).
token=$(cat "$APISERVER_DIR/token" 2>/dev/null || sed -n 's/^ *token: //p' "$APISERVER_DIR/kubeconfig")
printf 'header = "Authorization: Bearer %s"\n' "$token" >"$dir/curl.cfg"
url=$(sed -n 's/^ *server: //p' "$APISERVER_DIR/kubeconfig")/apis/argoproj.io/v1alpha1/namespaces/ci/workflows
curlp() { curl -sS -o /dev/null --fail --cacert "$APISERVER_DIR/ca.crt" -K "$dir/curl.cfg" \
	-H 'Content-Type: application/json' --data-binary @"$manifest" "$url"; }
kwh; kctl; curlp  # warm both discovery caches (and check the curl call works)

# Wall time: the five commands alternate, each run one posix_spawn timed
# by bench/timeit.c (no shell in between, as hyperfine -N times it), and
# the medians are compared.  Two floors run in the same loop: an empty C
# program (any process here), and one that is linked with libcurl and
# returns at once (what loading Debian's libcurl and its 36 libraries
# costs, before any work).
cc -O2 -o "$dir/timeit" "$top/bench/timeit.c"
echo 'int main(void) { return 0; }' >"$dir/empty.c"
cc -O2 -o "$dir/empty" "$dir/empty.c"
printf '#include <curl/curl.h>\nint main(int c, char **v) { return c > 1 ? (int)curl_version()[0] : 0; }\n' >"$dir/loadcurl.c"
cc -O2 -o "$dir/loadcurl" "$dir/loadcurl.c" -lcurl
"$dir/timeit" "$runs" "$dir/env.json" \
	-- "$KWH_BIN/kwh-apply" --kubeconfig "$APISERVER_DIR/kubeconfig" --cache "$dir/kwh-cache" --no-dedupe --log none \
	-- "$KUBECTL" --kubeconfig "$APISERVER_DIR/kubeconfig" --cache-dir "$dir/kube-cache" create -f "$manifest" \
	-- curl -sS -o /dev/null --fail --cacert "$APISERVER_DIR/ca.crt" -K "$dir/curl.cfg" \
		-H 'Content-Type: application/json' --data-binary @"$manifest" "$url" \
	-- "$dir/empty" -- "$dir/loadcurl" >"$dir/times"
ms() { sed -n "$1p" "$dir/times" | awk '{ printf "%.2f\n", $1 / 1000 }'; }
k=$(ms 1) c=$(ms 2) u=$(ms 3) e=$(ms 4) l=$(ms 5)
# cpu_ms FUNC: mean CPU time (user + system, children) of RUNS calls, in ms
cpu_ms() (
	local i
	for ((i = 0; i < runs; i++)); do "$1"; done
	times >"$dir/times"	# not in a pipe: a subshell has its own counts
	sed -n 2p "$dir/times" | awk -v n="$runs" '{
		split($1, u, /[ms]/); split($2, s, /[ms]/)
		printf "%.2f\n", ((u[1] * 60 + u[2]) + (s[1] * 60 + s[2])) * 1000 / n }'
)
kc=$(cpu_ms kwh)
cc=$(cpu_ms kctl)
uc=$(cpu_ms curlp)
printf 'runs %d (load average %s)\n' "$runs" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'kwh-apply      wall median %8.2f ms   cpu mean %8.2f ms\n' "$k" "$kc"
printf 'kubectl create wall median %8.2f ms   cpu mean %8.2f ms\n' "$c" "$cc"
printf 'curl POST      wall median %8.2f ms   cpu mean %8.2f ms\n' "$u" "$uc"
printf 'floors, same loop: an empty C program %.2f ms; a C program that only loads libcurl %.2f ms\n' "$e" "$l"
printf 'ratio (kubectl / kwh-apply): wall %.1fx, cpu %.1fx\n' \
	"$(echo "$c / $k" | bc -l)" "$(echo "$cc / $kc" | bc -l)"
printf 'ratio (kwh-apply / curl POST): wall %.2fx, cpu %.2fx  (curl: the floor of a libcurl process)\n' \
	"$(echo "$k / $u" | bc -l)" "$(echo "$kc / $uc" | bc -l)"
