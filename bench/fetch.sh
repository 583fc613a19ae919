#!/bin/bash
# bench/fetch.sh — kwh-fetch against git(1), side by side, in one run.
#
# Generates a repository of COMMITS commits (default 5000; git fast-import,
# a few seconds), serves it with git daemon on 127.0.0.1, and measures:
#   read:  kwh-fetch reading a cached revision (the whole process: envelope
#          in, manifests out)  vs  git --git-dir=CACHE show REV:PATH
#   fetch: kwh-fetch fetching one new commit into its cache
#          vs  git fetch of the same ref into a bare copy of that cache
#   clone: kwh-fetch's first fetch into an empty cache  vs  git clone --bare
# and prints the times and the ratios kwh/git (median per run for the read,
# mean of FETCH_RUNS for fetch and clone).  The per-process target of
# issue 4 (a read under 5 ms) was withdrawn by issue 14: a one-shot read
# pays libgit2's start-up, certificate bundle included; the resident server
# does not.
#
# Environment: KWH_BIN (default: bin/ of this tree), COMMITS, RUNS (read,
# default 100), FETCH_RUNS (fetch and clone, default 5).  Every command runs
# under timeout(1), so the script is bounded (about a minute).
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
KWH_BIN=${KWH_BIN:-$top/bin}
COMMITS=${COMMITS:-5000}
RUNS=${RUNS:-100}
FETCH_RUNS=${FETCH_RUNS:-5}
fetch=$KWH_BIN/kwh-fetch
T=60

for t in cc git jq python3 timeout "$fetch"; do
	command -v "$t" >/dev/null || { echo "bench: '$t' is missing" >&2; exit 111; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kwh-bench.XXXXXX")
daemon=
cleanup() {
	[ -z "$daemon" ] || kill "$daemon" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
export GIT_CONFIG_NOSYSTEM=1 HOME="$tmp" GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@example.com \
    GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@example.com

ms() { date +%s%N; }
elapsed() { echo $(( ($(ms) - $1) / 1000000 )); }

# The repository: each commit changes .ci/workflow.yaml and one of 200
# source files.
mkdir -p "$tmp/srv/bench"
git init -q --bare -b main "$tmp/srv/bench/repo.git"
python3 - "$COMMITS" > "$tmp/stream" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout.buffer
for i in range(1, n + 1):
    wf = ("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n"
          "  generateName: build-\nspec:\n  entrypoint: main\n  arguments:\n"
          "    parameters:\n    - name: build\n      value: \"%d\"\n" % i).encode()
    src = ("// file %d, revision %d\n" % (i % 200, i) * 40).encode()
    msg = b"commit %d\n" % i
    out.write(b"commit refs/heads/main\n")
    out.write(b"committer b <b@example.com> %d +0000\n" % (1600000000 + i))
    out.write(b"data %d\n%s" % (len(msg), msg))
    out.write(b"M 100644 inline .ci/workflow.yaml\ndata %d\n%s\n" % (len(wf), wf))
    out.write(b"M 100644 inline src/f%d.c\ndata %d\n%s\n" % (i % 200, len(src), src))
PY
git --git-dir="$tmp/srv/bench/repo.git" fast-import --quiet < "$tmp/stream"
git --git-dir="$tmp/srv/bench/repo.git" gc -q
git clone -q "$tmp/srv/bench/repo.git" "$tmp/work"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
git daemon --reuseaddr --base-path="$tmp/srv" --export-all --listen=127.0.0.1 \
    --port="$port" "$tmp/srv" 2>/dev/null &
daemon=$!
n=100
until python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$port" 2>/dev/null; do
	sleep 0.05; n=$((n - 1)); [ $n -gt 0 ] || { echo "bench: git daemon did not start" >&2; exit 111; }
done
url=git://127.0.0.1:$port/bench/repo.git

envelope() {
	jq -nc --arg rev "$1" --arg url "$url" '{kwh: 1, delivery: "bench",
	  annotations: {"k8s-webhook-handler.io/revision": $rev,
	                "k8s-webhook-handler.io/ref": "refs/heads/main"},
	  payload: {repository: {full_name: "bench/repo", clone_url: $url}}}'
}
kwh() { timeout $T "$fetch" --log none --allow-remote-host git://127.0.0.1 --timeout 60 --cache "$1" < "$2" > "$tmp/out"; }

new_commit() {
	printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c%s\n' "$1" \
	    > "$tmp/work/.ci/workflow.yaml"
	git -C "$tmp/work" commit -q -a -m "new $1"
	git -C "$tmp/work" push -q origin main
	git -C "$tmp/work" rev-parse HEAD
}

# clone: first fetch vs git clone --bare
rev=$(git -C "$tmp/work" rev-parse HEAD)
envelope "$rev" > "$tmp/env"
kc=0 gc=0
for i in $(seq "$FETCH_RUNS"); do
	rm -rf "$tmp/kc" "$tmp/gc.git"
	t=$(ms); kwh "$tmp/kc" "$tmp/env"; kc=$((kc + $(elapsed "$t")))
	t=$(ms); timeout $T git clone -q --bare "$url" "$tmp/gc.git"; gc=$((gc + $(elapsed "$t")))
done
[ "$(jq -r .source.revision "$tmp/out")" = "$rev" ] || { echo "bench: kwh-fetch failed" >&2; exit 1; }

# read: a cached revision, whole process each time.  kwh-fetch and git
# alternate, so that a change in the machine's load hits both alike; each
# run is one posix_spawn timed on its own by bench/timeit.c (no shell in
# between, as hyperfine -N measures), and the medians are compared.  No
# timeout(1) here: a cached read touches no network, and kwh-fetch has its
# own deadline.
dir=$(ls -d "$tmp"/kc/*.git)
# The third command, a C program that only returns, is the floor of any
# process on this machine (fork, exec, the dynamic loader, exit).
cc -O2 -o "$tmp/timeit" "$top/bench/timeit.c"
echo 'int main(void) { return 0; }' > "$tmp/empty.c"
cc -O2 -o "$tmp/empty" "$tmp/empty.c"
"$tmp/timeit" "$RUNS" "$tmp/env" \
    -- "$fetch" --log none --allow-remote-host git://127.0.0.1 --timeout 60 --cache "$tmp/kc" \
    -- git --git-dir="$dir" show "$rev:.ci/workflow.yaml" \
    -- "$tmp/empty" > "$tmp/times"
kr=$(sed -n 1p "$tmp/times" | cut -d' ' -f1)
gr=$(sed -n 2p "$tmp/times" | cut -d' ' -f1)
er=$(sed -n 3p "$tmp/times" | cut -d' ' -f1)

# fetch: one new commit, into kwh's cache and into a bare copy of it
cp -a "$dir" "$tmp/gitcache.git"
kf=0 gf=0
for i in $(seq "$FETCH_RUNS"); do
	rev=$(new_commit "$i")
	envelope "$rev" > "$tmp/env"
	t=$(ms); kwh "$tmp/kc" "$tmp/env"; kf=$((kf + $(elapsed "$t")))
	[ "$(jq -r .source.revision "$tmp/out")" = "$rev" ] || { echo "bench: kwh-fetch failed" >&2; exit 1; }
	t=$(ms)
	timeout $T git --git-dir="$tmp/gitcache.git" fetch -q "$url" +refs/heads/main:refs/heads/main
	gf=$((gf + $(elapsed "$t")))
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b ? a / b : 0 }'; }
per() { awk -v a="$1" -v n="$2" 'BEGIN { printf "%.2f", a / n }'; }
echo "repository: $COMMITS commits, served by git daemon on 127.0.0.1"
printf '%-34s %10s %10s %7s\n' "" "kwh-fetch" "git" "ratio"
printf '%-34s %8s ms %8s ms %7s\n' "read cached revision (median of $RUNS)" \
    "$(per "$kr" 1000)" "$(per "$gr" 1000)" "$(ratio "$kr" "$gr")"
printf '%-34s %8s ms %8s ms %7s\n' "  an empty C program, same loop" \
    "$(per "$er" 1000)" "$(per "$er" 1000)" ""
printf '%-34s %8s ms %8s ms %7s\n' "  read less the empty program" \
    "$(per "$((kr - er))" 1000)" "$(per "$((gr - er))" 1000)" "$(ratio "$((kr - er))" "$((gr - er))")"
printf '%-34s %8s ms %8s ms %7s\n' "fetch one new commit (x$FETCH_RUNS)" \
    "$(per "$kf" "$FETCH_RUNS")" "$(per "$gf" "$FETCH_RUNS")" "$(ratio "$kf" "$gf")"
printf '%-34s %8s ms %8s ms %7s\n' "first fetch vs clone --bare (x$FETCH_RUNS)" \
    "$(per "$kc" "$FETCH_RUNS")" "$(per "$gc" "$FETCH_RUNS")" "$(ratio "$kc" "$gc")"
