#!/usr/bin/env python3
"""promcheck.py FILE: a strict check of Prometheus text exposition format
0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/), for
tests/6013.  Exits 0 when FILE is well-formed, else 1 with one line per
problem on stderr.  With --dump, prints each sample as
'NAME{k="v",...} VALUE' with the labels sorted, one per line, so that a
test can grep for exact values.

Checked: HELP and TYPE lines come before a metric's samples, at most one
of each per metric, and a metric's samples are not split apart; names
match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* (no
__ prefix), label values are quoted with only \\\\, \\" and \\n escapes; no
label repeated in a sample and no sample repeated; values are floats
(or NaN, +Inf, -Inf); counters end in _total and are not negative;
histograms have _bucket samples with le, cumulative (never decreasing)
with increasing bounds, ending with le="+Inf" equal to _count, and
_sum and _count per label set; the text ends with a newline.
"""
import math
import re
import sys

NAME = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*')
LABEL = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*')
TYPES = {'counter', 'gauge', 'histogram', 'summary', 'untyped'}

errors = []


def err(lineno, msg):
    errors.append(f'line {lineno}: {msg}')


def parse_value(s):
    if s in ('+Inf', 'Inf'):
        return math.inf
    if s == '-Inf':
        return -math.inf
    if s == 'NaN':
        return math.nan
    if not re.fullmatch(r'[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?', s):
        raise ValueError(s)
    return float(s)


def parse_sample(line, lineno):
    m = NAME.match(line)
    if not m:
        err(lineno, f'bad metric name in {line!r}')
        return None
    name, i, labels = m.group(0), m.end(), {}
    if i < len(line) and line[i] == '{':
        i += 1
        while True:
            if line[i:i + 1] == '}':
                i += 1
                break
            lm = LABEL.match(line, i)
            if not lm:
                err(lineno, f'bad label name at column {i + 1}')
                return None
            lname = lm.group(0)
            if lname.startswith('__'):
                err(lineno, f'reserved label name {lname}')
            i = lm.end()
            if line[i:i + 2] != '="':
                err(lineno, f'label {lname}: want ="')
                return None
            i += 2
            val = []
            while True:
                if i >= len(line):
                    err(lineno, f'label {lname}: unterminated value')
                    return None
                c = line[i]
                if c == '\\':
                    nxt = line[i + 1:i + 2]
                    if nxt not in ('\\', '"', 'n'):
                        err(lineno, f'label {lname}: bad escape \\{nxt}')
                        return None
                    val.append('\n' if nxt == 'n' else nxt)
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                val.append(c)
                i += 1
            if lname in labels:
                err(lineno, f'label {lname} repeated')
            labels[lname] = ''.join(val)
            if line[i:i + 1] == ',':
                i += 1
            elif line[i:i + 1] != '}':
                err(lineno, f'want , or }} after label {lname}')
                return None
    rest = line[i:]
    if not rest.startswith(' '):
        err(lineno, 'want a space before the value')
        return None
    parts = rest.split()
    if len(parts) not in (1, 2):
        err(lineno, f'want VALUE [TIMESTAMP], got {rest!r}')
        return None
    try:
        value = parse_value(parts[0])
    except ValueError:
        err(lineno, f'bad value {parts[0]!r}')
        return None
    if len(parts) == 2 and not re.fullmatch(r'-?\d+', parts[1]):
        err(lineno, f'bad timestamp {parts[1]!r}')
    return name, labels, value


def family_of(name, types):
    for suffix in ('_bucket', '_sum', '_count'):
        if name.endswith(suffix) and types.get(name[:-len(suffix)]) in ('histogram', 'summary'):
            return name[:-len(suffix)]
    return name


def main():
    args = sys.argv[1:]
    dump = '--dump' in args
    args = [a for a in args if a != '--dump']
    if len(args) != 1:
        print('usage: promcheck.py [--dump] FILE', file=sys.stderr)
        return 2
    with open(args[0], 'rb') as f:
        raw = f.read()
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as e:
        print(f'not UTF-8: {e}', file=sys.stderr)
        return 1
    if text and not text.endswith('\n'):
        errors.append('the text does not end with a newline')
    types, helps, done, seen = {}, set(), set(), set()
    current = None
    samples = []
    for lineno, line in enumerate(text.split('\n')[:-1] if text else [], 1):
        if line.startswith('#'):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ('HELP', 'TYPE'):
                name = parts[2]
                if not NAME.fullmatch(name):
                    err(lineno, f'bad metric name {name!r}')
                if name in done or (current and name != current and name in (helps | set(types))):
                    err(lineno, f'{parts[1]} for {name} after its samples or another metric')
                if parts[1] == 'HELP':
                    if name in helps:
                        err(lineno, f'second HELP for {name}')
                    helps.add(name)
                else:
                    t = parts[3].strip() if len(parts) > 3 else ''
                    if t not in TYPES:
                        err(lineno, f'bad type {t!r}')
                    if name in types:
                        err(lineno, f'second TYPE for {name}')
                    types[name] = t
                if current != name:
                    if current:
                        done.add(current)
                    current = name
            continue
        if not line.strip():
            err(lineno, 'empty line')
            continue
        s = parse_sample(line, lineno)
        if not s:
            continue
        name, labels, value = s
        fam = family_of(name, types)
        if fam in done:
            err(lineno, f'samples of {fam} are split apart')
        if fam != current:
            if current:
                done.add(current)
            current = fam
        if fam not in types:
            err(lineno, f'{name}: no TYPE line before its samples')
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            err(lineno, f'sample {name}{labels} repeated')
        seen.add(key)
        t = types.get(fam)
        if t == 'counter':
            if not name.endswith('_total'):
                err(lineno, f'counter {name} does not end in _total')
            if not value >= 0:
                err(lineno, f'counter {name} is {value}')
        if t == 'histogram' and name == fam:
            err(lineno, f'histogram {fam}: sample without _bucket/_sum/_count')
        samples.append((lineno, fam, name, labels, value))
    # histograms
    for fam in [n for n, t in types.items() if t == 'histogram']:
        groups = {}
        for lineno, f, name, labels, value in samples:
            if f != fam:
                continue
            rest = tuple(sorted((k, v) for k, v in labels.items() if k != 'le'))
            g = groups.setdefault(rest, {'buckets': [], 'sum': None, 'count': None})
            if name == fam + '_bucket':
                if 'le' not in labels:
                    err(lineno, f'{name} without le')
                    continue
                try:
                    le = parse_value(labels['le'])
                except ValueError:
                    err(lineno, f'bad le {labels["le"]!r}')
                    continue
                g['buckets'].append((lineno, le, value))
            elif name == fam + '_sum':
                g['sum'] = value
            elif name == fam + '_count':
                g['count'] = value
        for rest, g in groups.items():
            b = g['buckets']
            where = f'{fam}{dict(rest)}'
            if not b or b[-1][1] != math.inf:
                errors.append(f'{where}: the last bucket is not le="+Inf"')
            for (l1, le1, v1), (l2, le2, v2) in zip(b, b[1:]):
                if not le2 > le1:
                    err(l2, f'{where}: bucket bounds not increasing')
                if v2 < v1:
                    err(l2, f'{where}: buckets not cumulative ({v1} then {v2})')
            if g['sum'] is None or g['count'] is None:
                errors.append(f'{where}: no _sum or no _count')
            elif b and b[-1][2] != g['count']:
                errors.append(f'{where}: +Inf bucket {b[-1][2]} != _count {g["count"]}')
    for e in errors:
        print(e, file=sys.stderr)
    if dump and not errors:
        for _, _, name, labels, value in samples:
            ls = ','.join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            v = int(value) if math.isfinite(value) and value == int(value) else value
            print(f'{name}{{{ls}}} {v}' if ls else f'{name} {v}')
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
