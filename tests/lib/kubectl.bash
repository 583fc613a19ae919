# kubectl as the oracle: live where a usable kubectl is installed, else the
# golden files it recorded (tests/fixtures/kubectl, made by
# tests/record-kubectl; layout in tests/k8s-apiserver.md).
# Sourced by tests/test_helper.bash and by tests/record-kubectl.
#
#   kubectl_version        prints the gitVersion of the kubectl on PATH
#                          (e.g. v1.32.4-dispatcher), nothing when none answers
#   kubectl_usable         true when that kubectl is 1.30 or newer
#                          (KUBECTL_MIN_MINOR); a 1.20 counts as absent
#   need_kubectl           in a bats test or setup: skip the test, with the
#                          reason, unless kubectl_usable
#   GOLDEN                 the golden files' directory
#   golden_current SET     true when the inputs SET was recorded from are
#                          unchanged (SET/SOURCES); else says to re-record
#   golden_normalise [--sort] [--exchanges] < SESSION
#                          a recorded (or replayed) API session, one line per
#                          step and per exchange, with what varies per run
#                          replaced (see _GOLDEN_JQ)
#   golden_replay SESSION > REPLAYED
#                          sends the session's recorded requests with curl to
#                          the running test API server (apiserver_start),
#                          in order, and prints the session with the answers
#                          this server gave in place of the recorded ones

KUBECTL_MIN_MAJOR=1
KUBECTL_MIN_MINOR=30
GOLDEN=${TESTS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}/fixtures/kubectl

kubectl_version() {
	command -v kubectl >/dev/null 2>&1 || return 0
	local v
	v=$(kubectl version --client -o json 2>/dev/null | jq -r '.clientVersion.gitVersion // empty' 2>/dev/null)
	# older clients without -o json: "Client Version: v1.20.15" or version.Info{...GitVersion:"v1.20.15"...}
	[ -n "$v" ] || v=$(kubectl version --client 2>/dev/null | grep -o 'v[0-9][0-9]*\.[0-9][0-9]*[^ ",}]*' | head -n 1)
	printf '%s\n' "$v"
}

# kubectl_version_ok VERSION: VERSION (v1.32.4, 1.32.4-dispatcher, v1.30.0+k3s1...)
# is at least KUBECTL_MIN_MAJOR.KUBECTL_MIN_MINOR.
kubectl_version_ok() {
	[[ $1 =~ ^v?([0-9]+)\.([0-9]+) ]] || return 1
	local major=$((10#${BASH_REMATCH[1]})) minor=$((10#${BASH_REMATCH[2]}))
	[ "$major" -gt "$KUBECTL_MIN_MAJOR" ] ||
		{ [ "$major" -eq "$KUBECTL_MIN_MAJOR" ] && [ "$minor" -ge "$KUBECTL_MIN_MINOR" ]; }
}

kubectl_usable() {
	kubectl_version_ok "$(kubectl_version)"
}

need_kubectl() {
	local v
	v=$(kubectl_version)
	kubectl_version_ok "$v" ||
		skip "kubectl >= $KUBECTL_MIN_MAJOR.$KUBECTL_MIN_MINOR not installed (found: ${v:-none})"
}

golden_current() {
	local sums=$GOLDEN/$1/SOURCES out
	[ -s "$sums" ] || { echo "golden: $sums is missing" >&2; return 1; }
	if ! out=$(cd "$TOP_DIR" && sha256sum --quiet -c "$sums" 2>&1); then
		printf '%s\n' "$out" >&2
		echo "golden: the inputs of tests/fixtures/kubectl/$1 changed since kubectl recorded them; re-record with tests/record-kubectl $1" >&2
		return 1
	fi
}

# What varies from one run to the next, replaced in every string:
#  - names the server generated (generateName): GENERATED-1, -2... in the
#    order the creates answered them, so identity is still compared;
#  - uids: UID-1, UID-2... in order of first appearance;
#  - RFC 3339 times: TIME; the date, time and pid of kubectl's log lines.
# resourceVersions are kept: each session starts a fresh server, so they
# must come out the same.  --sort: discovery and OpenAPI GETs (kubectl may
# send them in parallel) sorted at the head of each step, for comparing two
# recordings; replays keep the recorded order.
_GOLDEN_JQ='
def uniq: reduce .[] as $x ([]; if index([$x]) then . else . + [$x] end);
def gen_names: [.steps[].exchanges[] | select(.request.method == "POST")
	| select((.request.body | type) == "object" and (.request.body.metadata.generateName | type) == "string")
	| .response.body | objects | .metadata.name | strings] | uniq;
def uids: [.. | objects | .uid? | strings] | uniq;
def discovery: .request.method == "GET" and
	(.request.path | test("^/(version|api|apis|api/v1|apis/[^/]+|apis/[^/]+/[^/]+|openapi/.*)$"));
(gen_names | to_entries | map({key: .value, value: "GENERATED-\(.key + 1)"})) as $names
| (uids | to_entries | map({key: .value, value: "UID-\(.key + 1)"})) as $uids
| ($names + $uids | from_entries) as $map
| (($names + $uids) | map(.key) | join("|")) as $re
| walk(if type == "string" then
	(if $re != "" and test($re) then gsub("(?<m>" + $re + ")"; $map[.m]) else . end)
	| gsub("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z"; "TIME")
	| gsub("(?<l>[IWEF])[0-9]{4} [0-9:.]+ +[0-9]+ "; "\(.l)MMDD TIME PID ")
  else . end)
| .steps | to_entries[] | .key as $i | .value
| (if $exchanges then empty else {step: $i, args, exit, stdout, stderr} end),
  ((.exchanges | if $sort then (map(select(discovery)) | sort_by(tojson)) + map(select(discovery | not)) else . end)[]
   | {step: $i} + .)
'

# With --sort (two recordings compared), what tells one kubectl build from
# another is left out too: the client's version and commit (user agent,
# `kubectl version`), and the extra GET /version that a packaging's
# kubectl-dispatcher wrapper sends before running the real client.
_GOLDEN_CLIENT_JQ='
| if $sort then
	select((.request.user_agent? // "") | startswith("kubectl-dispatcher") | not)
	| walk(if type == "string" then
		gsub("kubectl/v[0-9][^ ]* \\([^)]*\\) kubernetes/[0-9a-f]+"; "kubectl/VERSION")
		| gsub("(?<k>\"?(Client Version|major|minor|gitVersion|gitCommit|buildDate|goVersion)\"?:? *\"?)[^\"\\n]*"; "\(.k)CLIENT")
	  else . end)
  else . end'

golden_normalise() {
	local sort=false exchanges=false
	while [ $# -gt 0 ]; do
		case $1 in
		--sort) sort=true ;;
		--exchanges) exchanges=true ;;
		*) break ;;
		esac
		shift
	done
	jq -c --argjson sort "$sort" --argjson exchanges "$exchanges" "$_GOLDEN_JQ$_GOLDEN_CLIENT_JQ" "$@"
}

# _golden_body FILE CONTENT-TYPE: the body as the recording proxy
# (tests/lib/kubectl-proxy.py) stores it: {"body": JSON} when the content
# type says JSON and it parses, {"body_text"} when UTF-8, else {"body_base64"}.
_golden_body() {
	if [ ! -s "$1" ]; then
		echo '{"body": null}'
	elif [[ $2 == *json* ]] && jq -sc 'if length == 1 then {body: .[0]} else error("not one value") end' "$1" 2>/dev/null; then
		:
	elif iconv -f UTF-8 -t UTF-8 "$1" >/dev/null 2>&1; then
		jq -Rsc '{body_text: .}' "$1"
	else
		base64 -w0 "$1" | jq -Rsc '{body_base64: .}'
	fi
}

# One line of shell assignments per recorded exchange (for golden_replay).
_GOLDEN_REPLAY_JQ='
.steps | to_entries[] | .key as $i | .value.exchanges[] | .request as $q |
"step=\($i | @sh) method=\($q.method | @sh)" +
" target=\(($q.path + (if $q.query then "?" + $q.query else "" end)) | @sh)" +
" ctype=\($q.content_type // "" | @sh) accept=\($q.accept // "" | @sh)" +
" inm=\($q.if_none_match // "" | @sh) ua=\($q.user_agent // "" | @sh)" +
" auth=\($q.auth // "" | @sh)" +
" hasbody=\(if $q.body != null or $q.body_text != null or $q.body_base64 != null then "y" else "" end)" +
" body64=\((if $q.body != null then $q.body | tojson elif $q.body_text != null then $q.body_text
	else "" end) | @base64 | @sh) raw64=\($q.body_base64 // "" | @sh)" +
" recname=\((if $q.method == "POST" and ($q.body | type) == "object" and ($q.body.metadata.generateName | type) == "string"
	then .response.body.metadata.name? // "" else "" end) | @sh)"
'

golden_replay() {
	local session=$1 dir line n=0 step method target ctype accept inm ua auth hasbody body64 raw64 recname
	local status rtype new h v
	dir=$(mktemp -d "${BATS_TEST_TMPDIR:-${TMPDIR:-/tmp}}/replay.XXXXXX") || return 1
	: >"$dir/names.sed"
	: >"$dir/replayed"
	jq -r "$_GOLDEN_REPLAY_JQ" "$session" >"$dir/exchanges" || return 1
	while IFS= read -r line; do
		eval "$line"
		n=$((n + 1))
		# a name the server generated when recorded: this server's instead
		target=$(sed -f "$dir/names.sed" <<<"$target")
		local args=(-sS --max-time 20 -o "$dir/resp" -w '%{http_code}\n%{content_type}\n'
			-H 'Expect:' --cacert "$APISERVER_CA" -X "$method")
		for h in "Content-Type=$ctype" "Accept=$accept" "If-None-Match=$inm" "User-Agent=$ua"; do
			v=${h#*=}
			if [ -n "$v" ]; then args+=(-H "${h%%=*}: $v"); else args+=(-H "${h%%=*}:"); fi # "Name:" removes curl's own
		done
		case $auth in
		token) args+=(-H "Authorization: Bearer $APISERVER_TOKEN") ;;
		other-token) args+=(-H "Authorization: Bearer not-the-token") ;;
		"") ;;
		*) echo "golden_replay: cannot replay auth $auth" >&2; return 1 ;;
		esac
		if [ -n "$hasbody" ]; then
			if [ -n "$raw64" ]; then base64 -d <<<"$raw64" >"$dir/req"; else base64 -d <<<"$body64" >"$dir/req"; fi
			sed -i -f "$dir/names.sed" "$dir/req"
			args+=(--data-binary "@$dir/req")
		fi
		rm -f "$dir/resp"
		{ read -r status; read -r rtype; } < <(curl "${args[@]}" "$APISERVER_URL$target")
		[ -e "$dir/resp" ] || : >"$dir/resp"
		_golden_body "$dir/resp" "$rtype" >"$dir/body"
		printf '{"n":%d,"target":%s,"status":%d,"content_type":%s}\n' "$n" \
			"$(jq -Rn --arg t "$target" '$t')" "${status:-0}" \
			"$(if [ -n "$rtype" ]; then jq -Rn --arg t "$rtype" '$t'; else echo null; fi)" >"$dir/meta"
		jq -c -s '.[0] + .[1]' "$dir/meta" "$dir/body" >>"$dir/replayed"
		if [ -n "$recname" ]; then
			new=$(jq -r '.body.metadata.name // empty' "$dir/body")
			[ -z "$new" ] || [ "$new" = "$recname" ] || printf 's/%s/%s/g\n' "$recname" "$new" >>"$dir/names.sed"
		fi
	done <"$dir/exchanges"
	[ "$n" -gt 0 ] || { echo "golden_replay: no exchanges in $session" >&2; return 1; }
	# the session, each exchange with the request as sent and this server's answer
	jq -c --slurpfile r "$dir/replayed" --rawfile names "$dir/names.sed" '
		($names | split("\n") | map(select(. != "") | split("/") | {from: .[1], to: .[2]})) as $subst
		| def rename: reduce $subst[] as $s (.; gsub($s.from; $s.to));
		reduce (.steps | to_entries[] | .key as $i | .value.exchanges | keys[] | [$i, .]) as $p
			({doc: ., k: 0};
			 $r[.k] as $a
			 | .doc.steps[$p[0]].exchanges[$p[1]] |= (
				.request |= (.path = ($a.target | split("?")[0])
					| .query = ($a.target | if test("\\?") then sub("^[^?]*\\?"; "") else null end)
					| if .body != null then .body |= walk(if type == "string" then rename else . end)
					  elif .body_text != null then .body_text |= rename else . end)
				| .response = ($a | del(.n, .target)))
			 | .k += 1)
		| .doc' "$session"
}

# golden_replay_matches SESSION-NAME: replays $GOLDEN/apiserver/NAME.json and
# fails, showing the differing exchanges, unless the answers are the ones
# kubectl accepted when it was recorded (normalised).
golden_replay_matches() {
	local s=$GOLDEN/apiserver/$1.json
	[ -s "$s" ] || { echo "no golden session $s" >&2; return 1; }
	golden_replay "$s" >"$TMP/$1.replayed" || return 1
	golden_normalise --exchanges "$s" >"$TMP/$1.recorded.norm"
	golden_normalise --exchanges "$TMP/$1.replayed" >"$TMP/$1.replayed.norm"
	[ -s "$TMP/$1.recorded.norm" ] || { echo "empty session $1" >&2; return 1; }
	if ! cmp -s "$TMP/$1.recorded.norm" "$TMP/$1.replayed.norm"; then
		echo "the server's answers differ from those kubectl accepted ($1):" >&2
		diff <(jq -S . "$TMP/$1.recorded.norm") <(jq -S . "$TMP/$1.replayed.norm") | head -n 60 >&2
		return 1
	fi
}

# jq_norm [FILTER [FILE...]]: jq -S (after FILTER) with every number made a
# double, as jq 1.6 printed them all.  jq 1.7 prints a number as it was
# written, so kubectl's 100000000000000000000 and kwh's 1E+20 would differ
# as text while they are the same number.
jq_norm() {
	local f=${1:-.}
	[ $# -gt 0 ] && shift
	jq -S "$f | walk(if type == \"number\" then . + 0 else . end)" "$@"
}
