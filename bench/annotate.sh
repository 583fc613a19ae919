#!/bin/sh
# bench/annotate.sh — kwh-annotate against jq's CLI, side by side, one run.
#
# Generates an ~8 KB and a 25 MiB push envelope from
# tests/fixtures/github/push-payload.json, then measures
#   small: kwh-annotate vs `jq .ref FILE` (and `jq -c . FILE`), time per run
#   large: kwh-annotate vs `jq -c . FILE`, wall time and peak memory
# and prints the figures and the ratios kwh/jq.  Targets (issue 3): small
# under 2 ms per run; large at most 1.0x jq -c . in time and memory.
#
# Environment: KWH_BIN (default: bin/ of this tree), RUNS (small, default
# 200), BIG_RUNS (large, default 3), BIG_MIB (default 25).  Uses hyperfine
# when installed, else a loop timed with date +%s%N; peak memory from
# /usr/bin/time -v.  Every command runs under timeout(1), so the whole
# script is bounded (about a minute on an idle machine).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
KWH_BIN=${KWH_BIN:-$top/bin}
RUNS=${RUNS:-200}
BIG_RUNS=${BIG_RUNS:-3}
BIG_MIB=${BIG_MIB:-25}
annotate=$KWH_BIN/kwh-annotate
payload=$top/tests/fixtures/github/push-payload.json
T=60	# seconds any one measured command may take

for t in jq "$annotate" /usr/bin/time timeout; do
	command -v "$t" >/dev/null || { echo "bench: '$t' is missing" >&2; exit 111; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kwh-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# An envelope as kwh-verify writes it, around a payload.
wrap='{kwh: 1, delivery: "72d3162e-cc78-11e3-81ab-4c9367dc0958", event: "push",
  headers: {"x-github-event": "push", "content-type": "application/json",
    "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    "x-hub-signature-256": "sha256=0000000000000000000000000000000000000000000000000000000000000000",
    "user-agent": "GitHub-Hookshot/044aadd"},
  verified: "sha256", deadline: 1700000009000, payload: .}'
jq -c "$wrap" "$payload" >"$tmp/small.json"

# The large one: the same push with many commits, grown to BIG_MIB MiB.
commits='def c: {id: (. | tostring | ("0" * (40 - length)) + .), tree_id: "f9d2a07e9488b91af2641b26b9407fe22a451433",
  distinct: true, message: "commit number \(.): update the README and the build scripts",
  timestamp: "2019-05-15T15:20:30-05:00", url: "https://github.com/Codertocat/Hello-World/commit/\(.)",
  author: {name: "Codertocat", email: "21031067+Codertocat@users.noreply.github.com", username: "Codertocat"},
  committer: {name: "GitHub", email: "noreply@github.com", username: "web-flow"},
  added: [], removed: [], modified: ["README.md", "Makefile"]};'
per=$(jq -n "$commits 1 | c | tojson | length + 1")
n=$(( (BIG_MIB * 1048576 - $(wc -c <"$tmp/small.json")) / per ))
jq -c --argjson n "$n" "$commits .commits = [range(\$n) | c] | $wrap" "$payload" >"$tmp/big.json"

printf 'envelopes: small %d bytes, large %d bytes (%d commits)\n' \
	"$(wc -c <"$tmp/small.json")" "$(wc -c <"$tmp/big.json")" "$n"
# Sanity: both tools give the same envelope apart from the annotations.
timeout $T "$annotate" --log none <"$tmp/big.json" | jq -c 'del(.annotations)' >"$tmp/a.json"
timeout $T jq -c . "$tmp/big.json" | cmp -s - "$tmp/a.json" ||
	{ echo "bench: kwh-annotate changed the envelope" >&2; exit 1; }
rm -f "$tmp/a.json"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# Mean milliseconds per run of a shell command, RUNS times.
per_run_ms() {
	if command -v hyperfine >/dev/null; then
		timeout $((T * 3)) hyperfine --style none -w 10 -r "$RUNS" \
			--export-json "$tmp/h.json" "$1" >/dev/null 2>&1
		jq '.results[0].median * 1000' "$tmp/h.json"
	else
		s=$(date +%s%N)
		i=0
		while [ $i -lt "$RUNS" ]; do sh -c "$1"; i=$((i + 1)); done
		e=$(date +%s%N)
		s0=$(date +%s%N)
		i=0
		while [ $i -lt "$RUNS" ]; do sh -c ":"; i=$((i + 1)); done
		e0=$(date +%s%N)
		awk -v t=$((e - s - (e0 - s0))) -v n="$RUNS" 'BEGIN { printf "%.3f", t / n / 1e6 }'
	fi
}

echo "small envelope, $RUNS runs each ($(command -v hyperfine >/dev/null && echo "hyperfine median, shell start-up subtracted" || echo "date loop, shell start-up subtracted")):"
k=$(per_run_ms "$annotate --log none <$tmp/small.json >/dev/null")
j=$(per_run_ms "jq .ref $tmp/small.json >/dev/null")
c=$(per_run_ms "jq -c . $tmp/small.json >/dev/null")
printf '  kwh-annotate    %8.3f ms\n' "$k"
printf '  jq .ref         %8.3f ms  ratio kwh/jq %s\n' "$j" "$(ratio "$k" "$j")"
printf '  jq -c .         %8.3f ms  ratio kwh/jq %s\n' "$c" "$(ratio "$k" "$c")"

# Wall seconds and peak KiB of one run, from GNU time -v.
measure() {
	timeout $T /usr/bin/time -v "$@" >/dev/null 2>"$tmp/t" || true
	w=$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$tmp/t" |
		awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
	m=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tmp/t")
	c=$(sed -n 's/.*\(User\|System\) time (seconds): //p' "$tmp/t" | awk '{ s += $1 } END { print s }')
	echo "$w $m $c"
}

echo "large envelope, $BIG_RUNS runs each, alternating (medians of wall, CPU user+sys, peak RSS):"
: >"$tmp/k"; : >"$tmp/j"
i=0
while [ $i -lt "$BIG_RUNS" ]; do
	measure sh -c "exec $annotate --log none <$tmp/big.json" >>"$tmp/k"
	measure jq -c . "$tmp/big.json" >>"$tmp/j"
	i=$((i + 1))
done
med() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
kw=$(cut -d' ' -f1 "$tmp/k" | med); km=$(cut -d' ' -f2 "$tmp/k" | med)
jw=$(cut -d' ' -f1 "$tmp/j" | med); jm=$(cut -d' ' -f2 "$tmp/j" | med)
kc=$(cut -d' ' -f3 "$tmp/k" | med); jc=$(cut -d' ' -f3 "$tmp/j" | med)
printf '  kwh-annotate    wall %6.2f s  cpu %6.2f s  %8d KiB\n' "$kw" "$kc" "$km"
printf '  jq -c .         wall %6.2f s  cpu %6.2f s  %8d KiB\n' "$jw" "$jc" "$jm"
printf '  ratio kwh/jq    wall %s  cpu %s  memory %s  (target <= 1.00)\n' \
	"$(ratio "$kw" "$jw")" "$(ratio "$kc" "$jc")" "$(ratio "$km" "$jm")"
