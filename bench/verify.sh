#!/usr/bin/env bash
# bench/verify.sh — kwh-verify against `jq empty` and `openssl dgst -hmac`,
# side by side in one run.
#
# Makes an ~8 KB and a 25 MiB push payload from
# tests/fixtures/github/push-payload.json, signs each with kwh-sign, then
# measures with hyperfine (wall time, mean of RUNS) and /usr/bin/time
# (peak resident memory):
#   large: kwh-verify (MAC + JSON check + envelope) vs `jq empty FILE`
#          (JSON check only) vs `openssl dgst -sha256 -hmac` (MAC only)
#   small: kwh-verify per run
# Targets (issue 2): large at most 1.0x `jq empty`; peak memory at most
# body + 16 MiB; small under 2 ms per run.
# Environment: KWH_BIN (default bin/ of this tree), RUNS (default 10),
# SMALL_RUNS (default 300).  Bounded: hyperfine runs a fixed count.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
KWH_BIN=${KWH_BIN:-$top/bin}
RUNS=${RUNS:-10}
SMALL_RUNS=${SMALL_RUNS:-300}
for t in hyperfine jq openssl /usr/bin/time python3 "$KWH_BIN/kwh-verify" "$KWH_BIN/kwh-sign"; do
	command -v "$t" >/dev/null || { echo "bench: '$t' is missing" >&2; exit 111; }
done
W=$(mktemp -d "${TMPDIR:-/tmp}/kwh-bench.XXXXXX")
trap 'rm -rf "$W"' EXIT INT TERM

printf 'bench-secret-not-a-real-one\n' > "$W/secret"
fixture=$top/tests/fixtures/github/push-payload.json
cp "$fixture" "$W/small.json"
# 25 MiB: the push fixture with its commit repeated, pretty-printed as GitHub does.
python3 - "$fixture" "$W/big.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
c = {"id": "0" * 40, "tree_id": "f" * 40, "distinct": True,
     "message": "update the README and the build scripts " * 3,
     "timestamp": "2019-05-15T15:20:30-05:00",
     "url": "https://github.com/Codertocat/Hello-World/commit/" + "0" * 40,
     "author": {"name": "Codertocat", "email": "c@example.com", "username": "Codertocat"},
     "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
     "added": [], "removed": [], "modified": ["README.md", "Makefile"]}
limit, n = 25 * 1024 * 1024, 1000
while True:  # grow to just under the limit
    p["commits"] = [c] * n
    text = json.dumps(p, indent=2)
    if len(text) > limit:
        n = n * limit // len(text)
        while len(text) > limit:
            n -= 50
            p["commits"] = [c] * n
            text = json.dumps(p, indent=2)
        break
    n *= 2
open(sys.argv[2], "w").write(text)
PY
for s in small big; do
	"$KWH_BIN/kwh-sign" --secret-file "$W/secret" --event push "$W/$s.json" > "$W/$s.req"
done
# Checked once, so that the timed runs are the success path.
"$KWH_BIN/kwh-verify" --secret-file "$W/secret" --log none < "$W/big.req" | jq -e '.verified == "sha256"' > /dev/null

size=$(wc -c < "$W/big.json")
echo "machine: $(nproc) cores, $(uname -srm); $(date -u +%Y-%m-%dT%H:%MZ)"
echo "payload: $size bytes (large), $(wc -c < "$W/small.json") bytes (small)"

hyperfine -N --version >/dev/null 2>&1 || true
hyperfine --style basic --warmup 2 --runs "$RUNS" --export-json "$W/big.hf.json" \
	-n kwh-verify "$KWH_BIN/kwh-verify --secret-file $W/secret --log none < $W/big.req > /dev/null" \
	-n 'jq empty' "jq empty $W/big.json" \
	-n 'openssl hmac' "openssl dgst -sha256 -hmac bench-secret-not-a-real-one $W/big.json > /dev/null" \
	> "$W/big.hf.txt"
hyperfine --style basic --warmup 20 --runs "$SMALL_RUNS" --export-json "$W/small.hf.json" \
	-n kwh-verify-8k "$KWH_BIN/kwh-verify --secret-file $W/secret --log none < $W/small.req > /dev/null" \
	-n 'jq empty 8k' "jq empty $W/small.json" \
	> "$W/small.hf.txt"

mean() { jq -r --arg n "$2" '.results[] | select(.command == $n) | .mean * 1000' "$1"; }
peak() { /usr/bin/time -f %M sh -c "$1" 2>&1 >/dev/null | tail -n 1; }
kv=$(mean "$W/big.hf.json" kwh-verify)
jqe=$(mean "$W/big.hf.json" 'jq empty')
ossl=$(mean "$W/big.hf.json" 'openssl hmac')
ks=$(mean "$W/small.hf.json" kwh-verify-8k)
jqs=$(mean "$W/small.hf.json" 'jq empty 8k')
mk=$(peak "$KWH_BIN/kwh-verify --secret-file $W/secret --log none < $W/big.req")
mj=$(peak "jq empty $W/big.json")
printf '\n%-34s %10s %10s\n' "25 MiB push" "mean ms" "peak KiB"
printf '%-34s %10.1f %10s\n' "kwh-verify (MAC+JSON+envelope)" "$kv" "$mk"
printf '%-34s %10.1f %10s\n' "jq empty (JSON only)" "$jqe" "$mj"
printf '%-34s %10.1f %10s\n' "openssl dgst -hmac (MAC only)" "$ossl" "-"
printf '\n%-34s %10s\n' "8 KB push" "mean ms"
printf '%-34s %10.2f\n' "kwh-verify" "$ks"
printf '%-34s %10.2f\n' "jq empty" "$jqs"
echo
awk -v a="$kv" -v b="$jqe" 'BEGIN { printf "ratio kwh-verify / jq empty (25 MiB):  %.2fx  (target <= 1.0x)\n", a / b }'
awk -v a="$kv" -v b="$ossl" 'BEGIN { printf "ratio kwh-verify / openssl hmac:       %.2fx\n", a / b }'
awk -v m="$mk" -v s="$size" 'BEGIN { printf "peak memory - body: %.1f MiB  (target <= 16 MiB)\n", (m * 1024 - s) / 1048576 }'
awk -v a="$ks" 'BEGIN { printf "kwh-verify 8 KB: %.2f ms per run\n", a }'
