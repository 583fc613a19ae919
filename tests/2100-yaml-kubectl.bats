#!/usr/bin/env bats
# lib/yaml (through tests/tools/kwh-yaml2json) against kubectl, the oracle:
# every file of tests/fixtures/yaml is converted by both and the outputs,
# normalised with jq_norm (jq -S, numbers as doubles), must be identical.  See lib/yaml.c for the
# rules and the known divergences (tested at the end of this file).
# kubectl's side is its recorded conversion (tests/fixtures/kubectl/yaml,
# made by tests/record-kubectl), so these tests run without kubectl; the
# last tests compare the recording with a live kubectl >= 1.30 when there
# is one.

load test_helper

YDIR=$FIXTURES/yaml
KGOLD=$GOLDEN/yaml

setup() {
	setup_tmp
	export YDIR KGOLD TOP_DIR
	export -f kube jq_norm kube_live
}

# kube FILE: kubectl's bare conversion of FILE (of tests/fixtures/yaml or
# the recorded generated/ inputs), one object after another, as recorded;
# fails (1) where kubectl refused the file.  A file changed since it was
# recorded is an error (2): re-record with tests/record-kubectl yaml.
kube() {
	local rel sum
	case $1 in
	"$YDIR"/*) rel=${1#"$YDIR"/} ;;
	"$KGOLD"/generated/*) rel=generated/${1##*/} ;;
	*) echo "kube: $1 is not a recorded input" >&2; return 2 ;;
	esac
	case $rel in
	generated/*) ;;
	*)
		sum=$(sed -n "s|^\([0-9a-f]*\)  tests/fixtures/yaml/$rel\$|\1|p" "$KGOLD/SOURCES")
		[ "$sum" = "$(sha256sum <"$1" | cut -d' ' -f1)" ] ||
			{ echo "kube: $rel changed since kubectl converted it: re-record with tests/record-kubectl yaml" >&2; return 2; }
		;;
	esac
	rel=${rel%.yaml}
	if [ -f "$KGOLD/convert/$rel.json" ]; then
		cat "$KGOLD/convert/$rel.json"
	elif [ -f "$KGOLD/convert/$rel.refused" ]; then
		return 1
	else
		echo "kube: $rel was not recorded: re-record with tests/record-kubectl yaml" >&2
		return 2
	fi
}

# kube_live FILE: what kube FILE records, from the kubectl on PATH.
kube_live() {
	kubectl patch --local --type merge -p '{}' -o json -f "$1"
}

@test "every corpus file converts exactly as kubectl converts it" {
	local f n=0 bad=
	for f in "$YDIR"/*.yaml; do
		kube "$f" >"$TMP/k.json" 2>"$TMP/k.err" ||
			{ bad="$bad $(basename "$f")(kubectl: $(cat "$TMP/k.err"))"; continue; }
		kwh-yaml2json "$f" >"$TMP/y.json" 2>"$TMP/y.err" ||
			{ bad="$bad $(basename "$f")(kwh: $(cat "$TMP/y.err"))"; continue; }
		jq_norm . "$TMP/k.json" >"$TMP/k.norm"
		jq_norm . "$TMP/y.json" >"$TMP/y.norm"
		if ! diff -u "$TMP/k.norm" "$TMP/y.norm" >"$TMP/diff"; then
			bad="$bad $(basename "$f")"
			cat "$TMP/diff" >&2
		fi
		n=$((n + 1))
	done
	[ -z "$bad" ] || fail "differ from kubectl:$bad"
	[ "$n" -ge 25 ] || fail "only $n corpus files compared"
}

@test "every corpus file matches kubectl annotate (annotation added on the kwh side)" {
	local f bad=
	for f in "$YDIR"/*.yaml; do
		jq_norm . "$KGOLD/annotate/$(basename "$f" .yaml).json" >"$TMP/k.norm" || { bad="$bad $(basename "$f")"; continue; }
		kwh-yaml2json "$f" | jq_norm '.metadata.annotations.kwh = "yes"' >"$TMP/y.norm"
		diff -u "$TMP/k.norm" "$TMP/y.norm" >&2 || bad="$bad $(basename "$f")"
	done
	[ -z "$bad" ] || fail "differ from kubectl annotate:$bad"
}

@test "multi-document files give as many objects as kubectl, in order" {
	local f
	for f in multi-doc list foolist dots-end comment-only json crlf; do
		kube "$YDIR/$f.yaml" | jq -c '[.kind, .metadata.name]' >"$TMP/k"
		kwh-yaml2json "$YDIR/$f.yaml" | jq -c '[.kind, .metadata.name]' >"$TMP/y"
		diff -u "$TMP/k" "$TMP/y" || fail "$f"
	done
	run -0 bash -c "kwh-yaml2json '$YDIR/multi-doc.yaml' | jq -s length"
	assert_output 4
	run -0 bash -c "kwh-yaml2json '$YDIR/foolist.yaml' | jq -sc 'map([.apiVersion, .kind])'"
	assert_output '[["example.com/v1","Widget"],["v2","Gadget"],["v1","ConfigMap"],["v1","ConfigMap"]]'
}

@test "spot checks of the scalar rules (values and types)" {
	run -0 bash -c "kwh-yaml2json '$YDIR/bools.yaml' | jq -c '.data.a, .data.b, .data.keys'"
	assert_line -n 0 '[true,true,true,true,true,true,true,true,true,true,true]'
	assert_line -n 1 '[false,false,false,false,false,false,false,false,false,false,false]'
	assert_line -n 2 '{"false":5,"n":7,"true":6}'
	run -0 bash -c "kwh-yaml2json '$YDIR/ints.yaml' | jq -c '.data.oct, .data.hex[:4], .data.bin[:4]'"
	assert_line -n 0 '[8,-8,8,8,15,7,-7,8,9223372036854776000]'
	assert_line -n 1 '[31,31,-31,31]'
	assert_line -n 2 '[5,3,-5,5]'
	run -0 bash -c "kwh-yaml2json '$YDIR/float-keys.yaml' | jq -c '.data | [.\"1.2345679e+08\", .\"1e+06\", .\"1e-05\", .\"-0\", .\".inf\", .\".nan\"]'"
	assert_output '["c","d","f","j",false,"m"]'
	run -0 bash -c "kwh-yaml2json '$YDIR/floats.yaml' | jq -c '.data.c[:2], (.data.b[0] | tostring)'"
	assert_line -n 0 '["1e400","-1e400"]'
	assert_line -n 1 '"0"'
}

@test "YAML that kubectl refuses is refused, with the right return value" {
	local f bad=
	for f in "$YDIR"/invalid/*.yaml; do
		run kube "$f"
		[ "$status" -eq 1 ] || bad="$bad $(basename "$f")(kubectl: status $status)"
		run kwh-yaml2json "$f"
		[ "$status" -eq 1 ] || bad="$bad $(basename "$f")(kwh status $status)"
	done
	[ -z "$bad" ] || fail "$bad"
	[ "$(ls "$YDIR"/invalid/*.yaml | wc -l)" -ge 30 ]
	run -1 --separate-stderr kwh-yaml2json "$YDIR/invalid/top-sequence.yaml"
	assert_equal "${stderr##*(}" "-3)"
	run -1 --separate-stderr kwh-yaml2json "$YDIR/invalid/nested-list.yaml"
	assert_equal "${stderr##*(}" "-3)"
	run -1 --separate-stderr kwh-yaml2json "$YDIR/invalid/nan-value.yaml"
	assert_equal "${stderr##*(}" "-1)"
	run -1 --separate-stderr kwh-yaml2json "$YDIR/invalid/unclosed-flow.yaml"
	assert_equal "${stderr##*(}" "-1)"
}

@test "errors give the line and column in the whole file" {
	run -1 --separate-stderr kwh-yaml2json "$YDIR/invalid/bad-indent.yaml"
	assert_equal "$stderr" "kwh-yaml2json: '$YDIR/invalid/bad-indent.yaml': line 6, column 5: mapping values are not allowed in this context (-1)"
	run -1 --separate-stderr kwh-yaml2json "$YDIR/invalid/unknown-anchor.yaml"
	assert_equal "$stderr" "kwh-yaml2json: '$YDIR/invalid/unknown-anchor.yaml': line 4, column 11: unknown anchor 'nope' referenced (-1)"
	run -1 --separate-stderr kwh-yaml2json "$YDIR/invalid/tab-indent.yaml"
	assert_regex "$stderr" ": line 5, column 1: found character that cannot start any token"
	run -1 --separate-stderr kwh-yaml2json "$YDIR/invalid/separator-dashes.yaml"
	assert_regex "$stderr" ": line 4, column 4: invalid document separator"
	# a later document: lines are counted from the top of the file
	printf 'kind: A\n---\nkind: B\n---\n# c\nkind: C\nx: [1,\n' >"$TMP/late.yaml"
	run -1 --separate-stderr kwh-yaml2json "$TMP/late.yaml"
	assert_regex "$stderr" ": line 8, column 1: did not find expected node content"
	# after non-ASCII text, columns count characters
	printf 'kind: A\nmetadata: {name: "é€😀", x: *no}\n' >"$TMP/col.yaml"
	run -1 --separate-stderr kwh-yaml2json "$TMP/col.yaml"
	assert_regex "$stderr" ": line 2, column 28: unknown anchor 'no' referenced"
}

@test "limit: total size" {
	local size
	size=$(wc -c <"$YDIR/merge.yaml")
	run -0 kwh-yaml2json -b "$size" "$YDIR/merge.yaml"
	run -1 --separate-stderr kwh-yaml2json -b "$((size - 1))" "$YDIR/merge.yaml"
	assert_regex "$stderr" "line 1, column 1: file is $size bytes, more than the limit of $((size - 1)) \(-2\)"
	head -c $((4 * 1024 * 1024 + 1)) /dev/zero | tr '\0' ' ' >"$TMP/big.yaml"
	run -1 --separate-stderr kwh-yaml2json "$TMP/big.yaml"
	assert_regex "$stderr" "more than the limit of 4194304 \(-2\)"
}

@test "limit: depth, without recursing on the C stack" {
	# 100 levels pass by default, 101 do not (the top mapping is level 1)
	{ printf 'kind: Deep\nx: '; printf '%.0s[' $(seq 99); printf '%.0s]' $(seq 99); echo; } >"$TMP/d100.yaml"
	{ printf 'kind: Deep\nx: '; printf '%.0s[' $(seq 100); printf '%.0s]' $(seq 100); echo; } >"$TMP/d101.yaml"
	run -0 kwh-yaml2json "$TMP/d100.yaml"
	# kubectl converted the same file when it was recorded
	cmp "$TMP/d100.yaml" "$KGOLD/generated/depth-100.yaml"
	kube "$KGOLD/generated/depth-100.yaml" | jq_norm . >"$TMP/k"
	[ -s "$TMP/k" ]
	kwh-yaml2json "$TMP/d100.yaml" | jq_norm . >"$TMP/y"
	diff -u "$TMP/k" "$TMP/y"
	run -1 --separate-stderr kwh-yaml2json "$TMP/d101.yaml"
	assert_regex "$stderr" "line 2, column 103: nested deeper than 100 \(-2\)"
	# a hostile flow nesting of 2 MiB is refused quickly
	{ printf 'kind: Deep\nx: '; head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' '['; } >"$TMP/deep.yaml"
	run -1 --separate-stderr timeout 10 kwh-yaml2json "$TMP/deep.yaml"
	assert_regex "$stderr" "nested deeper than 100 \(-2\)"
	# block nesting too, and a smaller bound from the caller
	{ echo 'kind: Deep'; for i in $(seq 0 20); do printf "%$((i * 2))sk$i:\n" ''; done; } >"$TMP/block.yaml"
	run -0 kwh-yaml2json -D 21 "$TMP/block.yaml"
	run -1 --separate-stderr kwh-yaml2json -D 20 "$TMP/block.yaml"
	assert_regex "$stderr" "nested deeper than 20 \(-2\)"
}

@test "limit: depth reached through aliases is counted" {
	{ echo 'kind: Chain'; echo 'a0: &a0 [x]'; for i in $(seq 1 30); do echo "a$i: &a$i [*a$((i - 1))]"; done; } >"$TMP/chain.yaml"
	run -0 kwh-yaml2json -D 32 "$TMP/chain.yaml"
	run -1 --separate-stderr kwh-yaml2json -D 31 "$TMP/chain.yaml"
	assert_regex "$stderr" "line 32, column 12: nested deeper than 31 \(-2\)"
}

@test "limit: a billion laughs is refused quickly, in bounded memory" {
	# 256 MiB of address space (not under ASan, which reserves terabytes)
	local cap='ulimit -v 262144;'
	[ -z "${KWH_SANITIZED:-}" ] || cap=
	run -1 --separate-stderr bash -c "$cap timeout 10 kwh-yaml2json '$YDIR/limits/billion-laughs.yaml'"
	assert_regex "$stderr" "more than 1000000 nodes \(aliases expanded\) \(-2\)"
	# kubectl refuses it too
	run kube "$YDIR/limits/billion-laughs.yaml"
	assert_failure 1
	# the bound is exact: 3 levels of 10 expand to 1+10+100+1000 sequences
	# and scalars, each alias counted as the size of what it stands for
	{ echo 'kind: Few'; echo 'a: &a [l,l,l,l,l,l,l,l,l,l]'; echo 'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]'; } >"$TMP/few.yaml"
	# nodes: the top mapping (1), kind+Few (2), a+[11] (12),
	# b+[1+10*11] (112) = 127
	run -0 kwh-yaml2json -n 127 "$TMP/few.yaml"
	run -1 --separate-stderr kwh-yaml2json -n 126 "$TMP/few.yaml"
	assert_regex "$stderr" "line 3, column 35: more than 126 nodes"
}

@test "kwh_yaml_document: one document, any shape, null when empty" {
	printf '' >"$TMP/empty.yaml"
	run -0 kwh-yaml2json -d "$TMP/empty.yaml"
	assert_output null
	printf -- '- a\n- 010\n' >"$TMP/seq.yaml"
	run -0 bash -c "kwh-yaml2json -d '$TMP/seq.yaml' | jq -c ."
	assert_output '["a",8]'
	printf 'apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: "https://x", insecure-skip-tls-verify: yes}\n---\nsecond: ignored\n' >"$TMP/kubeconfig"
	run -0 bash -c "kwh-yaml2json -d '$TMP/kubeconfig' | jq -c .clusters"
	assert_output '[{"cluster":{"insecure-skip-tls-verify":true,"server":"https://x"},"name":"c"}]'
	run -0 bash -c "kwh-yaml2json -d '$YDIR/anchors.yaml' | jq_norm . > '$TMP/d'; kube '$YDIR/anchors.yaml' | jq_norm . | diff - '$TMP/d'"
	run -1 kwh-yaml2json -d "$YDIR/invalid/unclosed-flow.yaml"
}

@test "divergence: integers beyond 2^53 are rounded to doubles (kubectl keeps int64)" {
	local f=$YDIR/divergent/big-ints.yaml
	run -0 bash -c "kube '$f' | grep -E '\"[abc]\":'"
	assert_line -n 0 '        "a": 9223372036854775807,'
	assert_line -n 1 '        "b": 9007199254740993,'
	assert_line -n 2 '        "c": 123456789012345678,'
	run -0 bash -c "kwh-yaml2json '$f' | jq -c '.data | map_values(. + 0) | [.a == 9223372036854775808, .b == 9007199254740992, .c == 123456789012345680, .e == 18446744073709551616]'"
	assert_output '[true,true,true,true]'
	run -0 bash -c "kwh-yaml2json '$f' | grep -E '\"b\":'"
	assert_output '        "b": 9007199254740992,'
}

@test "divergence: invalid UTF-8 is refused (kubectl turns it into U+FFFD)" {
	run -0 bash -c "kube '$YDIR/divergent/invalid-utf8.yaml' | jq -r .data.a"
	assert_output $'\xef\xbf\xbd'
	run -1 --separate-stderr kwh-yaml2json "$YDIR/divergent/invalid-utf8.yaml"
	assert_regex "$stderr" "line 4, column 11: invalid leading UTF-8 octet \(-1\)"
}

# --- the recording against a live kubectl -------------------------------

@test "live kubectl: converts and refuses every file as recorded" {
	need_kubectl
	local f bad= rel
	for f in "$YDIR"/*.yaml "$YDIR"/divergent/*.yaml "$YDIR"/invalid/*.yaml "$YDIR"/limits/*.yaml \
	    "$KGOLD"/generated/*.yaml; do
		rel=${f#"$YDIR"/}
		run kube "$f"
		[ "$status" -le 1 ] || { bad="$bad $rel(not recorded: $output)"; continue; }
		if kube_live "$f" >"$TMP/live" 2>/dev/null; then
			[ "$status" -eq 0 ] || { bad="$bad $rel(refused when recorded, accepted now)"; continue; }
			kube "$f" | cmp -s - "$TMP/live" || bad="$bad $rel(differs)"
		else
			[ "$status" -eq 1 ] || bad="$bad $rel(accepted when recorded, refused now)"
		fi
	done
	[ -z "$bad" ] || fail "kubectl $(kubectl_version) differs from the recording ($(cat "$KGOLD/VERSION")):$bad"
}

@test "live kubectl: every corpus file converts exactly as kubectl converts it" {
	need_kubectl
	local f n=0 bad=
	for f in "$YDIR"/*.yaml; do
		kube_live "$f" | jq_norm . >"$TMP/k.norm"
		kwh-yaml2json "$f" | jq_norm . >"$TMP/y.norm"
		diff -u "$TMP/k.norm" "$TMP/y.norm" >&2 || bad="$bad $(basename "$f")"
		kubectl annotate --local -f "$f" kwh=yes -o json | jq_norm . >"$TMP/k.norm"
		kwh-yaml2json "$f" | jq_norm '.metadata.annotations.kwh = "yes"' >"$TMP/y.norm"
		diff -u "$TMP/k.norm" "$TMP/y.norm" >&2 || bad="$bad $(basename "$f")(annotate)"
		n=$((n + 1))
	done
	[ -z "$bad" ] || fail "differ from kubectl:$bad"
	[ "$n" -ge 25 ]
}
