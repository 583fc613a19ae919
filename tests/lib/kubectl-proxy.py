#!/usr/bin/env python3
"""A recording TLS proxy between kubectl and tests/k8s-apiserver.

Used by tests/record-kubectl only.  The test API server logs requests but
not the bodies it answered with; this proxy sits in front of it and appends
one JSON line per exchange to --log: the request kubectl sent and the
response kubectl received (and accepted, or reported).  Standard library
only, 127.0.0.1 only, HTTP/1.1 (as the server).

The bearer token is never written: `auth` is "token" when it is the
server's token (--token-file), "other-token" when it is another one, or
the scheme for anything else, null when there is none.
"""
import argparse
import base64
import http.client
import http.server
import json
import os
import socketserver
import ssl
import threading

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
       "te", "trailer", "upgrade", "content-length", "host"}


def body_value(data, ctype):
    """JSON when the content type says so and it parses, else text, else base64."""
    if not data:
        return {"body": None}
    if ctype and "json" in ctype:
        try:
            return {"body": json.loads(data.decode("utf-8"))}
        except ValueError:
            pass
    try:
        return {"body_text": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(data).decode("ascii")}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def upstream(self):
        conn = getattr(self, "_up", None)
        if conn is None:
            conn = http.client.HTTPSConnection(
                "127.0.0.1", self.server.up_port, context=self.server.up_ctx, timeout=30)
            self._up = conn
        return conn

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def relay(self):
        body = self.read_body()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        auth = self.headers.get("Authorization")
        if auth is None:
            auth_class = None
        elif auth.startswith("Bearer "):
            auth_class = "token" if auth[7:] == self.server.token else "other-token"
        else:
            auth_class = auth.split(" ", 1)[0]
        try:
            conn = self.upstream()
            conn.request(self.command, self.path, body if body or self.command in
                         ("POST", "PUT", "PATCH") else None, headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException):
            self._up = None
            self.close_connection = True
            return
        path, _, query = self.path.partition("?")
        rtype = resp.getheader("Content-Type")
        entry = {
            "request": dict({
                "method": self.command, "path": path, "query": query or None,
                "content_type": self.headers.get("Content-Type"),
                "accept": self.headers.get("Accept"),
                "if_none_match": self.headers.get("If-None-Match"),
                "auth": auth_class,
                "user_agent": self.headers.get("User-Agent"),
            }, **body_value(body, self.headers.get("Content-Type"))),
            "response": dict({"status": resp.status, "content_type": rtype},
                             **body_value(data, rtype)),
        }
        with self.server.lock:
            with open(self.server.log, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.send_response_only(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP and k.lower() != "date":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = relay


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream-port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--port-file", required=True)
    a = ap.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    ctx.set_alpn_protocols(["http/1.1"])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.up_port = a.upstream_port
    srv.up_ctx = ssl.create_default_context(cafile=a.ca)
    with open(a.token_file, encoding="utf-8") as f:
        srv.token = f.read().rstrip("\r\n")
    srv.log = a.log
    srv.lock = threading.Lock()
    tmp = a.port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
