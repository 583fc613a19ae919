#!/usr/bin/env bash
# bench/burst.sh — bursts against `kwh-handle --listen` (issue 16, points 5
# and 8), then against adnanh/webhook running bench/peers/deploy.sh (git +
# kubectl) under the same bursts: BURST_CACHED deliveries (default 1000) of
# a cached revision, then BURST_BRANCHES pushes (default 500) to as many new
# branches of one repository, each burst arriving evenly within
# BURST_SPREAD seconds (default 2), one connection per delivery
# (bench/deliver.py: per delivery its arrival, its answer and its status or
# reset/refused/timeout/error).  Every delivery has a body of its own, so
# each must create exactly one Workflow: the script counts the objects in
# the API server after the answers and again after BURST_SETTLE seconds
# (default 20: a fetch that goes on in the background may still create).
# Also the RSS of the --listen workers (/proc) before and after.
#
# Usage: bench/burst.sh   (BURST_CACHED=200 BURST_BRANCHES=100 for a quick run)
# Environment: KWH_BIN, WEBHOOK, KUBECTL, BURST_ARGS (more kwh-handle
# options, e.g. "--spool DIR --backlog 2048"), BURST_TIMEOUT (a delivery
# gives up after this many seconds, default 60), BURST_WEBHOOK=0 skips
# webhook; BURST_SPOOL=1 gives kwh-handle --spool and, after the bursts,
# runs kwh-replay over it (what a person or a timer does today) and counts
# the objects again.  Bounded: every delivery BURST_TIMEOUT, webhook and the scripts
# it started are stopped after its bursts.
# Targets: every delivery answered within 10 s of its arrival, no resets,
# none lost, none created twice.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
KWH_BIN=${KWH_BIN:-$top/bin}
KUBECTL=${KUBECTL:-$(command -v kubectl || echo kubectl)}
WEBHOOK=${WEBHOOK:-/usr/bin/webhook}
BURST_CACHED=${BURST_CACHED:-1000}
BURST_BRANCHES=${BURST_BRANCHES:-500}
BURST_SPREAD=${BURST_SPREAD:-2}
BURST_TIMEOUT=${BURST_TIMEOUT:-60}
BURST_SETTLE=${BURST_SETTLE:-20}
for t in curl git jq python3 pgrep setsid "$KWH_BIN/kwh-handle"; do
	command -v "$t" >/dev/null || { echo "burst.sh: $t is missing" >&2; exit 111; }
done
[ "${BURST_WEBHOOK:-1}" = 0 ] || for t in "$WEBHOOK" "$KUBECTL"; do
	command -v "$t" >/dev/null || { echo "burst.sh: $t is missing (BURST_WEBHOOK=0 skips webhook)" >&2; exit 111; }
done
ulimit -Sn "$(ulimit -Hn)"
. "$top/bench/lib.sh"

# 200 commits on main, BURST_BRANCHES branches forked from its tip
repo=$(gen_repo 200 2000 "$BURST_BRANCHES")
mkdir -p "$d/srv/octo"
ln -s "$repo" "$d/srv/octo/repo.git"
serve_repos "$d/srv"
bench_secret
main=$(git --git-dir="$repo" rev-parse main)
seq 1 "$BURST_CACHED" | awk -v r="$main" '{ print "cached-" $1, r, "refs/heads/main", "octo/repo" }' >"$d/plan-cached"
git --git-dir="$repo" for-each-ref --format='branch-%(refname:short) %(objectname) %(refname) octo/repo' \
	'refs/heads/b*' >"$d/plan-branches"
echo "warm $main refs/heads/main octo/repo" >"$d/plan-warm"

# burst NAME URL PLAN: one burst; prints deliver.py's summary and the objects it made
burst() {
	local before after
	before=$(objects)
	python3 "$top/bench/deliver.py" "$2" "$d/secret" "$top/tests/fixtures/github/push-payload.json" \
		"$3" burst "$BURST_SPREAD" "$BURST_TIMEOUT" "$d/res-$1" | sed 's/^/  /'
	after=$(objects)
	sleep "$BURST_SETTLE"
	echo "  objects created: $((after - before)) when the last was answered," \
		"$(( $(objects) - before )) ${BURST_SETTLE} s later (deliveries: $(wc -l <"$3"))"
	awk '$4 ~ /^[0-9]/ && $3 - $2 <= 10 { n++ } END { printf "  answered within 10 s of arrival: %d of %d\n", n, NR }' "$d/res-$1"
}

echo "burst: $(machine)"
echo "repository: 200 commits and $BURST_BRANCHES branches; each burst arrives within ${BURST_SPREAD} s"
spool=()
[ "${BURST_SPOOL:-0}" = 0 ] || { mkdir -m 700 "$d/spool-burst"; spool=(--spool "$d/spool-burst"); }
# shellcheck disable=SC2086
start_listen burst "${spool[@]}" ${BURST_ARGS:-}
python3 "$top/bench/deliver.py" "http://127.0.0.1:$lport/" "$d/secret" \
	"$top/tests/fixtures/github/push-payload.json" "$d/plan-warm" conc 1 60 "$d/res-warm" >/dev/null
sleep 1
echo "kwh-handle --listen workers before: $(workers_rss "$lpid")"
echo "kwh-handle --listen, $BURST_CACHED deliveries of a cached revision:"
burst kwh-cached "http://127.0.0.1:$lport/" "$d/plan-cached"
echo "kwh-handle --listen, $BURST_BRANCHES pushes to $BURST_BRANCHES new branches:"
burst kwh-branches "http://127.0.0.1:$lport/" "$d/plan-branches"
echo "kwh-handle --listen workers after:  $(workers_rss "$lpid")"
echo "kwh log: $(grep -c . "$d/kwh-burst.log") lines; by level: $(grep -o 'level=[a-z]*' "$d/kwh-burst.log" | sort | uniq -c | tr -s ' \n' ' ')"
kill "$lpid"; wait "$lpid" 2>/dev/null || true
if [ "${BURST_SPOOL:-0}" != 0 ]; then
	before=$(objects)
	echo "spooled: $(find "$d/spool-burst" -name '*.json' | wc -l) deliveries; $(replay_spool burst);" \
		"objects created by it: $(( $(objects) - before ))"
fi
if [ "${BURST_WEBHOOK:-1}" != 0 ]; then
	start_webhook
	python3 "$top/bench/deliver.py" "http://127.0.0.1:$wport/hooks/deploy" "$d/secret" \
		"$top/tests/fixtures/github/push-payload.json" "$d/plan-warm" conc 1 60 "$d/res-warm" >/dev/null
	echo "webhook + git + kubectl, $BURST_CACHED deliveries of a cached revision:"
	burst wh-cached "http://127.0.0.1:$wport/hooks/deploy" "$d/plan-cached"
	echo "webhook + git + kubectl, $BURST_BRANCHES pushes to $BURST_BRANCHES new branches:"
	burst wh-branches "http://127.0.0.1:$wport/hooks/deploy" "$d/plan-branches"
	stop_webhook
	intime() { awk '$4 ~ /^2/ && $3 - $2 <= 10 { n++ } END { print n + 0 }' "$d/res-$1"; }
	for b in cached branches; do
		echo "ratio, $b: 2xx within 10 s, kwh $(intime "kwh-$b") / webhook $(intime "wh-$b") =" \
			"$(awk -v a="$(intime "kwh-$b")" -v b="$(intime "wh-$b")" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "n/a (webhook: none)" }')"
	done
fi
echo "targets: every delivery answered within 10 s of its arrival, no resets, none lost, none created twice"
