# Git repositories and git servers on 127.0.0.1 for the kwh-fetch tests
# (sourced by test_helper.bash).  Every server started here records its pid
# in $TMP/pids; stop_git_servers (call it in teardown) stops them all.

# git_quiet ARGS...: git with a fixed identity and no user configuration.
git_quiet() {
	GIT_CONFIG_NOSYSTEM=1 HOME=$TMP GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com \
	GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com git "$@"
}

# cm NAME VALUE: a ConfigMap manifest named NAME whose data.v is VALUE.
cm() {
	printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  v: "%s"\n' "$1" "$2"
}

# commit_file WORK PATH CONTENT MESSAGE: writes and commits one file; prints
# the new commit id.
commit_file() {
	mkdir -p "$(dirname "$1/$2")"
	printf '%s\n' "$3" > "$1/$2"
	git_quiet -C "$1" add -A
	git_quiet -C "$1" commit -q -m "$4"
	git_quiet -C "$1" rev-parse HEAD
}

# make_test_repo: builds $TMP/work (a work tree) and $TMP/srv/octo/repo.git
# (the bare repository the servers export), and sets:
#   REV1 REV2 REV3   three commits on main (.ci/workflow.yaml: v = one,
#                    two, three); REV3 is main's tip
#   FEAT             the tip of branch "feature" (v = feature)
#   SRV              $TMP/srv, BARE the bare repository
# At REV3 the tree also holds .ci/dir/ (b.yml, a.yaml, notes.txt),
# .ci/empty.yaml (no objects), .ci/bad.yaml (invalid YAML).
make_test_repo() {
	local w=$TMP/work
	git_quiet init -q -b main "$w"
	REV1=$(commit_file "$w" .ci/workflow.yaml "$(cm wf one)" one)
	REV2=$(commit_file "$w" .ci/workflow.yaml "$(cm wf two)" two)
	mkdir -p "$w/.ci/dir"
	cm b B > "$w/.ci/dir/b.yml"
	printf '%s\n---\n%s\n' "$(cm a1 A)" "$(cm a2 A)" > "$w/.ci/dir/a.yaml"
	echo 'not yaml: [' > "$w/.ci/dir/notes.txt"
	printf '# nothing here\n---\n' > "$w/.ci/empty.yaml"
	printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\n  labels: [a, b\n' > "$w/.ci/bad.yaml"
	REV3=$(commit_file "$w" .ci/workflow.yaml "$(cm wf three)" three)
	git_quiet -C "$w" checkout -q -b feature "$REV2"
	FEAT=$(commit_file "$w" .ci/workflow.yaml "$(cm wf feature)" feature)
	git_quiet -C "$w" checkout -q main
	SRV=$TMP/srv
	BARE=$SRV/octo/repo.git
	mkdir -p "$SRV/octo"
	git_quiet clone -q --bare "$w" "$BARE"
	git_quiet -C "$BARE" config uploadpack.allowAnySHA1InWant false
	export REV1 REV2 REV3 FEAT SRV BARE
}

# force_push_feature VALUE: commits on feature in the work tree and force-pushes
# it, replacing the branch's history with a new commit on main's REV1;
# prints the new commit id.
force_push_feature() {
	local w=$TMP/work rev
	git_quiet -C "$w" checkout -q -B feature "$REV1"
	rev=$(commit_file "$w" .ci/workflow.yaml "$(cm wf "$1")" "$1")
	git_quiet -C "$w" push -q --force "$BARE" feature:feature
	git_quiet -C "$w" checkout -q main
	echo "$rev"
}

# envelope REV REF URL [FULL_NAME [DEFAULT_BRANCH [DEADLINE_MS]]]: an
# envelope as kwh-annotate would write it, on stdout.
envelope() {
	jq -nc --arg rev "$1" --arg ref "$2" --arg url "$3" --arg full "${4:-octo/repo}" \
	    --arg defb "${5:-main}" --argjson deadline "${6:-null}" '
	{kwh: 1, delivery: "d-1", event: "push",
	 annotations: {"k8s-webhook-handler.io/revision": $rev,
	               "k8s-webhook-handler.io/ref": $ref},
	 payload: {repository: {clone_url: $url, ssh_url: $url, git_url: $url,
	                        full_name: $full, default_branch: $defb}}}
	| if $deadline then .deadline = $deadline else . end'
}

# now_ms: the time as Unix epoch milliseconds.
now_ms() {
	date +%s%3N
}

_remember_pid() {
	echo "$1" >> "$TMP/pids"
}

# stop_git_servers: stops every server these helpers started.
stop_git_servers() {
	local pid
	[ -f "$TMP/pids" ] || return 0
	while read -r pid; do
		kill "$pid" 2>/dev/null || true
	done < "$TMP/pids"
	while read -r pid; do
		local n=100
		while kill -0 "$pid" 2>/dev/null && [ $n -gt 0 ]; do sleep 0.05; n=$((n - 1)); done
		kill -9 "$pid" 2>/dev/null || true
	done < "$TMP/pids"
	rm -f "$TMP/pids"
}

# stop_pid PID: stops one server and waits until it is gone.
stop_pid() {
	local n=100
	kill "$1" 2>/dev/null || true
	while kill -0 "$1" 2>/dev/null && [ $n -gt 0 ]; do sleep 0.05; n=$((n - 1)); done
	kill -9 "$1" 2>/dev/null || true
}

# start_git_daemon: serves $SRV over git:// on a free port; sets
# GIT_DAEMON_PORT, GIT_DAEMON_PID; logs each request to $TMP/git-daemon.log.
start_git_daemon() {
	GIT_DAEMON_PORT=$(free_port)
	git daemon --reuseaddr --base-path="$SRV" --export-all --verbose \
	    --log-destination=stderr --listen=127.0.0.1 --port="$GIT_DAEMON_PORT" \
	    "$SRV" 2> "$TMP/git-daemon.log" 3>&- &
	GIT_DAEMON_PID=$!
	_remember_pid "$GIT_DAEMON_PID"
	wait_port "$GIT_DAEMON_PORT"
}

# start_hooked_git_daemon HOOK: start_git_daemon with upload-pack's pack
# writing run through the executable HOOK (uploadpack.packObjectsHook,
# which git honours only in global or system configuration: a
# GIT_CONFIG_GLOBAL file of the test's).  HOOK gets git's pack-objects
# command as its arguments and must run it.
start_hooked_git_daemon() {
	chmod +x "$1"
	printf '[uploadpack]\n\tpackObjectsHook = %s\n' "$1" > "$TMP/daemon.gitconfig"
	GIT_CONFIG_GLOBAL=$TMP/daemon.gitconfig start_git_daemon
}

# start_gated_git_daemon: start_hooked_git_daemon whose fetches wait at a
# gate (30 s at most) until the test opens it: a fetch arriving there makes
# $TMP/gate-reached, $TMP/gate-open lets it on, $TMP/gate-passed is made
# once it is through.  What happened in which order is then told by files,
# not by timings.
start_gated_git_daemon() {
	cat > "$TMP/gate" <<-EOS
	#!/bin/sh
	: > "$TMP/gate-reached"
	n=0
	while [ ! -e "$TMP/gate-open" ] && [ \$n -lt 300 ]; do sleep 0.1; n=\$((n + 1)); done
	"\$@"
	rc=\$?
	: > "$TMP/gate-passed"
	exit \$rc
	EOS
	start_hooked_git_daemon "$TMP/gate"
}

# shallow_fetch: true when kwh-fetch fetches shallow (the libgit2 it was
# built with can): a revision below its ref's tip then costs more fetches.
shallow_fetch() {
	kwh-fetch --help | grep -q '^git cache: shallow fetches'
}

# upload_packs: how many upload-pack requests git daemon served.
upload_packs() {
	grep -c "Request upload-pack" "$TMP/git-daemon.log" || true
}

# start_http_git TOKEN [CERT KEY]: serves $SRV through git http-backend on a
# free port; requests must carry the token as the password of basic
# authentication or as a bearer token (TOKEN "@FILE": any line of FILE,
# read at each request).  With CERT and KEY (PEM files), it
# speaks HTTPS with that certificate.  Sets HTTP_GIT_PORT, HTTP_GIT_PID;
# each request is logged to $TMP/http.log as "METHOD PATH STATUS".  While
# $TMP/stall exists, requests hang.
start_http_git() {
	HTTP_GIT_PORT=$(free_port)
	cat > "$TMP/githttp.py" <<'PY'
import base64, os, ssl, subprocess, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, root, token, log, stall = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
cert = sys.argv[6:8]

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def log_request(self, code="-", size="-"):
        with open(log, "a") as f:
            f.write("%s %s %s\n" % (self.command, self.path, code))
    def log_message(self, fmt, *args):
        pass
    def tokens(self):
        # "@FILE": any line of FILE, read at each request (tokens issued meanwhile)
        if not token.startswith("@"):
            return [token]
        try:
            with open(token[1:]) as f:
                return [l.strip() for l in f if l.strip()]
        except OSError:
            return []
    def authorized(self):
        a = self.headers.get("Authorization", "")
        if a.startswith("Bearer "):
            return a[7:] in self.tokens()
        if a.startswith("Basic "):
            try:
                return base64.b64decode(a[6:]).decode().split(":", 1)[1] in self.tokens()
            except Exception:
                return False
        return False
    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                n = int(self.rfile.readline().strip() or b"0", 16)
                if n == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(n)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))
    def run(self):
        while os.path.exists(stall):
            time.sleep(0.05)
        if not self.authorized():
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = self.body() if self.command == "POST" else b""
        path, _, query = self.path.partition("?")
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL="1",
                   PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD=self.command,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""),
                   CONTENT_LENGTH=str(len(data)), REMOTE_USER="git", REMOTE_ADDR="127.0.0.1",
                   GIT_PROTOCOL=self.headers.get("Git-Protocol", ""))
        p = subprocess.run(["git", "http-backend"], input=data, env=env, capture_output=True)
        head, _, out = p.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, out = p.stdout.partition(b"\n\n")
        status, hdrs = 200, []
        for line in head.decode("latin-1").splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k:
                hdrs.append((k, v.strip()))
        self.send_response(status)
        for k, v in hdrs:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = run
    do_POST = run

class TLSServer(ThreadingHTTPServer):
    # the handshake in the request's thread, so that a client that refuses
    # our certificate only fails its own connection
    def get_request(self):
        sock, addr = self.socket.accept()
        return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

if cert:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert[0], cert[1])
    TLSServer(("127.0.0.1", port), H).serve_forever()
else:
    ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
	python3 "$TMP/githttp.py" "$HTTP_GIT_PORT" "$SRV" "$1" "$TMP/http.log" "$TMP/stall" "${@:2}" \
	    2> "$TMP/http.err" 3>&- &
	HTTP_GIT_PID=$!
	_remember_pid "$HTTP_GIT_PID"
	wait_port "$HTTP_GIT_PORT"
}

# start_silent_server [PORT]: a TCP server on PORT (default: a free port)
# that accepts connections and never answers; sets SILENT_PORT.
start_silent_server() {
	SILENT_PORT=${1:-$(free_port)}
	python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
' "$SILENT_PORT" 3>&- &
	_remember_pid $!
	wait_port "$SILENT_PORT"
}

# start_sshd: an sshd on a free port running as the current user, with a
# throwaway host key and user key.  Sets SSHD_PORT, SSH_USER, SSH_KEY (the
# user's private key), KNOWN_HOSTS (a file that knows the host key),
# OTHER_HOST_PUB (another host key, for "changed key" tests).
start_sshd() {
	local d=$TMP/ssh
	mkdir -p "$d"
	chmod 700 "$d"
	SSHD_PORT=$(free_port)
	SSH_USER=$(id -un)
	ssh-keygen -q -t ed25519 -N '' -f "$d/host" -C host
	ssh-keygen -q -t ed25519 -N '' -f "$d/other_host" -C other
	ssh-keygen -q -t ed25519 -N '' -f "$d/user" -C user
	cp "$d/user.pub" "$d/authorized_keys"
	chmod 600 "$d/authorized_keys"
	cat > "$d/sshd_config" <<EOF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $d/host
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowUsers $SSH_USER
LogLevel VERBOSE
EOF
	# Debian's sshd wants its privilege separation directory
	[ "$(id -u)" != 0 ] || mkdir -p /run/sshd
	/usr/sbin/sshd -D -e -f "$d/sshd_config" 2> "$TMP/sshd.log" 3>&- &
	SSHD_PID=$!
	_remember_pid "$SSHD_PID"
	SSH_KEY=$d/user
	KNOWN_HOSTS=$d/known_hosts
	echo "[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1,2 "$d/host.pub")" > "$KNOWN_HOSTS"
	OTHER_HOST_PUB=$(cut -d' ' -f1,2 "$d/other_host.pub")
	wait_port "$SSHD_PORT"
}
