#!/usr/bin/env python3
"""slow-clients.py HOST PORT N MODE SECONDS: holds N connections to
HOST:PORT open for SECONDS, then closes them and exits.  MODE idle sends
nothing; MODE trickle sends a request head one byte a second on each
connection (never finishing it); MODE body sends a whole head announcing a
1 MiB body, then trickles the body one byte a second.  Prints "ready N"
(the connections whose connect completed) on stdout once all are opened,
and "done" at the end.  Bounded: N <= 5000, SECONDS <= 600."""
import errno
import selectors
import socket
import sys
import time


def main():
    host, port, n, mode, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
    if not 0 < n <= 5000 or not 0 < secs <= 600 or mode not in ("idle", "trickle", "body"):
        sys.exit("usage: slow-clients.py HOST PORT N idle|trickle|body SECONDS (N <= 5000, SECONDS <= 600)")
    end = time.monotonic() + secs
    head = b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000 + b"\r\n\r\n"
    if mode == "body":
        head = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1048576\r\n\r\n")
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect((host, port))
        except BlockingIOError:
            pass
        socks.append(s)
    # wait (2 s at most) for the connects to complete
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_WRITE)
    pending, connected = set(socks), 0
    limit = min(end, time.monotonic() + 2)
    while pending and time.monotonic() < limit:
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            sel.unregister(s)
            pending.discard(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected += 1
    sel.close()
    print("ready %d" % connected, flush=True)
    sent = [0] * n
    if mode == "body":
        for i, s in enumerate(socks):
            try:
                s.send(head)
            except OSError:
                pass
    while time.monotonic() < end:
        if mode != "idle":
            for i, s in enumerate(socks):
                try:
                    if mode == "trickle":
                        s.send(head[sent[i] % len(head):][:1] if sent[i] < len(head) - 4 else b"a")
                    else:
                        s.send(b" ")
                    sent[i] += 1
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.ENOTCONN):
                        pass
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))
    for s in socks:
        s.close()
    print("done", flush=True)


main()
