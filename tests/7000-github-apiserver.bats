#!/usr/bin/env bats
# The test GitHub API server: its answers and the requests made to it match
# GitHub's OpenAPI description (tests/fixtures/github-openapi), and its
# checks refuse what GitHub refuses.

load test_helper

setup() { setup_tmp; }
teardown() { github_stop; }

SHA=0123456789abcdef0123456789abcdef01234567

gh() { # gh METHOD PATH [JSON] [AUTH]: curl as a client would
	local args=(-sS --max-time 10 --cacert "$GITHUB_CA" -X "$1" -H "Authorization: ${4:-Bearer $GITHUB_TEST_TOKEN}")
	[ -n "${3:-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
	curl "${args[@]}" "$GITHUB_URL$2"
}

@test "every operation, as curl calls it, matches GitHub's OpenAPI description" {
	github_start
	gh POST "/repos/o/r/statuses/$SHA" '{"state":"pending","context":"kwh","target_url":"https://a.example/x"}'
	id=$(gh POST /repos/o/r/check-runs "{\"name\":\"kwh\",\"head_sha\":\"$SHA\",\"status\":\"in_progress\"}" | jq .id)
	gh PATCH "/repos/o/r/check-runs/$id" '{"conclusion":"success","output":{"title":"t","summary":"s"}}'
	github_control POST /_test/hooks '{"owner":"o","repo":"r","hook_id":1,"url":"http://127.0.0.1:9/","secret":"s"}'
	for i in 1 2 3; do
		github_control POST /_test/deliveries '{"owner":"o","repo":"r","hook_id":1,"guid":"g'$i'","event":"push","payload":{"ref":"x"}}'
	done
	run gh GET '/repos/o/r/hooks/1/deliveries?per_page=2'
	did=$(jq '.[0].id' <<<"$output")
	gh GET "/repos/o/r/hooks/1/deliveries/$did"
	gh POST "/repos/o/r/hooks/1/deliveries/$did/attempts"
	run github_check
	assert_success
	assert_output "6 requests match GitHub's OpenAPI description"
}

@test "the checker fails on what GitHub's description does not allow" {
	github_start
	gh POST "/repos/o/r/statuses/$SHA" '{"context":"no state"}'
	gh GET /repos/o/r/hooks/1/deliveries/x
	run github_check
	assert_failure
	assert_output --partial "status 422 not documented"
	assert_output --partial "body: required property 'state' missing"
	assert_output --partial "path parameter delivery_id is not an integer"
}

@test "deliveries: newest first, per_page and the Link header's cursor walk every page once" {
	github_start
	github_control POST /_test/hooks '{"owner":"o","repo":"r","hook_id":1,"url":"http://127.0.0.1:9/"}'
	for i in 1 2 3 4 5; do
		github_control POST /_test/deliveries '{"owner":"o","repo":"r","hook_id":1,"guid":"g'$i'","event":"push","payload":{}}' >/dev/null
	done
	url="$GITHUB_URL/repos/o/r/hooks/1/deliveries?per_page=2" guids=()
	while [ -n "$url" ]; do
		curl -sS --cacert "$GITHUB_CA" -H "Authorization: token $GITHUB_TEST_TOKEN" -D "$TMP/h" "$url" >"$TMP/b"
		guids+=($(jq -r '.[].guid' "$TMP/b"))
		url=$(sed -n 's/^link: <\(.*\)>; rel="next".*/\1/p' "$TMP/h" | tr -d '\r')
	done
	assert_equal "${guids[*]}" "g5 g4 g3 g2 g1"
}

@test "a redelivery reaches the hook's URL with the same delivery id, signed with the hook's secret" {
	github_start
	port=$(free_port)
	mkdir -p "$TMP/got"
	"$APISERVER_PYTHON" -c '
import http.server, sys, os
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        open(sys.argv[2] + "/body", "wb").write(body)
        open(sys.argv[2] + "/headers", "w").write(str(self.headers))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H); s.timeout = 10; s.handle_request()' "$port" "$TMP/got" &
	hook=$!
	wait_port "$port"
	github_control POST /_test/hooks "{\"owner\":\"o\",\"repo\":\"r\",\"hook_id\":1,\"url\":\"http://127.0.0.1:$port/\",\"secret\":\"s3cret\"}"
	did=$(github_control POST /_test/deliveries '{"owner":"o","repo":"r","hook_id":1,"guid":"abc-1","event":"push","payload":{"ref":"refs/heads/main"},"status_code":0}' | jq .id)
	gh POST "/repos/o/r/hooks/1/deliveries/$did/attempts"
	wait "$hook"
	grep -qi '^X-GitHub-Delivery: abc-1' "$TMP/got/headers"
	want=$(openssl dgst -sha256 -hmac s3cret -r "$TMP/got/body" | cut -d' ' -f1)
	grep -qi "^X-Hub-Signature-256: sha256=$want" "$TMP/got/headers"
	run github_state
	assert_equal "$(jq -c '.redeliveries | map([.guid, .status_code])' <<<"$output")" '[["abc-1",200]]'
}

@test "JWTs: GitHub's iat and exp rules, and a personal token refused on /app" {
	github_start
	jwt() { # jwt IAT EXP [KEY]
		local h c s
		h=$(printf '{"alg":"RS256","typ":"JWT"}' | base64 -w0 | tr '+/' '-_' | tr -d =)
		c=$(printf '{"iat":%s,"exp":%s,"iss":"%s"}' "$1" "$2" "$GITHUB_APP_ID" | base64 -w0 | tr '+/' '-_' | tr -d =)
		s=$(printf '%s.%s' "$h" "$c" | openssl dgst -sha256 -sign "${3:-$GITHUB_DIR/app.pem}" -binary | base64 -w0 | tr '+/' '-_' | tr -d =)
		printf '%s.%s.%s' "$h" "$c" "$s"
	}
	now=$(date +%s)
	run gh POST /app/installations/1/access_tokens '' "Bearer $(jwt $((now - 60)) $((now + 540)))"
	assert_equal "$(jq -r '.token | startswith("ghs_")' <<<"$output")" true
	run gh POST /app/installations/1/access_tokens '' "Bearer $(jwt $((now - 60)) $((now + 900)))"
	assert_output --partial "too far in the future"
	run gh POST /app/installations/1/access_tokens '' "Bearer $(jwt $((now + 300)) $((now + 500)))"
	assert_output --partial "'Issued at' claim"
	run gh POST /app/installations/1/access_tokens '' "Bearer $(jwt $((now - 700)) $((now - 100)))"
	assert_output --partial "'Expiration time' claim"
	run gh POST /app/installations/1/access_tokens
	assert_output --partial "could not be decoded"
	run github_check
	assert_success
}
