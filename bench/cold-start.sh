#!/usr/bin/env bash
# bench/cold-start.sh — the first delivery for a large repository (issue 16,
# point 3): a synthetic repository of COLD_COMMITS commits of COLD_BLOB
# random bytes each (default 40,000 x 26,000: about 1.04 GiB; generated
# once with git fast-import and kept under ~/.cache/kwh-bench, see gen_repo
# in bench/lib.sh), served by git daemon on 127.0.0.1, a signed push of its
# head to a `kwh-handle --listen` with an empty cache, then to adnanh/webhook
# running bench/peers/deploy-shallow.sh (git fetch --depth=1 of the revision
# and kubectl create).  Prints, for each, the answer's status and time,
# and when the Workflow appeared in the API server (polled every 0.2 s for
# COLD_WAIT seconds, default 120, after the answer); for kwh then one
# redelivery (a new delivery id, same body: what a person clicking
# "Redeliver" sends) and its answer, and the cache's size.  It measures
# outcomes and assumes none: what kwh answers depends on the libgit2 in use
# (shallow fetch from 1.7) and on whether fetches outlive the delivery.
#
# Usage: bench/cold-start.sh   (COLD_COMMITS=4000 for a quick run, ~100 MiB)
# Environment: KWH_BIN, WEBHOOK, KUBECTL, COLD_COMMITS, COLD_BLOB,
# COLD_WAIT, COLD_ARGS (more kwh-handle options, e.g. "--budget 300"),
# BENCH_CACHE; COLD_SPOOL=1 gives kwh-handle --spool and then runs
# kwh-replay --budget 300 over it (what a person or a timer does today).  Bounded: every request has curl --max-time 600, the polls
# COLD_WAIT.  Target: the Workflow within 10 s of the first delivery.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
KWH_BIN=${KWH_BIN:-$top/bin}
KUBECTL=${KUBECTL:-$(command -v kubectl || echo kubectl)}
WEBHOOK=${WEBHOOK:-/usr/bin/webhook}
COLD_COMMITS=${COLD_COMMITS:-40000}
COLD_BLOB=${COLD_BLOB:-26000}
COLD_WAIT=${COLD_WAIT:-120}
for t in curl git jq python3 setsid "$KWH_BIN/kwh-handle" "$KWH_BIN/kwh-sign"; do
	command -v "$t" >/dev/null || { echo "cold-start.sh: $t is missing" >&2; exit 111; }
done
have_webhook=1
for t in "$WEBHOOK" "$KUBECTL"; do
	command -v "$t" >/dev/null || { echo "cold-start.sh: $t is missing: kwh only" >&2; have_webhook=; }
done
. "$top/bench/lib.sh"

t=$(date +%s)
repo=$(gen_repo "$COLD_COMMITS" "$COLD_BLOB" 0)
gen=$(( $(date +%s) - t ))
mkdir -p "$d/srv/octo"
ln -s "$repo" "$d/srv/octo/big.git"
serve_repos "$d/srv"
rev=$(git --git-dir="$repo" rev-parse main)
size=$(du -sk "$repo" | cut -f1)
bench_secret
printf '%s %s refs/heads/main octo/big\n' "cold-1" "$rev" >"$d/plan"

ms() { echo $(( $(date +%s%N) / 1000000 )); }
# deliver URL ID: one signed delivery of the plan's body (deliver.py, conc
# 1), the same body whatever ID; prints "STATUS SECONDS"
deliver() {
	sed "s/^[^ ]*/$2/; s/\$/ cold-1/" "$d/plan" >"$d/plan1"	# one body
	python3 "$top/bench/deliver.py" "$1" "$d/secret" "$top/tests/fixtures/github/push-payload.json" \
		"$d/plan1" conc 1 600 "$d/res" >/dev/null
	awk '{ printf "%s %.2f\n", $4, $3 - $2 }' "$d/res"
}
# appeared T0: seconds from T0 (ms) until the API server holds an object,
# or "none within COLD_WAIT s" after the answer
appeared() {
	local end=$(( $(ms) + COLD_WAIT * 1000 ))
	while [ "$(ms)" -lt "$end" ]; do
		[ "$(objects)" -gt 0 ] && { awk -v a="$(ms)" -v b="$1" 'BEGIN { printf "%.2f s\n", (a - b) / 1000 }'; return; }
		sleep 0.2
	done
	echo "none within ${COLD_WAIT} s of the answer"
}

echo "cold-start: $(machine)"
echo "repository: $COLD_COMMITS commits, $((size / 1024)) MiB on disk (generated or found in ${gen} s), git daemon on 127.0.0.1"
spool=()
[ "${COLD_SPOOL:-0}" = 0 ] || { mkdir -m 700 "$d/spool-cold"; spool=(--spool "$d/spool-cold"); }
# shellcheck disable=SC2086
start_listen cold "${spool[@]}" ${COLD_ARGS:-}
t0=$(ms)
r=$(deliver "http://127.0.0.1:$lport/" cold-1)
echo "kwh-handle --listen, first delivery:     answer ${r% *} after ${r#* } s; Workflow after $(appeared "$t0")"
r=$(deliver "http://127.0.0.1:$lport/" cold-2)
echo "kwh-handle --listen, redelivery:         answer ${r% *} after ${r#* } s; objects now $(objects)"
echo "kwh cache: $(du -sh "$d/cache-cold" | cut -f1), $(find "$d/cache-cold" -type f | wc -l) files;" \
	"log: $(grep -c . "$d/kwh-cold.log") lines, last: $(tail -n 1 "$d/kwh-cold.log" | cut -c1-160)"
kill "$lpid"; wait "$lpid" 2>/dev/null || true
[ "${COLD_SPOOL:-0}" = 0 ] ||
	echo "spooled: $(find "$d/spool-cold" -name '*.json' | wc -l); $(replay_spool cold); objects now $(objects)"
if [ -n "$have_webhook" ]; then
	base=$(objects)
	start_webhook
	t0=$(ms)
	r=$(deliver "http://127.0.0.1:$wport/hooks/shallow" cold-3)
	echo "webhook + git fetch --depth=1 + kubectl: answer ${r% *} after ${r#* } s; objects created $(( $(objects) - base ))"
	stop_webhook
fi
echo "target: the Workflow within 10 s of the first delivery (GitHub's timeout)"
