#!/usr/bin/env bash
# bench/metrics.sh — what a Prometheus scrape costs `kwh-handle --listen`:
# GET /metrics (the shared table rendered, the spool counted and the cache
# measured with nftw at scrape time) against GET /-/alive, N requests each
# with curl, one at a time, --workers 2; prints medians, p90 and the
# ratio, and the size of the answer.  Bounded: N at most 5000, each
# request --max-time 5.
#
# Usage: bench/metrics.sh [N]   (default 300)
# Environment: KWH_BIN (default bin/ of this tree).
set -eu
n=${1:-300}
[ "$n" -ge 1 ] && [ "$n" -le 5000 ] || { echo "metrics.sh: N from 1 to 5000" >&2; exit 100; }
top=$(cd "$(dirname "$0")/.." && pwd)
KWH_BIN=${KWH_BIN:-$top/bin}
for t in curl python3 "$KWH_BIN/kwh-handle"; do
	command -v "$t" >/dev/null || { echo "metrics.sh: $t is missing" >&2; exit 111; }
done
d=$(mktemp -d)
pid=
trap '[ -z "$pid" ] || { kill "$pid"; wait "$pid"; } 2>/dev/null; rm -rf "$d"' EXIT
printf 'bench-secret' >"$d/secret"
chmod 600 "$d/secret"
mkdir "$d/cache" "$d/spool"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HOME=$d "$KWH_BIN/kwh-handle" --listen "127.0.0.1:$port" --workers 2 --secret-file "$d/secret" \
	--cache "$d/cache" --spool "$d/spool" --kubeconfig /nonexistent --log "$d/log" 2>"$d/err" &
pid=$!
for _ in $(seq 100); do
	curl -s -o /dev/null "http://127.0.0.1:$port/-/alive" && break
	sleep 0.05
done
# percentiles PATH: median and p90 of N requests, in ms
percentiles() {
	for _ in $(seq "$n"); do
		curl -s --max-time 5 -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port$1"
	done | sort -n | awk '{ a[NR] = $1 * 1000 } END { p = int(NR * 0.9); if (p < 1) p = 1; printf "%.3f %.3f\n", a[int((NR + 1) / 2)], a[p] }'
}
read -r am ap < <(percentiles /-/alive)
read -r mm mp < <(percentiles /metrics)
size=$(curl -s "http://127.0.0.1:$port/metrics" | wc -c)
printf 'kwh-handle --listen --workers 2, %s requests each, curl time_total in ms\n' "$n"
printf '%-10s %8s %8s\n' path median p90 /-/alive "$am" "$ap" /metrics "$mm" "$mp"
printf 'ratio of medians /metrics : /-/alive = %s; answer %s bytes\n' \
	"$(awk -v a="$am" -v m="$mm" 'BEGIN { printf "%.2f", m / a }')" "$size"
