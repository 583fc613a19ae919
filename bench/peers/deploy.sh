#!/bin/sh
# deploy.sh REVISION FULL_NAME — what a user wires to adnanh/webhook instead
# of kwh: read .ci/workflow.yaml at the pushed revision from git (a local
# mirror, fetched when the revision is new) and `kubectl create -f` it.
# Environment: BENCH_DIR (scratch), GIT_BASE (git://HOST:PORT), KUBECONFIG,
# KUBECTL (the upstream kubectl binary).
set -eu
rev=$1 repo=$2
mirror=$BENCH_DIR/script-mirror/$(printf '%s' "$repo" | tr / _).git
[ -d "$mirror" ] || git init -q --bare "$mirror"
git --git-dir="$mirror" cat-file -e "$rev^{commit}" 2>/dev/null ||
	git --git-dir="$mirror" fetch -q "$GIT_BASE/$repo.git" '+refs/heads/*:refs/heads/*'
git --git-dir="$mirror" show "$rev:.ci/workflow.yaml" |
	"$KUBECTL" --kubeconfig "$KUBECONFIG" --cache-dir "$BENCH_DIR/kube-cache" create -f - -o name
