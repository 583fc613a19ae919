# Loaded by every tests/*.bats file: `load test_helper`.
# Binaries come from KWH_BIN (default: the tree's bin/), so the suite can
# run against an installed copy too.
bats_require_minimum_version 1.5.0
bats_load_library bats-support 2>/dev/null || load /usr/lib/bats/bats-support/load
bats_load_library bats-assert 2>/dev/null || load /usr/lib/bats/bats-assert/load

TESTS_DIR=$(cd "$BATS_TEST_DIRNAME" && pwd)
TOP_DIR=$(cd "$TESTS_DIR/.." && pwd)
KWH_BIN=${KWH_BIN:-$TOP_DIR/bin}
FIXTURES=$TESTS_DIR/fixtures
TOOLS=${KWH_TOOLS:-$TESTS_DIR/tools}
PATH=$KWH_BIN:$TOOLS:$PATH
export KWH_BIN FIXTURES TOOLS TESTS_DIR TOP_DIR PATH

# A fresh scratch directory per test.
setup_tmp() {
	TMP=$(mktemp -d "${BATS_TEST_TMPDIR:-/tmp}/kwh.XXXXXX")
	export TMP
}

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on.
# (Bash only: an interpreter's start-up is slow on a loaded machine.)
free_port() {
	local p i
	for i in $(seq 1 100); do
		# Below the kernel's ephemeral range (32768 and up), so that no
		# outgoing connection holds the port, and unused in any state.
		p=$(( 10000 + RANDOM % 22000 ))
		if [ -z "$(ss -Hant "( sport = :$p )" 2>/dev/null)" ]; then
			echo "$p"
			return 0
		fi
	done
	echo "free_port: no free port found" >&2
	return 1
}

# wait_port PORT [SECONDS]: waits until something listens on 127.0.0.1:PORT.
# It looks with ss(8) rather than connecting, so that a listener that runs
# a chain per connection does not see an empty request.
wait_port() {
	local port=$1 n=$(( ${2:-10} * 20 ))
	while [ "$n" -gt 0 ]; do
		ss -Hltn "( sport = :$port )" 2>/dev/null | grep -q . && return 0
		sleep 0.05; n=$((n - 1))
	done
	echo "nothing listens on 127.0.0.1:$port" >&2
	return 1
}

for _h in "$TESTS_DIR"/lib/*.bash; do
	[ -f "$_h" ] && . "$_h"
done
unset _h
