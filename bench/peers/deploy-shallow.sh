#!/bin/sh
# deploy-shallow.sh REVISION FULL_NAME — deploy.sh for a repository met for
# the first time, as a user would script it for a large one: fetch only the
# pushed revision at depth 1 (git fetch --depth=1 URL SHA, which git daemon's
# protocol v2 allows) into a fresh repository, then `kubectl create -f`.
# Environment: as deploy.sh.
set -eu
rev=$1 repo=$2
dir=$(mktemp -d "$BENCH_DIR/shallow.XXXXXX")
trap 'rm -rf "$dir"' EXIT
git init -q --bare "$dir"
git --git-dir="$dir" fetch -q --depth=1 "$GIT_BASE/$repo.git" "$rev"
git --git-dir="$dir" show "$rev:.ci/workflow.yaml" |
	"$KUBECTL" --kubeconfig "$KUBECONFIG" --cache-dir "$BENCH_DIR/kube-cache" create -f - -o name
