#!/usr/bin/env bash
# bench/slow-clients.sh — what slow clients cost `kwh-handle --listen`:
# the time of GET /-/alive and of a signed push delivery (git daemon
# fetch, create on the test API server) alone, then beside N idle
# connections, then beside N connections trickling a request head one
# byte a second (bench/slow-clients.py), with --workers 2.
#
# Usage: bench/slow-clients.sh [N]   (default 1000, at most 5000)
# Environment: KWH_BIN (default bin/ of this tree); OLD_BIN, a second
# build (say of the commit before a change) measured the same way in the
# same run; MAXT, curl's --max-time in seconds (default 20: a probe that
# waits longer is reported as a timeout).  Bounded: every probe has
# --max-time, every slow client set closes after 60 s or when its probes
# are done.
# Target (issue 15): N = 1000 idle or trickling connections delay
# /-/alive and a delivery by under 100 ms.
set -eu
n=${1:-1000}
[ "$n" -ge 1 ] && [ "$n" -le 5000 ] || { echo "slow-clients.sh: N from 1 to 5000" >&2; exit 100; }
top=$(cd "$(dirname "$0")/.." && pwd)
KWH_BIN=${KWH_BIN:-$top/bin}
MAXT=${MAXT:-20}
for t in curl git jq python3 ss "$KWH_BIN/kwh-handle" "$KWH_BIN/kwh-sign"; do
	command -v "$t" >/dev/null || { echo "slow-clients.sh: $t is missing" >&2; exit 111; }
done
# the clients need N descriptors
ulimit -Sn "$(ulimit -Hn)"
. "$top/bench/lib.sh"

# the repository, served by git daemon
printf 'apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  generateName: ci-\nspec:\n  entrypoint: main\n' \
	>"$d/workflow.yaml"
bench_repo "$d/workflow.yaml"

printf 'slow-bench-secret' >"$d/secret"; chmod 600 "$d/secret"
bench_body
sig=$("$KWH_BIN/kwh-sign" --secret-file "$d/secret" "$d/body.json" | tr -d '\r' |
	sed -n 's/^X-Hub-Signature-256: //p')

seq_no=0
# probe URL-KIND PORT: prints "STATUS MS" of one /-/alive or delivery
probe() {
	local out
	seq_no=$((seq_no + 1))
	if [ "$1" = alive ]; then
		out=$(curl -s -o /dev/null --max-time "$MAXT" -w '%{http_code} %{time_total}' \
			"http://127.0.0.1:$2/-/alive" || true)
	else
		out=$(curl -s -o /dev/null --max-time "$MAXT" -w '%{http_code} %{time_total}' \
			-H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
			-H "X-GitHub-Delivery: slow-$seq_no" -H "X-Hub-Signature-256: $sig" \
			--data-binary @"$d/body.json" "http://127.0.0.1:$2/" || true)
	fi
	awk '{ printf "%s %.1f\n", $1, $2 * 1000 }' <<<"$out"
}
# median KIND PORT RUNS: "STATUS MS", the median time of RUNS probes and
# the status of the last ("000" when one timed out)
median() {
	local i r st ms=()
	for i in $(seq 1 "$3"); do
		r=$(probe "$1" "$2"); st=${r% *}; ms+=("${r#* }")
		[ "$st" != 000 ] || break
	done
	printf '%s %s\n' "$st" "$(printf '%s\n' "${ms[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')"
}

# bench NAME BIN: the three cases against the kwh-handle of BIN
bench() {
	local port pid sp mode base_a base_d a dl ready
	port=$(free_port)
	"$2/kwh-handle" --listen "127.0.0.1:$port" --workers 2 --secret-file "$d/secret" \
		--remote "git://127.0.0.1:$gport/{full_name}.git" --cache "$d/cache-$1" \
		--kubeconfig "$K" --log none &
	pid=$!
	pids+=("$pid")
	wait_port "$port"
	sleep 0.5
	probe delivery "$port" >/dev/null	# the git cache and the API connection, warm
	base_a=$(median alive "$port" 5)
	base_d=$(median delivery "$port" 5)
	printf '%-8s %-22s %14s %14s\n' "$1" "alone" "$base_a" "$base_d"
	for mode in idle trickle; do
		python3 "$top/bench/slow-clients.py" 127.0.0.1 "$port" "$n" "$mode" 60 >"$d/slow.out" &
		sp=$!
		k=300
		until grep -q ready "$d/slow.out"; do sleep 0.05; k=$((k - 1)); [ "$k" -gt 0 ] || break; done
		ready=$(awk '/ready/ { print $2 }' "$d/slow.out")
		sleep 1.5	# the clients settle (and trickle a byte or two)
		a=$(median alive "$port" 3)
		dl=$(median delivery "$port" 3)
		printf '%-8s %-22s %14s %14s\n' "$1" "$n $mode ($ready conn.)" "$a" "$dl"
		kill "$sp" 2>/dev/null || true
		wait "$sp" 2>/dev/null || true
		sleep 1
	done
	kill "$pid"
	wait "$pid" 2>/dev/null || true
}

echo "kwh-handle --listen --workers 2; each cell: HTTP status and median ms (000: timed out after ${MAXT} s)"
printf '%-8s %-22s %14s %14s\n' build case "GET /-/alive" "signed push"
[ -z "${OLD_BIN:-}" ] || bench old "$OLD_BIN"
bench new "$KWH_BIN"
