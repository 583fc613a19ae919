#!/usr/bin/env bash
# bench/cache-read.sh — a cached read after many fetches into one entry
# (issue 16, point 6): a repository of 200 commits and FETCHES branches
# (default 500; git daemon on 127.0.0.1), one kwh-fetch of main into a
# fresh cache, FETCHES kwh-fetch runs into a second cache each fetching one
# new branch (as 500 pushes to 500 branches do), then the same read of
# main's revision (cached in both) from each, timed by hyperfine.  Prints
# the packs in each entry, both means and their ratio.  No webhook here:
# it is kwh's cache against itself.
#
# Usage: bench/cache-read.sh   (FETCHES=100 for a quick run)
# Environment: KWH_BIN, FETCHES, RUNS (hyperfine runs, default 100).
# Bounded: every kwh-fetch has --timeout 60 and timeout(1).
# Target: the read after FETCHES fetches within 2x of the fresh entry's.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
KWH_BIN=${KWH_BIN:-$top/bin}
FETCHES=${FETCHES:-500}
RUNS=${RUNS:-100}
for t in git jq hyperfine timeout "$KWH_BIN/kwh-fetch"; do
	command -v "$t" >/dev/null || { echo "cache-read.sh: $t is missing" >&2; exit 111; }
done
. "$top/bench/lib.sh"

repo=$(gen_repo 200 2000 "$FETCHES")
mkdir -p "$d/srv/octo"
ln -s "$repo" "$d/srv/octo/repo.git"
serve_repos "$d/srv"
remote="git://127.0.0.1:$gport/{full_name}.git"
# envelope REV REF: what kwh-annotate hands kwh-fetch
envelope() {
	jq -nc --arg rev "$1" --arg ref "$2" '{kwh: 1, delivery: "bench",
	  annotations: {"k8s-webhook-handler.io/revision": $rev, "k8s-webhook-handler.io/ref": $ref},
	  payload: {repository: {full_name: "octo/repo"}}}'
}
fetch() { timeout 90 "$KWH_BIN/kwh-fetch" --log "$d/fetch.log" --timeout 60 --remote "$remote" --cache "$1" >/dev/null; }
main=$(git --git-dir="$repo" rev-parse main)
envelope "$main" refs/heads/main >"$d/env-main"
fetch "$d/fresh" <"$d/env-main"
fetch "$d/many" <"$d/env-main"
t=$(date +%s)
git --git-dir="$repo" for-each-ref --format='%(objectname) %(refname)' 'refs/heads/b*' >"$d/branches"
while read -r rev ref; do
	envelope "$rev" "$ref" | fetch "$d/many"
done <"$d/branches"
took=$(( $(date +%s) - t ))
packs() { find "$1" -name '*.pack' | wc -l; }

echo "cache-read: $(machine)"
echo "$FETCHES fetches of one new branch each into one entry: ${took} s;" \
	"packs: fresh entry $(packs "$d/fresh"), after the fetches $(packs "$d/many")"
echo "consolidations logged: $(grep -c 'consolidated' "$d/fetch.log" || true)"
read_cmd() { echo "$KWH_BIN/kwh-fetch --log none --timeout 60 --remote $remote --cache $1 < $d/env-main > /dev/null"; }
hyperfine --style basic --warmup 5 --runs "$RUNS" --export-json "$d/hf.json" \
	-n fresh "$(read_cmd "$d/fresh")" -n "after $FETCHES fetches" "$(read_cmd "$d/many")" | grep -v '^ *$'
jq -r '.results | (.[0].median * 1000) as $a | (.[1].median * 1000) as $b |
	"medians: fresh \($a * 10 | round / 10) ms, after the fetches \($b * 10 | round / 10) ms;" +
	" ratio \($b / $a * 100 | round / 100)x (target <= 2x: \(if $b <= 2 * $a then "met" else "MISSED" end))"' "$d/hf.json"
