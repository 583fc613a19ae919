# bench/lib.sh — what the benchmarks that start servers share: sourced by
# bench/peers.sh, slow-clients.sh, cold-start.sh, repos.sh, burst.sh and
# cache-read.sh after they set top (the tree).
# Sourcing it makes a scratch directory d, an array pids of processes to
# stop, a trap that stops them, the test API server (started here, see
# tests/lib/apiserver.bash) and d's removal at exit (BENCH_KEEP=1 keeps d),
# and sets K, the server's kubeconfig.


# wait_port PORT: waits up to 10 s until something listens on 127.0.0.1:PORT.
wait_port() {
	local port=$1 k=200
	while [ "$k" -gt 0 ]; do
		ss -Hltn "( sport = :$port )" 2>/dev/null | grep -q . && return 0
		sleep 0.05; k=$((k - 1))
	done
	echo "${0##*/}: nothing listens on $port" >&2
	return 1
}

# free_port: a TCP port on 127.0.0.1 that nothing uses.
free_port() {
	local p
	while :; do
		p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
		[ -z "$(ss -Hant "( sport = :$p )" 2>/dev/null)" ] && { echo "$p"; return; }
	done
}

# bench_repo WORKFLOW_FILE: a repository octo/repo whose .ci/workflow.yaml is
# WORKFLOW_FILE, served by git daemon on 127.0.0.1; sets rev (its commit)
# and gport, and adds the daemon to pids.
bench_repo() {
	g() { GIT_CONFIG_NOSYSTEM=1 HOME=$d git -c user.name=b -c user.email=b@example.com "$@"; }
	g init -q -b main "$d/work"
	mkdir "$d/work/.ci"
	cp "$1" "$d/work/.ci/workflow.yaml"
	g -C "$d/work" add .ci
	g -C "$d/work" commit -q -m ci
	rev=$(g -C "$d/work" rev-parse HEAD)
	mkdir -p "$d/srv/octo"
	g clone -q --bare "$d/work" "$d/srv/octo/repo.git"
	gport=$(free_port)
	git daemon --reuseaddr --base-path="$d/srv" --export-all --listen=127.0.0.1 \
		--port="$gport" "$d/srv" 2>"$d/git-daemon.log" &
	pids+=($!)
	wait_port "$gport"
}

# bench_body: the push fixture (about 8 KB) for rev of octo/repo, in $d/body.json.
bench_body() {
	jq --arg rev "$rev" '.after = $rev | .ref = "refs/heads/main" |
		.repository.full_name = "octo/repo" | .repository.name = "repo"' \
		"$top/tests/fixtures/github/push-payload.json" >"$d/body.json"
}

# gen_repo COMMITS BLOB_BYTES BRANCHES: prints the path of a bare repository
# (generated once by git fast-import, then kept under $BENCH_CACHE, default
# ~/.cache/kwh-bench, so that reruns are cheap) of COMMITS commits on main,
# each changing .ci/workflow.yaml (a Workflow, generateName ci-) and one of
# 100 files of BLOB_BYTES random (incompressible) bytes, and BRANCHES more
# commits, one on each branch b1..bBRANCHES, forked from main's tip.
gen_repo() {
	local dir=${BENCH_CACHE:-$HOME/.cache/kwh-bench}/repo-$1-$2-$3.git tmp
	if [ ! -d "$dir" ]; then
		mkdir -p "${dir%/*}"
		tmp=$(mktemp -d "$dir.XXXXXX")
		git init -q --bare -b main "$tmp" >&2
		python3 - "$1" "$2" "$3" <<'PY' | git --git-dir="$tmp" fast-import --quiet >&2 || return 1
import os, sys
n, size, br = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
out = sys.stdout.buffer
t = [1600000000]
def commit(ref, i, k, data, parent=None):
    wf = ("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  generateName: ci-\n"
          "spec:\n  entrypoint: main\n  arguments:\n    parameters:\n    - name: build\n"
          "      value: \"%s\"\n" % i).encode()
    msg = ("commit %s\n" % i).encode()
    t[0] += 1
    out.write(b"commit %s\ncommitter b <b@example.com> %d +0000\ndata %d\n%s" % (ref, t[0], len(msg), msg))
    if parent:
        out.write(b"from %s\n" % parent)
    out.write(b"M 100644 inline .ci/workflow.yaml\ndata %d\n%s\n" % (len(wf), wf))
    if data:
        out.write(b"M 100644 inline data/f%d\ndata %d\n" % (k % 100, len(data)) + data + b"\n")
for i in range(1, n + 1):
    commit(b"refs/heads/main", i, i, os.urandom(size) if size else b"")
for k in range(1, br + 1):
    commit(b"refs/heads/b%d" % k, "b%d" % k, k, b"", b"refs/heads/main")
PY
		mv "$tmp" "$dir"
	fi
	echo "$dir"
}

# serve_repos BASE: git daemon on 127.0.0.1 exporting the repositories under
# BASE; sets gport and adds the daemon to pids.
serve_repos() {
	gport=$(free_port)
	git daemon --reuseaddr --base-path="$1" --export-all --listen=127.0.0.1 \
		--port="$gport" "$1" 2>"$d/git-daemon.log" &
	pids+=($!)
	wait_port "$gport"
}

# bench_secret: the shared secret, in $d/secret.
bench_secret() { printf 'kwh-bench-secret' >"$d/secret"; chmod 600 "$d/secret"; }

# start_listen NAME ARGS...: kwh-handle --listen on a free port with the
# secret, the git daemon's remote, a cache $d/cache-NAME and the API server,
# plus ARGS; sets lport and lpid.
start_listen() {
	local name=$1; shift
	lport=$(free_port)
	"$KWH_BIN/kwh-handle" --listen "127.0.0.1:$lport" --secret-file "$d/secret" \
		--remote "git://127.0.0.1:$gport/{full_name}.git" --cache "$d/cache-$name" \
		--kubeconfig "$K" --log "$d/kwh-$name.log" "$@" &
	lpid=$!
	pids+=("$lpid")
	wait_port "$lport"
}

# replay_spool NAME: kwh-replay --budget 300 over $d/spool-NAME (what
# start_listen's --spool "$d/spool-NAME" kept) with the chain of cache
# $d/cache-NAME; prints how long it took and what is left in the spool.
replay_spool() {
	local t0 left
	t0=$(date +%s%N)
	timeout 900 "$KWH_BIN/kwh-replay" --budget 300 --log "$d/replay-$1.log" --spool "$d/spool-$1" \
		"$KWH_BIN/kwh-annotate --log none | $KWH_BIN/kwh-fetch --log none --cache $d/cache-$1 \
		--remote git://127.0.0.1:$gport/{full_name}.git | $KWH_BIN/kwh-apply --log none --kubeconfig $K \
		--cache $d/cache-$1" >/dev/null 2>&1 || true
	left=$(find "$d/spool-$1" -name '*.json' | wc -l)
	awk -v a="$(date +%s%N)" -v b="$t0" -v l="$left" \
		'BEGIN { printf "kwh-replay --budget 300 took %.1f s, %d deliveries left in the spool\n", (a - b) / 1e9, l }'
}

# start_webhook: adnanh/webhook (Debian's webhook) with bench/peers/hooks.json
# (hooks deploy, shallow and true), in a process group of its own so that
# stop_webhook ends the scripts it started too; sets wport and wpid.
start_webhook() {
	wport=$(free_port)
	PEERS_DIR=$top/bench/peers BENCH_DIR=$d BENCH_SECRET=$(cat "$d/secret") \
	GIT_BASE=git://127.0.0.1:$gport KUBECONFIG=$K KUBECTL=$KUBECTL \
		setsid "$WEBHOOK" -hooks "$top/bench/peers/hooks.json" -template -ip 127.0.0.1 \
		-port "$wport" >"$d/webhook.log" 2>&1 &
	wpid=$!
	pgroups+=("$wpid")
	wait_port "$wport"
}
stop_webhook() { kill -- "-$wpid" 2>/dev/null || true; wait "$wpid" 2>/dev/null || true; }

# workers_rss PID: "N workers, RSS total T KiB, largest L KiB" of PID's children.
workers_rss() {
	local c t=0 m=0 r n=0
	for c in $(pgrep -P "$1"); do
		r=$(awk '/^VmRSS/ { print $2 }' /proc/"$c"/status 2>/dev/null) || continue
		[ -n "$r" ] || continue
		n=$((n + 1)); t=$((t + r)); [ "$r" -le "$m" ] || m=$r
	done
	echo "$n workers, RSS total $t KiB, largest $m KiB"
}

# objects: how many objects the API server holds.  Each delivery of the
# benchmarks has a body of its own (deduplication names objects after the
# body's digest), so N deliveries must leave N objects: more is a delivery
# created twice, fewer one lost (or still waiting in a spool).
objects() { apiserver_objects | jq length; }

# machine: one line on when and where.
machine() {
	echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)," \
		"$(. /etc/os-release; echo "$PRETTY_NAME"), libgit2 $(pkg-config --modversion libgit2 2>/dev/null || echo '?')"
}

# the set-up itself, once the functions above exist
export TESTS_DIR=$top/tests BATS_TEST_TMPDIR
BATS_TEST_TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/kwh-bench.XXXXXX")
d=$BATS_TEST_TMPDIR
pids=() pgroups=()
bench_cleanup() {
	local p
	for p in "${pgroups[@]}"; do kill -- "-$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	apiserver_stop
	[ -n "${BENCH_KEEP:-}" ] && echo "kept $d" >&2 || rm -rf "$d"
}
trap bench_cleanup EXIT
. "$top/tests/lib/apiserver.bash"
apiserver_start
K=$APISERVER_DIR/kubeconfig
