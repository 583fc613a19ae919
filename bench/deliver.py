#!/usr/bin/env python3
"""deliver.py URL SECRET_FILE TEMPLATE PLAN MODE ARG TIMEOUT OUT: sends
signed GitHub push deliveries and records, per delivery, when it arrived
and when (and how) it was answered.

TEMPLATE is a push payload (JSON); PLAN has one delivery a line, "ID REV
REF FULL_NAME [SEED]": the body is TEMPLATE with .after, .ref, .repository.
full_name and .repository.name set from it and .before made from SEED,
by default ID (so that every body differs; a redelivery repeats a SEED), signed with the secret
(X-Hub-Signature-256, X-GitHub-Delivery ID).  MODE burst: the N
deliveries arrive evenly spread over ARG seconds, each on its own
connection (a thread each), whatever the server does; MODE conc: at most
ARG at a time, the next as soon as one is answered.  Every request gives
up after TIMEOUT seconds.  OUT gets one line a delivery: "ID ARRIVAL_S
ANSWER_S STATUS", times from the start, STATUS the HTTP status or reset,
refused, timeout, error.  Prints a summary on stdout.  Bounded: N <=
5000, TIMEOUT <= 600, every request one connection."""
import hashlib
import hmac
import http.client
import json
import sys
import threading
import time


def main():
    url, secret_file, template, plan, mode, arg, timeout, out = sys.argv[1:9]
    arg, timeout = float(arg), float(timeout)
    host, _, port = url.split("//", 1)[1].split("/", 1)[0].partition(":")
    path = "/" + url.split("//", 1)[1].partition("/")[2]
    secret = open(secret_file, "rb").read()
    tmpl = json.load(open(template))
    rows = [line.split() for line in open(plan) if line.strip()]
    if not 0 < len(rows) <= 5000 or not 0 < timeout <= 600 or mode not in ("burst", "conc"):
        sys.exit("deliver.py: 1 to 5000 deliveries, TIMEOUT <= 600, MODE burst|conc")
    bodies = []
    for row in rows:
        did, rev, ref, name = row[:4]
        tmpl["after"], tmpl["ref"] = rev, ref
        # a body of its own per delivery (a push from its own "before"):
        # deduplication keys on the body's digest
        tmpl["before"] = hashlib.sha1(row[-1 if len(row) > 4 else 0].encode()).hexdigest()
        tmpl["repository"]["full_name"], tmpl["repository"]["name"] = name, name.split("/")[-1]
        b = json.dumps(tmpl).encode()
        sig = "sha256=" + hmac.new(secret, b, hashlib.sha256).hexdigest()
        bodies.append((did, b, sig))
    res = [None] * len(bodies)
    t0 = time.monotonic()
    gate = threading.Semaphore(int(arg) if mode == "conc" else len(bodies))

    def one(i, at):
        did, b, sig = bodies[i]
        with gate:
            if at is not None:
                time.sleep(max(0.0, at - (time.monotonic() - t0)))
            arrived = time.monotonic() - t0
            st = "error"
            try:
                c = http.client.HTTPConnection(host, int(port), timeout=timeout)
                c.request("POST", path, b, {"Content-Type": "application/json",
                                            "X-GitHub-Event": "push", "X-GitHub-Delivery": did,
                                            "X-Hub-Signature-256": sig, "Connection": "close"})
                r = c.getresponse()
                r.read()
                st = str(r.status)
                c.close()
            except ConnectionResetError:
                st = "reset"
            except ConnectionRefusedError:
                st = "refused"
            except (TimeoutError, OSError) as e:
                st = "timeout" if "timed out" in str(e) else "error"
            except http.client.HTTPException:
                st = "reset"	# the connection closed without an answer
            res[i] = (did, arrived, time.monotonic() - t0, st)

    n = len(bodies)
    ts = [threading.Thread(target=one, args=(i, arg * i / n if mode == "burst" else None))
          for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.monotonic() - t0
    with open(out, "w") as f:
        for r in res:
            f.write("%s %.3f %.3f %s\n" % r)
    lat = sorted(r[2] - r[1] for r in res)
    by = {}
    for r in res:
        by[r[3]] = by.get(r[3], 0) + 1
    late = sum(1 for r in res if r[3][0].isdigit() and r[2] - r[1] > 10)
    unanswered = sum(1 for r in res if not r[3][0].isdigit())
    arrivals = res[-1][1] - res[0][1]
    print("deliveries %d, arrivals over %.2f s, all answered or given up after %.2f s" % (n, arrivals, wall))
    print("answers: %s" % ", ".join("%s %d" % kv for kv in sorted(by.items())))
    print("latency (arrival to answer) p50 %.3f s, p99 %.3f s, max %.3f s; answered later than 10 s: %d; "
          "no answer (reset, refused, timeout, error): %d" %
          (lat[n // 2], lat[min(n - 1, int(n * 0.99))], lat[-1], late, unanswered))
    print("throughput %.1f deliveries/s" % (n / wall))


main()
