#!/usr/bin/env python3
"""jv-corpus.py KIND SEED COUNT — inputs for tests/0500-jv-libjq.bats.

Writes to stdout, deterministically for a given SEED:
  records  COUNT JSON texts separated by NUL bytes: valid documents (deep,
           wide, every kind of string and number), sequences of them
           joined by whitespace or RS, and each of those damaged (bytes
           cut, doubled, swapped for structure characters or junk)
  numbers  COUNT lines, each a double as a C literal: random bit patterns,
           powers of two and ten, integers near 2^53, decimals
  lines    COUNT lines of random bytes (no newline, no NUL): bad UTF-8,
           surrogates, overlong forms, control characters
"""
import random
import struct
import sys

kind, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
out = sys.stdout.buffer

PIECES = [b"a", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\\n", b"\\t",
          b"\\\"", b"\\\\", b"\\/", b"\\b", b"\\f", b"\\r", b"\\u0000", b"\\u001f",
          b"\\u007f", b"\\u00e9", b"\\ud83d\\ude00", b"\\udc00", b"\\uFFFF", b"\x7f",
          b"\x1f", b"\x01", b"\t", b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82",
          b"\xf4\x90\x80\x80", b" ", b"/", b"k8s-webhook-handler.io/ref"]


def jstring():
    return b'"' + b"".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, 6))) + b'"'


def jnumber():
    c = rnd.randint(0, 9)
    if c == 0:
        return str(rnd.randint(-10**20, 10**20)).encode()
    if c == 1:
        return repr(struct.unpack("<d", rnd.getrandbits(64).to_bytes(8, "little"))[0]).encode() \
            .replace(b"inf", b"1e999").replace(b"nan", b"0")
    if c == 2:
        return ("%de%d" % (rnd.randint(-99, 99), rnd.randint(-330, 330))).encode()
    if c == 3:
        return rnd.choice([b"0", b"-0", b"0.0", b"1e-7", b"0.0001", b"1e15", b"1e16",
                           b"1e17", b"9007199254740993", b"5e-324", b"1.7976931348623157e308",
                           b"2.2250738585072014e-308", b"0.1", b"0.3", b"1E+2", b"-.5",
                           b"01", b"+1", b"5.", b"NaN", b"-Infinity", b"inf", b"nan"])
    if c == 4:
        return str(rnd.randint(0, 2**31)).encode()
    return ("%.*g" % (rnd.randint(1, 17), rnd.uniform(-1e6, 1e6) * 10 ** rnd.randint(-12, 12))).encode()


def ws():
    return rnd.choice([b"", b"", b" ", b"\n", b"\t", b"\r\n", b"  \n "])


def jvalue(depth):
    c = rnd.randint(0, 9 if depth < 6 else 4)
    if c == 0:
        return rnd.choice([b"true", b"false", b"null"])
    if c in (1, 2):
        return jnumber()
    if c in (3, 4):
        return jstring()
    if c in (5, 6):
        items = [jvalue(depth + 1) for _ in range(rnd.randint(0, 5))]
        return b"[" + ws() + (b"," + ws()).join(items) + ws() + b"]"
    keys = [jstring() for _ in range(rnd.randint(0, 6))]
    if keys and rnd.random() < 0.3:
        keys.append(rnd.choice(keys))      # a key given twice: the last wins
    pairs = [k + ws() + b":" + ws() + jvalue(depth + 1) for k in keys]
    return b"{" + ws() + (b"," + ws()).join(pairs) + ws() + b"}"


def document():
    c = rnd.randint(0, 9)
    if c == 0:
        n = rnd.randint(250, 262)
        return b"[" * n + b"]" * n
    if c == 1:
        n = rnd.randint(126, 130)
        return b'{"a":' * n + b"1" + b"}" * n
    if c == 2:
        sep = rnd.choice([b" ", b"\n", b"\x1e", b"", b"\x1e\n"])
        return sep.join(jvalue(0) for _ in range(rnd.randint(2, 4)))
    if c == 3:
        return rnd.choice([b"\xef\xbb\xbf", b"\xef\xbb", b""]) + jvalue(0)
    return ws() + jvalue(0) + ws()


JUNK = [b"[", b"]", b"{", b"}", b":", b",", b'"', b"\\", b"\x1e", b"x", b"1", b"e",
        b"-", b".", b"n", b"t", b"\xff", b" ", b"\n"]


def damage(d):
    d = bytearray(d)
    for _ in range(rnd.randint(1, 3)):
        if not d:
            break
        i = rnd.randrange(len(d))
        c = rnd.randint(0, 3)
        if c == 0:
            del d[i:i + rnd.randint(1, 4)]
        elif c == 1:
            d[i:i] = rnd.choice(JUNK)
        elif c == 2:
            d[i:i + 1] = rnd.choice(JUNK)
        else:
            d = d[:i]
    return bytes(d)


def special():
    return struct.unpack("<d", struct.pack("<Q", rnd.getrandbits(64)))[0]


if kind == "records":
    recs = []
    for _ in range(count):
        d = document()
        recs.append(damage(d) if rnd.random() < 0.5 else d)
    out.write(b"\0".join(r.replace(b"\0", b"") for r in recs))
elif kind == "numbers":
    for i in range(count):
        c = i % 6
        if c == 0:
            x = special()
        elif c == 1:
            x = rnd.choice([1.0, -1.0]) * 2.0 ** rnd.randint(-1074, 1023)
        elif c == 2:
            x = float(rnd.randint(-2**60, 2**60))
        elif c == 3:
            x = rnd.choice([1.0, 5.0, 3.0, 7.0]) * 10.0 ** rnd.randint(-320, 308)
        elif c == 4:
            x = float("%.*g" % (rnd.randint(1, 17), rnd.uniform(0, 1) * 10 ** rnd.randint(-30, 30)))
        else:
            x = rnd.uniform(-1e21, 1e21)
        out.write(x.hex().encode() + b"\n" if x == x and abs(x) != float("inf")
                  else repr(x).encode() + b"\n")
elif kind == "lines":
    alphabet = [bytes([b]) for b in range(1, 256) if b != 10] + PIECES
    for _ in range(count):
        out.write(b"".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12))) + b"\n")
else:
    sys.exit("jv-corpus.py: unknown kind '%s'" % kind)
