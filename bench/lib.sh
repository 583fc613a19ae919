# bench/lib.sh — what the benchmarks that start servers share: sourced by
# bench/peers.sh and bench/slow-clients.sh after they set top (the tree).
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

# the set-up itself, once the functions above exist
export TESTS_DIR=$top/tests BATS_TEST_TMPDIR
BATS_TEST_TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/kwh-bench.XXXXXX")
d=$BATS_TEST_TMPDIR
pids=()
bench_cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	apiserver_stop
	[ -n "${BENCH_KEEP:-}" ] && echo "kept $d" >&2 || rm -rf "$d"
}
trap bench_cleanup EXIT
. "$top/tests/lib/apiserver.bash"
apiserver_start
K=$APISERVER_DIR/kubeconfig
