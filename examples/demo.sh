#!/usr/bin/env bash
# The whole story of the article, on this machine, with nothing else
# running and no cluster: a git server with a repository holding
# .ci/workflow.yaml, the kwh chain behind socat, a signed push sent with
# curl, and what each stage made of it.  Everything listens on 127.0.0.1
# and is stopped at the end.  With KUBECONFIG set, kwh-apply creates the
# Workflow for real instead of a client-side dry run.
# Run by `make demo`; KWH_BIN says where the tools are (default: bin/).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
KWH_BIN=${KWH_BIN:-$top/bin}
export PATH="$KWH_BIN:$PATH"
work=$(mktemp -d "${TMPDIR:-/tmp}/kwh-demo.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

bold=$(tput bold 2>/dev/null || true); off=$(tput sgr0 2>/dev/null || true)
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$off"; }
free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$(( 10000 + RANDOM % 22000 ))	# below the ephemeral ports
		[ -n "$(ss -Hant "( sport = :$p )")" ] || { echo "$p"; return; }
	done
	echo "demo: no free port" >&2; exit 1
}
# Waits for a listener without connecting to it (a connection would start
# a chain that reads an empty request).
wait_port() {
	for _ in $(seq 1 200); do
		ss -Hltn "( sport = :$1 )" | grep -q . && return 0
		sleep 0.05
	done
	echo "demo: nothing listens on 127.0.0.1:$1" >&2; exit 1
}

step "1. A repository with the article's .ci/workflow.yaml, served by git daemon"
git init -q -b main "$work/src"
mkdir -p "$work/src/.ci"
cp "$top/examples/workflows/dag.yaml" "$work/src/.ci/workflow.yaml"
echo 'package main' > "$work/src/main.go"
git -C "$work/src" add -A
git -C "$work/src" -c user.name=Demo -c user.email=demo@example.com commit -qm "Build and deploy with Argo"
mkdir -p "$work/git/demo"
git clone -q --bare "$work/src" "$work/git/demo/hello.git"
rev=$(git -C "$work/src" rev-parse HEAD)
gitport=$(free_port)
git daemon --reuseaddr --export-all --base-path="$work/git" --listen=127.0.0.1 \
	--port="$gitport" --log-destination=none "$work/git" &
pids+=($!)
wait_port "$gitport"
echo "git://127.0.0.1:$gitport/demo/hello.git at $rev"

step "2. The chain behind socat, each stage's envelope saved to show below"
printf 'demo-secret-%s\n' "$RANDOM$RANDOM" > "$work/secret"
chmod 600 "$work/secret"
if [ -n "${KUBECONFIG:-}" ]; then apply_mode=""; else apply_mode="--dry-run=client"; fi
cat > "$work/chain" <<CHAIN
#!/bin/sh
log=$work/kwh.log
kwh-verify --secret-file $work/secret --log \$log | tee $work/1-verify.json |
kwh-annotate --events push,delete --log \$log | tee $work/2-annotate.json |
kwh-fetch --cache $work/cache --remote 'git://127.0.0.1:$gitport/{full_name}.git' --log \$log | tee $work/3-fetch.json |
kwh-apply $apply_mode --namespace ci --allow-kind argoproj.io/Workflow --log \$log | tee $work/4-apply.json |
kwh-respond --log \$log
CHAIN
chmod +x "$work/chain"
sed 's/^/    /' "$work/chain"
port=$(free_port)
socat -t 10 TCP-LISTEN:"$port",bind=127.0.0.1,reuseaddr,fork SYSTEM:"$work/chain" &
pids+=($!)
wait_port "$port"
echo "listening on http://127.0.0.1:$port/"

step "3. A push, signed by kwh-sign, sent with curl"
jq --arg rev "$rev" --arg url "git://127.0.0.1:$gitport/demo/hello.git" '
	.ref = "refs/heads/main" | .after = $rev | .head_commit.id = $rev |
	.repository.full_name = "demo/hello" | .repository.name = "hello" |
	.repository.git_url = $url | .repository.clone_url = $url |
	.repository.ssh_url = "git@127.0.0.1:demo/hello.git" |
	.repository.default_branch = "main"' \
	"$top/tests/fixtures/github/push-payload.json" > "$work/payload.json"
kwh-sign --secret-file "$work/secret" --event push "$work/payload.json" > "$work/request"
headers=()
while IFS= read -r line; do
	line=${line%$'\r'}
	[ -z "$line" ] && break
	case $line in
	X-GitHub-*|X-Hub-*|Content-Type:*) headers+=(-H "$line") ;;
	esac
done < <(tail -n +2 "$work/request")
printf 'curl -sS'; printf " -H '%s'" "${headers[@]:1:1}" "${headers[@]:3:1}"; echo " … --data-binary @payload.json http://127.0.0.1:$port/"

step "4. The HTTP response"
curl -sS -i --max-time 15 "${headers[@]}" --data-binary @"$work/payload.json" "http://127.0.0.1:$port/" | tee "$work/response"
echo

step "5. What each stage did"
echo "kwh-verify:   $(jq -c '{delivery, event, verified, deadline}' "$work/1-verify.json")"
echo "kwh-annotate:"
jq -r '.annotations // {} | to_entries[] | "    \(.key)=\(.value)"' "$work/2-annotate.json"
echo "kwh-fetch:    $(jq -c '{source, objects: (.manifests // [] | length)}' "$work/3-fetch.json")"
echo "kwh-apply:    $(jq -c '.results // .response' "$work/4-apply.json")"
echo "log:"
sed 's/^/    /' "$work/kwh.log"

step "6. The annotated Workflow that $( [ -n "$apply_mode" ] && echo 'would be' || echo 'was' ) created"
jq '.manifests[0] | {apiVersion, kind, metadata} ' "$work/4-apply.json"
if [ -n "$apply_mode" ]; then
	echo "(a client-side dry run: set KUBECONFIG to create it in a cluster)"
fi
grep -q '^HTTP/1.1 20[01] ' "$work/response"
