#!/usr/bin/env bash
# bench/repos.sh — many repositories (issue 16, points 6 and 8): one signed
# push each for REPOS distinct repositories (default 200, each a copy of a
# 50-commit repository, git daemon on 127.0.0.1), REPOS_CONC at a time
# (default 8, bench/deliver.py), to `kwh-handle --listen` with an empty
# cache, then to adnanh/webhook running bench/peers/deploy.sh (a git mirror
# per repository and kubectl create).  Prints throughput, answers by
# status, the Workflows created, and what each leaves on disk (size and
# files of kwh's cache, of the script's mirrors).
#
# Usage: bench/repos.sh   (REPOS=50 for a quick run)
# Environment: KWH_BIN, WEBHOOK, KUBECTL, REPOS, REPOS_CONC, REPOS_ARGS (more
# kwh-handle options, e.g. "--cache-max-bytes 50000000"), BURST_WEBHOOK=0
# skips webhook.  Bounded: every delivery gives up after 60 s.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
KWH_BIN=${KWH_BIN:-$top/bin}
KUBECTL=${KUBECTL:-$(command -v kubectl || echo kubectl)}
WEBHOOK=${WEBHOOK:-/usr/bin/webhook}
REPOS=${REPOS:-200}
REPOS_CONC=${REPOS_CONC:-8}
for t in git jq python3 setsid "$KWH_BIN/kwh-handle"; do
	command -v "$t" >/dev/null || { echo "repos.sh: $t is missing" >&2; exit 111; }
done
[ "${BURST_WEBHOOK:-1}" = 0 ] || for t in "$WEBHOOK" "$KUBECTL"; do
	command -v "$t" >/dev/null || { echo "repos.sh: $t is missing (BURST_WEBHOOK=0 skips webhook)" >&2; exit 111; }
done
. "$top/bench/lib.sh"

repo=$(gen_repo 50 2000 0)
rev=$(git --git-dir="$repo" rev-parse main)
mkdir -p "$d/srv/octo"
for i in $(seq 1 "$REPOS"); do
	cp -a "$repo" "$d/srv/octo/r$i.git"
	echo "repo-$i $rev refs/heads/main octo/r$i"
done >"$d/plan"
serve_repos "$d/srv"
bench_secret

# run NAME URL: the deliveries, and the objects they made
run() {
	local before
	before=$(objects)
	python3 "$top/bench/deliver.py" "$2" "$d/secret" "$top/tests/fixtures/github/push-payload.json" \
		"$d/plan" conc "$REPOS_CONC" 60 "$d/res-$1" | sed 's/^/  /'
	echo "  objects created: $(( $(objects) - before )) (deliveries: $REPOS)"
}
# disk DIR: "SIZE MiB, FILES files"
disk() { echo "$(du -sk "$1" | awk '{ printf "%.1f", $1 / 1024 }') MiB, $(find "$1" -type f | wc -l) files"; }
rate() { awk '/^  throughput/ { print $2 }' "$d/out-$1"; }

echo "repos: $(machine)"
echo "$REPOS repositories of 50 commits ($(du -sk "$repo" | cut -f1) KiB each), $REPOS_CONC deliveries at a time"
# shellcheck disable=SC2086
start_listen repos ${REPOS_ARGS:-}
echo "kwh-handle --listen:"
run kwh "http://127.0.0.1:$lport/" | tee "$d/out-kwh"
echo "  cache afterwards: $(disk "$d/cache-repos")"
kill "$lpid"; wait "$lpid" 2>/dev/null || true
if [ "${BURST_WEBHOOK:-1}" != 0 ]; then
	start_webhook
	echo "webhook + git + kubectl:"
	run wh "http://127.0.0.1:$wport/hooks/deploy" | tee "$d/out-wh"
	echo "  mirrors afterwards: $(disk "$d/script-mirror")"
	stop_webhook
	echo "ratio of deliveries/s, kwh / webhook: $(awk -v a="$(rate kwh)" -v b="$(rate wh)" 'BEGIN { printf "%.1fx", a / b }')"
fi
