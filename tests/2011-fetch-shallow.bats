#!/usr/bin/env bats
# Shallow fetches (issue 16, point 3): with a libgit2 that can (kwh-fetch
# --help says "shallow fetches"), the cache fetches a revision at depth 1
# and deepens only when the revision is further down; with an older one,
# the whole history as before.  Both variants are asserted, one per
# library.  The remote: 300 commits, each replacing one 20 KB file of
# random bytes (about 6 MB of history, 20 KB at any one revision).

load test_helper

setup() {
	setup_tmp
	ALLOW=(--allow-remote-host git://127.0.0.1)
	EXTRA=()
	SRV=$TMP/srv
	BARE=$SRV/octo/big.git
	mkdir -p "$SRV/octo"
	git_quiet init -q --bare -b main "$BARE"
	big_commits 1 300
	# while $TMP/cut exists, the remote sends 10 KB of a pack and stalls
	cat > "$TMP/cut-pack" <<EOF
#!/bin/sh
[ -e "$TMP/cut" ] || exec "\$@"
"\$@" | { head -c 10000; sleep 30; }
EOF
	start_hooked_git_daemon "$TMP/cut-pack"
	URL=git://127.0.0.1:$GIT_DAEMON_PORT/octo/big.git
	CACHE=$TMP/cache
	if shallow_fetch; then
		SHALLOW=1
	else
		SHALLOW=0
	fi
}

teardown() {
	stop_git_servers
}

# big_commits FIRST LAST: commits FIRST..LAST on main of $BARE, commit N
# replacing blob.bin with 20 KB of random bytes and .ci/workflow.yaml
# with a ConfigMap whose v is "vN"; commit N's id is then rev_of N.
big_commits() {
	python3 - "$1" "$2" <<'PY' | git_quiet -C "$BARE" fast-import --quiet \
	    --import-marks-if-exists="$TMP/marks" --export-marks="$TMP/marks"
import os, sys
first, last = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
for i in range(first, last + 1):
    blob = os.urandom(20000)
    yaml = b'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: wf\ndata:\n  v: "v%d"\n' % i
    out.write(b'commit refs/heads/main\nmark :%d\n' % i)
    out.write(b'committer t <t@example.com> %d +0000\ndata 3\nc%d\n' % (1700000000 + i, i % 10))
    if i == first and i > 1:
        out.write(b'from :%d\n' % (i - 1))
    out.write(b'M 100644 inline blob.bin\ndata %d\n' % len(blob) + blob + b'\n')
    out.write(b'M 100644 inline .ci/workflow.yaml\ndata %d\n' % len(yaml) + yaml + b'\n')
PY
}

rev_of() {
	awk -v m=":$1" '$1 == m { print $2 }' "$TMP/marks"
}

# deliver N: kwh-fetch for commit N on refs/heads/main; asserts it
# resolves to the manifest of commit N.
deliver() {
	envelope "$(rev_of "$1")" refs/heads/main "$URL" > "$TMP/in"
	run --separate-stderr kwh-fetch --cache "$CACHE" "${ALLOW[@]}" --timeout 30 "${EXTRA[@]}" < "$TMP/in"
	assert_success
	assert_equal "$(jq -r '.manifests[0].data.v, .source.revision' <<< "$output")" "v$1
$(rev_of "$1")"
}

entry() {
	ls -d "$CACHE"/*.git
}

# objects: how many objects the cache entry holds (loose and packed).
objects() {
	git_quiet -C "$(entry)" count-objects -v | awk '$1 == "count:" || $1 == "in-pack:" { n += $2 } END { print n }'
}

# commits: how many commits the entry holds.
commits() {
	git_quiet -C "$(entry)" cat-file --batch-all-objects --batch-check='%(objecttype)' | grep -c '^commit$' || true
}

# fsck_clean: git fsck finds nothing wrong in the entry (it has no HEAD
# branch of its own: that notice aside, nothing).
fsck_clean() {
	run --separate-stderr git_quiet -C "$(entry)" fsck --no-progress --no-dangling --strict
	assert_success
	assert_output ""
	assert_equal "$(grep -v 'HEAD points to an unborn branch' <<< "$stderr")" ""
}

@test "kwh-fetch --help says which fetches this build makes, as pkg-config's libgit2 allows" {
	run --separate-stderr kwh-fetch --help
	assert_success
	v=$(pkg-config --modversion libgit2)
	IFS=. read -r major minor _ <<< "$v"
	if [ "$major" -gt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -ge 8 ]; }; then
		assert_line "git cache: shallow fetches (libgit2 $v)"
	else
		assert_line "git cache: whole-history fetches (libgit2 $v)"
	fi
}

@test "the tip: shallow, a few objects, the manifest read (whole history without shallow support)" {
	deliver 300
	if [ "$SHALLOW" = 1 ]; then
		[ -f "$(entry)/shallow" ]
		assert_equal "$(cat "$(entry)/shallow")" "$(rev_of 300)"
		# the commit, two trees, two blobs: not the 300 commits behind it
		[ "$(objects)" -le 6 ]
		assert_equal "$(commits)" 1
		[ "$(du -sk "$(entry)/objects" | cut -f1)" -lt 200 ]
	else
		[ ! -e "$(entry)/shallow" ]
		assert_equal "$(commits)" 300
		[ "$(objects)" -ge 900 ]
	fi
	fsck_clean
	assert_equal "$(upload_packs)" 1
}

@test "a revision 40 commits behind the tip is found: the entry deepened to it, no further" {
	deliver 300
	deliver 260
	if [ "$SHALLOW" = 1 ]; then
		# depth 1 at the tip; by id (refused by this server); depth 50
		assert_equal "$(upload_packs)" 4
		assert_log_has "not fetched by id, its ref deepened instead"
		[ -f "$(entry)/shallow" ]
		n=$(commits)
		[ "$n" -ge 41 ] && [ "$n" -le 60 ]
	else
		# the first fetch brought it
		assert_equal "$(upload_packs)" 1
		assert_equal "$(commits)" 300
	fi
	fsck_clean
	# and the first commit, far below: deepened further (or already there)
	deliver 1
	assert_equal "$(commits)" 300
	fsck_clean
}

@test "a revision behind the tip, fetched by id where the server allows it" {
	git_quiet -C "$BARE" config uploadpack.allowReachableSHA1InWant true
	deliver 300
	deliver 200
	if [ "$SHALLOW" = 1 ]; then
		# depth 1 at the tip, then the commit by its id: two commits
		assert_equal "$(upload_packs)" 3
		assert_equal "$(commits)" 2
		[[ "$stderr" != *"not fetched by id"* ]]
	else
		assert_equal "$(upload_packs)" 1
		assert_equal "$(commits)" 300
	fi
	fsck_clean
}

@test "newer tips pushed later are fetched into the shallow entry; its packs consolidated, still whole" {
	# the consolidation runs after kwh-fetch's answer, in a process of its
	# own that logs where kwh-fetch does
	EXTRA=(--log "$TMP/fetch.log")
	deliver 300
	before=$(objects)
	for i in $(seq 301 335); do
		big_commits "$i" "$i"
		deliver "$i"
	done
	# the last upkeep has let go of the entry
	flock -w 60 -x "$(entry | sed 's/\.git$/.lock/')" true
	consolidated=$(grep -c "packs consolidated into one" "$TMP/fetch.log" || true)
	if [ "$SHALLOW" = 1 ]; then
		[ -f "$(entry)/shallow" ]
		# each fetch brought its commit and what changed (5 objects; 6
		# counted, a thin pack's base completed), not the history
		[ "$(commits)" -le 36 ]
		[ "$(objects)" -le $(( before + 35 * 6 )) ]
		# 36 of the 20 KB files, not 335
		[ "$(du -sk "$(entry)/objects" | cut -f1)" -lt 1500 ]
	else
		assert_equal "$(commits)" 335
	fi
	# 36 fetches, 36 packs: consolidated past KWH_GIT_PACKS_MAX (32)
	[ "$(ls "$(entry)/objects/pack/"*.pack | wc -l)" -le 4 ]
	# and the old packs went whole, their indexes with them
	assert_equal "$(ls "$(entry)/objects/pack/"*.idx | wc -l)" "$(ls "$(entry)/objects/pack/"*.pack | wc -l)"
	assert_equal "$consolidated" 1
	fsck_clean
	# the entry reads every revision it holds, the remote gone
	stop_pid "$GIT_DAEMON_PID"
	deliver 300
	deliver 335
}

@test "a revision on another branch than its ref: deepened to the whole history, then every branch" {
	printf 'commit refs/heads/side\nmark :9001\ncommitter t <t@example.com> 1800000000 +0000\ndata 5\nside\nfrom :100\nM 100644 inline .ci/workflow.yaml\ndata %d\n%s\n' \
	    "$(cm wf v9001 | wc -c)" "$(cm wf v9001)" |
	    git_quiet -C "$BARE" fast-import --quiet --import-marks="$TMP/marks" --export-marks="$TMP/marks"
	deliver 9001
	if [ "$SHALLOW" = 1 ]; then
		# main at depth 1, by id (refused), main at depth 50 and 1000
		# (whole: 300 commits), then every branch
		assert_equal "$(upload_packs)" 5
		[ ! -e "$(entry)/shallow" ]
	else
		# main, then every branch
		assert_equal "$(upload_packs)" 2
	fi
	assert_equal "$(commits)" 301
	fsck_clean
}

@test "what a fetch cut off at the deadline left (a partial pack) is removed by the next fetch" {
	deliver 300
	touch "$TMP/cut"
	big_commits 301 310
	envelope "$(rev_of 310)" refs/heads/main "$URL" octo/repo main $(( $(now_ms) + 2500 )) > "$TMP/in"
	# killed at the deadline, not gone on in the background (tests/2013)
	run --separate-stderr timeout 20 kwh-fetch --cache "$CACHE" "${ALLOW[@]}" \
	    --max-background-fetches 0 < "$TMP/in"
	assert_failure 1
	assert_equal "$(jq -r '.response.status' <<< "$output")" 504
	if [ "$SHALLOW" = 1 ]; then
		# libgit2 1.9 left the partial pack of the cut fetch
		run -0 compgen -G "$(entry)/objects/pack/pack_git2_*"
	else
		# libgit2 1.5 had not written it yet: one as 1.9 leaves it
		head -c 100000 /dev/urandom > "$(entry)/objects/pack/pack_git2_0123456789abcdef"
	fi
	# the remote sends whole packs again
	rm "$TMP/cut"
	deliver 310
	assert_log_has "partial packs of fetches cut off removed"
	run -1 compgen -G "$(entry)/objects/pack/pack_git2_*"
	fsck_clean
}
