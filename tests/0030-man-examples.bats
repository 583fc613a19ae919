#!/usr/bin/env bats
# Every man page's EXAMPLES are run, in order, as a reader would type them.
#
# Each page's blocks run in one bash script in a fresh directory that holds
# payload.json (the push fixture) and tests/ (a link to the suite), with
# port 8080 replaced by a free one.  A block that starts a listener
# (TCP-LISTEN) runs in the background until the page is done; when a page
# talks to the port without starting one, the suite starts
# `kwh-verify | kwh-respond` there with the secret "s3cret".  A block may be
# preceded by a roff comment `.\" kwh-examples: not run (REASON)`; it is
# then skipped and counted, and every page must still run at least one.

load test_helper

# examples PAGE OUTDIR: writes OUTDIR/N.sh for each block, N.skip for skipped.
examples() {
	awk -v out="$2" '
		/^\.Sh / { inex = ($2 == "EXAMPLES") }
		!inex { next }
		/^\.\\" kwh-examples: not run/ { skip = 1; next }
		/^\.Bd -literal/ { n++; f = out "/" n (skip ? ".skip" : ".sh"); inblk = 1; skip = 0; printf "" > f; next }
		/^\.Ed/ { inblk = 0; close(f); next }
		inblk {
			line = $0
			gsub(/\\e/, "\\", line); gsub(/\\-/, "-", line); gsub(/\\\(aq/, "\x27", line); gsub(/\\&/, "", line)
			print line >> f
		}' "$1"
}

run_page() { # PAGE
	local page=$1 dir ex port n=0 listener=
	setup_tmp
	dir=$TMP/run ex=$TMP/ex
	mkdir -p "$dir" "$ex"
	cp "$FIXTURES/github/push-payload.json" "$dir/payload.json"
	ln -s "$TESTS_DIR" "$dir/tests"
	printf 's3cret\n' > "$dir/secret"
	examples "$page" "$ex"
	port=$(free_port)
	{
		echo 'set -e'
		echo "cd '$dir'"
		echo 'bg=(); trap '\''for p in "${bg[@]}"; do kill "$p" 2>/dev/null; done'\'' EXIT'
		if grep -qh '8080' "$ex"/*.sh 2>/dev/null && ! grep -qh 'TCP-LISTEN' "$ex"/*.sh; then
			echo "socat -t 10 TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork SYSTEM:'kwh-verify --secret-file secret --log none | kwh-respond --log none' & bg+=(\$!)"
			echo "wait_port $port"
		fi
		for f in $(ls "$ex" | sort -n); do
			case $f in *.skip) continue ;; esac
			n=$((n + 1))
			echo "echo '--- example $f' >&2"
			if grep -q 'TCP-LISTEN' "$ex/$f"; then
				echo "( $(sed "s/8080/$port/g; s/TCP-LISTEN:$port,/TCP-LISTEN:$port,bind=127.0.0.1,/" "$ex/$f") ) & bg+=(\$!)"
				echo "wait_port $port"
			else
				sed "s/8080/$port/g" "$ex/$f"
			fi
		done
	} > "$TMP/page.sh"
	[ "$n" -gt 0 ] || { echo "$page: no example is run"; return 1; }
	export -f wait_port
	run --separate-stderr timeout 60 bash "$TMP/page.sh"
	if [ "$status" -ne 0 ]; then
		echo "$page: examples failed ($status)"; cat "$TMP/page.sh"; echo "$stderr"; return 1
	fi
	[ -n "$output" ] || { echo "$page: the examples printed nothing"; return 1; }
}

@test "kwh-verify(1) EXAMPLES run" { run_page "$TOP_DIR/man/kwh-verify.1"; }
@test "kwh-respond(1) EXAMPLES run" { run_page "$TOP_DIR/man/kwh-respond.1"; }
@test "kwh-sign(1) EXAMPLES run" { run_page "$TOP_DIR/man/kwh-sign.1"; }
@test "kwh-annotate(1) EXAMPLES run" { run_page "$TOP_DIR/man/kwh-annotate.1"; }
@test "kwh-fetch(1) EXAMPLES run" { run_page "$TOP_DIR/man/kwh-fetch.1"; }
@test "kwh-apply(1) EXAMPLES run" { run_page "$TOP_DIR/man/kwh-apply.1"; }
@test "kwh-replay(1) EXAMPLES run" { run_page "$TOP_DIR/man/kwh-replay.1"; }
@test "kwh-handle(1) EXAMPLES run" { run_page "$TOP_DIR/man/kwh-handle.1"; }
@test "kwh-status(1) EXAMPLES run" { run_page "$TOP_DIR/man/kwh-status.1"; }
@test "every man page with EXAMPLES is covered above" {
	covered=$(grep -o 'man/kwh-[a-z]*\.[17]' "$BATS_TEST_FILENAME" | sort -u)
	for m in "$TOP_DIR"/man/*.[17]; do
		grep -q '^\.Sh EXAMPLES' "$m" || continue
		echo "$covered" | grep -qx "man/${m##*/}" || { echo "${m##*/} has EXAMPLES that no test runs"; return 1; }
	done
}
