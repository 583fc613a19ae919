#!/usr/bin/env bats
# Every tool: --help, --version, usage errors.

load test_helper

tools() { ls "$KWH_BIN" | grep -E '^kwh-[a-z]+$'; }

@test "--help prints the usage on stdout and exits 0" {
	for t in $(tools); do
		run --separate-stderr "$t" --help
		assert_success
		[[ "$output" == "usage: $t "* ]]
		assert_equal "$stderr" ""
	done
}

@test "--version names the tool and kwh's version" {
	v=$(sed -n 's/^KWH_VERSION = //p' "$TOP_DIR/Makefile")
	for t in $(tools); do
		run --separate-stderr "$t" --version
		assert_success
		assert_output "$t (kwh) $v"
	done
}

@test "an unknown option is a usage error: 100, a hint on stderr, nothing on stdout" {
	for t in $(tools); do
		run -100 --separate-stderr "$t" --no-such-option
		assert_output ""
		[[ "$stderr" == *"Try '$t --help'."* ]]
	done
}

# Long options named in a text.
long_options() { grep -oE -- '--[a-z][a-z0-9-]*' | sort -u; }

@test "every tool has a man page whose SYNOPSIS names exactly the options of --help" {
	for t in $(tools); do
		page=$TOP_DIR/man/$t.1
		[ -f "$page" ] || { echo "no man page for $t"; return 1; }
		help=$("$t" --help | long_options)
		# mdoc writes --opt as "Fl \-opt"; the SYNOPSIS ends at the next .Sh.
		syn=$(sed -n '/^\.Sh SYNOPSIS/,/^\.Sh DESCRIPTION/p' "$page" | sed 's/Fl \\-/--/g; s/\\-/-/g' | long_options)
		diff <(echo "$help") <(echo "$syn") || { echo "$t: --help and SYNOPSIS differ"; return 1; }
		# Every option is described in the page's option list.
		for o in $help; do
			grep -qE "^\.It Fl \\\\${o#-}( |$)" "$page" || { echo "$t: $o is not described"; return 1; }
		done
	done
}

@test "man pages are clean mdoc" {
	run mandoc -Tlint -W warning "$TOP_DIR"/man/*.[17]
	assert_success
	assert_output ""
}

# needed PROGRAM: the shared libraries it names itself (its DT_NEEDED).
needed() {
	readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
}

@test "each tool names the shared libraries it uses, and only those" {
	run needed "$KWH_BIN/kwh-fetch"
	assert_output --regexp 'libgit2\.so'
	run needed "$KWH_BIN/kwh-apply"
	assert_output --regexp 'libcurl\.so'
	refute_output --regexp 'libgit2\.so'
	run needed "$KWH_BIN/kwh-annotate"
	assert_output --regexp 'libjq\.so'
	assert_output --regexp 'libpcre2-8\.so'
	run needed "$KWH_BIN/kwh-handle"
	assert_output --regexp 'libgit2\.so'
	assert_output --regexp 'libcurl\.so'
	assert_output --regexp 'libjq\.so'
	assert_output --regexp 'libpcre2-8\.so'
	run needed "$KWH_BIN/kwh-verify"
	assert_output --regexp 'libcrypto\.so'
	refute_output --regexp 'libgit2\.so|libcurl\.so|libpcre2'
	# PCRE2 (--ignore-ref) only where kwh-annotate's stage runs
	for t in kwh-fetch kwh-apply kwh-respond kwh-sign kwh-replay; do
		run needed "$KWH_BIN/$t"
		refute_output --regexp 'libpcre2'
	done
	# linked dynamically, loaded by the dynamic loader: no static copy
	for t in "$KWH_BIN"/kwh-*; do
		[ -x "$t" ] || continue
		readelf -l "$t" | grep -q 'Requesting program interpreter' || fail "$t has no interpreter"
	done
}

@test "make install honours PREFIX and DESTDIR" {
	setup_tmp
	make -s -C "$TOP_DIR" install DESTDIR="$TMP/root" PREFIX=/opt/kwh > "$TMP/out" 2>&1 || { cat "$TMP/out"; return 1; }
	for t in kwh-verify kwh-respond kwh-sign; do
		[ -x "$TMP/root/opt/kwh/bin/$t" ]
		[ -f "$TMP/root/opt/kwh/share/man/man1/$t.1" ]
	done
	[ -f "$TMP/root/opt/kwh/share/man/man7/kwh.7" ]
	"$TMP/root/opt/kwh/bin/kwh-verify" --version
	# Nothing outside DESTDIR.
	[ -z "$(find "$TMP/root" -mindepth 1 -maxdepth 1 ! -name opt)" ]
}

@test "make install puts the completions where bash, zsh and fish look" {
	setup_tmp
	make -s -C "$TOP_DIR" install DESTDIR="$TMP/root" PREFIX=/usr > "$TMP/out" 2>&1 || { cat "$TMP/out"; return 1; }
	[ -f "$TMP/root/usr/share/bash-completion/completions/kwh-verify" ]
	[ -f "$TMP/root/usr/share/zsh/vendor-completions/_kwh" ]
	[ -f "$TMP/root/usr/share/fish/vendor_completions.d/kwh-verify.fish" ]
}
